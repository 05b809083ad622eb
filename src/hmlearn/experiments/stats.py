"""Statistical comparison of methods over datasets and seeds (Demšar 2006).

Every function is pure and takes the long results frame of :meth:`ResultStore.frame
<hmlearn.experiments.store.ResultStore.frame>`: one row per run with the columns ``dataset``,
``method``, ``seed`` and ``metrics`` (the dict of :func:`hmlearn.metrics.evaluate`). Failed runs
(``status`` other than ``"ok"``) and missing or NaN metric values are left out.

A *block* is one unit the methods are compared on: a dataset (the seeds' mean, as in Demšar
2006: the datasets are the independent samples) or a (dataset, seed) pair. :func:`block_table`
builds the (blocks x methods) table every test reads. All metrics of ``evaluate`` are "higher
is better"; ranks are 1 for the best method of a block, ties get the mean of their ranks.

- :func:`wilcoxon_test`: two methods, signed-rank test of the paired differences
  (:func:`scipy.stats.wilcoxon`).
- :func:`friedman_test`: k >= 3 methods, Friedman's chi-square (:func:`scipy.stats.friedmanchisquare`),
  the average ranks, the Nemenyi post-hoc p-values (:func:`scikit_posthocs.posthoc_nemenyi_friedman`)
  and the critical difference::

      CD = q_alpha * sqrt(k (k + 1) / (6 N)),   q_alpha = Q_{1-alpha}(k, inf) / sqrt(2)

  with ``Q`` the studentized range distribution (:data:`scipy.stats.studentized_range`), ``k``
  methods and ``N`` blocks: two methods whose average ranks differ by at least CD differ
  significantly (Nemenyi, family-wise level alpha).
- :func:`cd_diagram`: the critical-difference diagram of a Friedman result as a matplotlib Figure.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hmlearn.errors import HMLError

__all__ = [
    "BLOCKS",
    "FriedmanResult",
    "StatsInputError",
    "WilcoxonResult",
    "average_ranks",
    "block_table",
    "cd_diagram",
    "critical_difference",
    "friedman_test",
    "metric_values",
    "wilcoxon_test",
]

BLOCKS: dict[str, tuple[str, ...]] = {"dataset": ("dataset",), "dataset-seed": ("dataset", "seed")}
"""The two kinds of blocks: per dataset (mean over seeds) or per (dataset, seed) pair."""


class StatsInputError(HMLError, ValueError):
    """A results frame that cannot be compared as asked (unknown method or metric, duplicate runs)."""


# ---------------------------------------------------------------------- the (blocks x methods) table
def metric_values(frame: pd.DataFrame, metric: str) -> pd.Series:
    """``metric`` of every row of ``frame`` as floats (NaN where a row has no such value).

    Raises :class:`StatsInputError` when no row has the metric at all.
    """
    values = frame["metrics"].map(lambda m: m.get(metric) if isinstance(m, dict) else None)
    values = pd.to_numeric(values, errors="coerce").astype(float)
    if len(frame) and values.isna().all() and not _has_key(frame, metric):
        known = sorted({k for m in frame["metrics"] if isinstance(m, dict) for k in m})
        raise StatsInputError(f"no run has the metric {metric!r}; the runs have: {', '.join(known) or 'none'}")
    return values


def _has_key(frame: pd.DataFrame, metric: str) -> bool:
    return any(isinstance(m, dict) and metric in m for m in frame["metrics"])


def _blocks(blocks: str | Sequence[str]) -> tuple[str, ...]:
    if isinstance(blocks, str):
        if blocks not in BLOCKS:
            raise StatsInputError(f"blocks must be one of {', '.join(BLOCKS)}, not {blocks!r}")
        return BLOCKS[blocks]
    return tuple(blocks)


def block_table(
    frame: pd.DataFrame,
    metric: str,
    methods: Sequence[str] | None = None,
    blocks: str | Sequence[str] = "dataset-seed",
    complete: bool = True,
) -> pd.DataFrame:
    """The (blocks x methods) table of ``metric``, the input of every test here.

    Rows of ``frame`` with ``status != "ok"`` or a NaN value are dropped. With ``blocks="dataset"``
    a cell is the mean over the seeds that method has on that dataset; with ``"dataset-seed"``
    each (dataset, seed) pair is a block and must hold at most one run per method (a duplicate
    is refused: filter the frame, e.g. by sweep, first). With ``complete`` only the blocks where
    every method has a value are kept (the tests need complete blocks).

    Returns
    -------
    DataFrame indexed by the block columns (sorted), one float column per method in the order of
    ``methods`` (default: the order methods first appear in ``frame``).
    """
    keys = _blocks(blocks)
    if "status" in frame.columns:
        frame = frame[frame["status"].fillna("ok") == "ok"]
    present = list(dict.fromkeys(frame["method"]))
    if methods is None:
        methods = present
    missing = [m for m in methods if m not in present]
    if missing:
        raise StatsInputError(f"no successful run of {', '.join(map(repr, missing))}; "
                              f"methods found: {', '.join(present) or 'none'}")
    long = frame.loc[frame["method"].isin(methods), ["dataset", "method", "seed"]].copy()
    long["value"] = metric_values(frame.loc[long.index], metric)
    long = long.dropna(subset=["value"])
    duplicated = long.duplicated(["dataset", "method", "seed"], keep=False)
    if duplicated.any():
        example = long[duplicated].iloc[0]
        raise StatsInputError(
            f"{int(duplicated.sum())} runs share their (dataset, method, seed), e.g. {example['method']!r} on "
            f"{example['dataset']} seed {example['seed']}; keep one run per cell (e.g. select one sweep)")
    table = long.pivot_table(index=list(keys), columns="method", values="value", aggfunc="mean", sort=True)
    table = table.reindex(columns=list(methods))
    table.columns.name = None
    if complete:
        table = table.dropna(how="any")
    return table.astype(float)


def average_ranks(table: pd.DataFrame) -> pd.Series:
    """Mean rank of each method (column) over the blocks (rows): 1 = best (highest value) in a block.

    Ties share the mean of their ranks (:func:`scipy.stats.rankdata`, method "average"). Sorted
    from best to worst.
    """
    from scipy.stats import rankdata

    if table.empty:
        return pd.Series(dtype=float)
    ranks = rankdata(-table.to_numpy(dtype=float), axis=1, method="average")
    return pd.Series(ranks.mean(axis=0), index=table.columns, name="average rank").sort_values(kind="stable")


def critical_difference(k: int, n_blocks: int, alpha: float = 0.05) -> float:
    """Nemenyi critical difference of average ranks for ``k`` methods over ``n_blocks`` blocks.

    ``CD = q_alpha sqrt(k (k+1) / (6 N))`` with ``q_alpha`` the ``1 - alpha`` quantile of the
    studentized range for ``k`` groups and infinite degrees of freedom, divided by sqrt(2)
    (Demšar 2006, table 5a: q_0.05 = 1.960, 2.343, 2.569, ... for k = 2, 3, 4, ...).
    """
    from scipy.stats import studentized_range

    if k < 2 or n_blocks < 1:
        raise StatsInputError(f"a critical difference needs k >= 2 methods and N >= 1 blocks, got k={k}, N={n_blocks}")
    q_alpha = studentized_range.ppf(1.0 - alpha, k, np.inf) / math.sqrt(2.0)
    return float(q_alpha * math.sqrt(k * (k + 1) / (6.0 * n_blocks)))


# ---------------------------------------------------------------------- two methods
@dataclass(frozen=True)
class WilcoxonResult:
    """Wilcoxon signed-rank test of ``method - baseline`` over ``n`` paired blocks.

    ``statistic`` and ``pvalue`` are scipy's (two-sided by default; the statistic is the smaller
    rank sum); both are NaN when the test cannot run (fewer than one pair, or all differences
    zero), and ``note`` says why. ``mean_difference`` is the mean of ``method - baseline``;
    ``wins`` / ``ties`` / ``losses`` count the blocks where the method is above / equal to /
    below the baseline.
    """

    method: str
    baseline: str
    metric: str
    n: int
    statistic: float
    pvalue: float
    mean_difference: float
    wins: int
    ties: int
    losses: int
    note: str = ""

    def significant(self, alpha: float = 0.05) -> bool:
        return bool(self.pvalue < alpha)  # False for NaN


def smallest_wilcoxon_p(n_pairs: int) -> float:
    """The smallest two-sided p the exact Wilcoxon signed-rank test can give with ``n_pairs`` non-zero
    differences (every one on the same side): ``2 / 2 ** n``. With 5 pairs or fewer it is >= 0.0625, so such
    a test can never be significant at 0.05."""
    return 1.0 if n_pairs <= 0 else min(1.0, 2.0 / 2**n_pairs)


def wilcoxon_test(
    frame: pd.DataFrame,
    method: str,
    baseline: str,
    metric: str,
    blocks: str | Sequence[str] = "dataset-seed",
    alternative: str = "two-sided",
    zero_method: str = "wilcox",
) -> WilcoxonResult:
    """Wilcoxon signed-rank test between ``method`` and ``baseline`` on ``metric``.

    The pairs are the blocks (default every (dataset, seed) both methods ran, see
    :func:`block_table`); the differences ``method - baseline`` go to
    ``scipy.stats.wilcoxon(d, zero_method=zero_method, alternative=alternative)`` (zero
    differences dropped with the default "wilcox"; exact p-values for small samples without
    ties, else the normal approximation, as scipy decides). When every difference is zero there
    is nothing to test: statistic and p-value are NaN and ``note`` says "all N differences are zero".
    """
    from scipy.stats import wilcoxon

    table = block_table(frame, metric, [method, baseline], blocks)
    differences = (table[method] - table[baseline]).to_numpy(dtype=float)
    n = differences.size
    counts = {"wins": int(np.sum(differences > 0)), "ties": int(np.sum(differences == 0)),
              "losses": int(np.sum(differences < 0))}
    mean_difference = float(differences.mean()) if n else math.nan
    common = {"method": method, "baseline": baseline, "metric": metric, "n": n, "mean_difference": mean_difference,
              **counts}
    if n == 0:
        return WilcoxonResult(**common, statistic=math.nan, pvalue=math.nan,
                              note=f"no {'/'.join(_blocks(blocks))} block where both methods ran")
    if not np.any(differences):
        return WilcoxonResult(**common, statistic=math.nan, pvalue=math.nan,
                              note=f"all {n} differences are zero: the methods tie on every block")
    result = wilcoxon(differences, zero_method=zero_method, alternative=alternative)
    return WilcoxonResult(**common, statistic=float(result.statistic), pvalue=float(result.pvalue))


# ---------------------------------------------------------------------- k methods
@dataclass(frozen=True)
class FriedmanResult:
    """Friedman test of ``k`` methods over ``n_blocks`` complete blocks, with the Nemenyi post hoc.

    ``average_ranks``: Series (1 = best), sorted best first; ``nemenyi``: (k x k) DataFrame of
    pairwise p-values (1 on the diagonal); ``critical_difference``: the Nemenyi CD at ``alpha``.
    ``statistic`` / ``pvalue`` are NaN, with a ``note``, when the test cannot run (every block
    a complete tie). ``dropped_blocks`` counts blocks left out because some method lacked a value.
    """

    metric: str
    blocks: tuple[str, ...]
    methods: tuple[str, ...]
    n_blocks: int
    statistic: float
    pvalue: float
    average_ranks: pd.Series
    nemenyi: pd.DataFrame
    critical_difference: float
    alpha: float
    dropped_blocks: int = 0
    note: str = ""

    @property
    def k(self) -> int:
        return len(self.methods)

    def significant(self) -> bool:
        return bool(self.pvalue < self.alpha)


def friedman_test(
    frame: pd.DataFrame,
    metric: str,
    methods: Sequence[str] | None = None,
    blocks: str | Sequence[str] = "dataset",
    alpha: float = 0.05,
) -> FriedmanResult:
    """Friedman test over ``methods`` (k >= 3) with datasets (default) or (dataset, seed) pairs as blocks.

    Only complete blocks take part (:func:`block_table` with ``complete=True``); the Friedman
    statistic and p-value come from :func:`scipy.stats.friedmanchisquare` on the method columns,
    the pairwise p-values from :func:`scikit_posthocs.posthoc_nemenyi_friedman` on the same
    table, and :func:`critical_difference` gives CD.

    Raises :class:`StatsInputError` with fewer than 3 methods or 2 complete blocks.
    """
    import scikit_posthocs
    from scipy.stats import friedmanchisquare

    keys = _blocks(blocks)
    full = block_table(frame, metric, methods, keys, complete=False)
    table = full.dropna(how="any")
    names = tuple(table.columns)
    if len(names) < 3:
        raise StatsInputError(f"the Friedman test needs at least 3 methods, got {len(names)} "
                              f"({', '.join(names)}); compare two with the Wilcoxon test")
    if len(table) < 2:
        raise StatsInputError(f"the Friedman test needs at least 2 blocks ({' x '.join(keys)}) where every method "
                              f"ran, got {len(table)}" + ("; try (dataset, seed) blocks" if keys == ("dataset",) else ""))
    note = ""
    if (table.nunique(axis=1) == 1).all():
        statistic, pvalue = math.nan, math.nan
        note = f"every one of the {len(table)} blocks is a complete tie: nothing to test"
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            result = friedmanchisquare(*(table[name].to_numpy() for name in names))
        statistic, pvalue = float(result.statistic), float(result.pvalue)
    nemenyi = scikit_posthocs.posthoc_nemenyi_friedman(table.reset_index(drop=True))
    nemenyi = nemenyi.loc[list(names), list(names)]
    return FriedmanResult(
        metric=metric,
        blocks=keys,
        methods=names,
        n_blocks=len(table),
        statistic=statistic,
        pvalue=pvalue,
        average_ranks=average_ranks(table),
        nemenyi=nemenyi,
        critical_difference=critical_difference(len(names), len(table), alpha),
        alpha=alpha,
        dropped_blocks=len(full) - len(table),
        note=note,
    )


def cd_diagram(result: FriedmanResult, width: float = 7.0):
    """The critical-difference diagram of ``result`` as a matplotlib Figure (Agg, no pyplot state).

    Methods sit on the axis of average ranks (1 = best, on the left); methods joined by a bar do
    not differ significantly (Nemenyi p >= alpha); the segment above the axis is CD long.
    Drawn by :func:`scikit_posthocs.critical_difference_diagram`.
    """
    import scikit_posthocs
    from matplotlib.figure import Figure

    k = result.k
    height = 1.4 + 0.28 * (math.ceil(k / 2) + 2)
    figure = Figure(figsize=(width, height), layout="constrained")
    axes = figure.add_subplot()
    # 0 = significant at alpha, 1 = not: the diagram's own threshold (0.05, or an alpha argument
    # only recent releases take) then draws the bars at result.alpha whatever the release
    significant = result.nemenyi.where(result.nemenyi >= result.alpha, 0.0).where(result.nemenyi < result.alpha, 1.0)
    scikit_posthocs.critical_difference_diagram(
        result.average_ranks, significant, ax=axes,
        label_fmt_left="{label} ({rank:.2f})", label_fmt_right="({rank:.2f}) {label}",
        label_props={"fontsize": 9},
    )
    # the CD segment, drawn here above the rank axis's tick labels (not across them)
    low, _ = axes.get_ylim()
    axes.set_xlim(1, max(k, 2))
    axes.set_xticks(range(1, max(k, 2) + 1))
    axes.tick_params(axis="x", labelsize=8)
    cd = result.critical_difference
    axes.plot([1, 1 + cd], [1.6, 1.6], color="k", linewidth=2, clip_on=False)
    axes.plot([1, 1], [1.45, 1.75], color="k", linewidth=1, clip_on=False)
    axes.plot([1 + cd, 1 + cd], [1.45, 1.75], color="k", linewidth=1, clip_on=False)
    axes.text(1 + cd + 0.05, 1.6, f"CD = {cd:.2f}", va="center", fontsize=9, clip_on=False)
    axes.set_ylim(low, 2.0)
    axes.set_title(f"{result.metric}: average rank over {result.n_blocks} {' x '.join(result.blocks)} blocks "
                   f"(Nemenyi, alpha = {result.alpha:g})", fontsize=9)
    return figure
