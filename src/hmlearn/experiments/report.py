"""The report of a sweep: paper-style tables, statistical tests and plots, as Markdown, HTML or LaTeX.

:func:`build_report` turns the results frame of :meth:`ResultStore.frame(status=None)
<hmlearn.experiments.store.ResultStore.frame>` (ok and failed runs) into one document:

1. **Runs**: per method, the successful and failed runs.
2. **Summary**: per method, its runs, each metric's mean over the datasets where every method
   ran (of the per-dataset means over the seeds), the mean recall gain over the baseline (as in
   3.) and the Wilcoxon p-value of its F1 against the baseline (as in 4.).
3. **Results**: a table per metric, rows the datasets, columns the methods, cells mean ± std
   (sample std, ddof 1) over the seeds; the best mean of each dataset in bold (every method that
   ties it at the printed precision); the last row is each method's average rank over the
   datasets where all methods ran (1 = best, the rank the Friedman test reads). The AU(PRC)
   table has a ``published`` column when a dataset has a published C-HMCNN AU(PRC)
   (:data:`hmlearn.data.registry.PUBLISHED_AUPRC`, mean of 10 seeds), empty for the others.
4. **Recall gain** over the baseline: per dataset ``mean recall(method) / mean recall(baseline)``
   over the seeds, and the mean of these per-dataset ratios.
5. **Statistical tests** (:mod:`hmlearn.experiments.stats`): Wilcoxon signed-rank of every
   method against the baseline on F1 and recall over the (dataset, seed) pairs; the Friedman
   test on F1 (datasets as blocks, or (dataset, seed) pairs), average ranks, Nemenyi p-values,
   the critical difference and its diagram.
6. **Plots**: recall by depth and by training-frequency bucket (mean over seeds, then over
   datasets), precision-recall curves (mean over seeds of the interpolated precision), the CD
   diagram.
7. **Failed runs** with their errors.
8. **Paired comparisons** (only when ``comparisons`` are given): for each (method, against)
   pair, per metric the mean difference over the (dataset, seed) pairs both ran and the
   Wilcoxon p-value, so an ablation can compare each variant with its own control instead of
   one baseline.

Formats: ``"md"`` (tables; plots as PNG files in ``files_dir``, linked), ``"html"`` (one
self-contained file: CSS and plots inline, base64 PNG, no external URL), ``"latex"`` (a
document of booktabs tables; plots as PDF files in ``files_dir``, included). :func:`write_report`
writes the report and its files atomically (:func:`hmlearn.fileio.atomic_write`).
"""

from __future__ import annotations

import base64
import contextlib
import html
import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from hmlearn.errors import HMLError
from hmlearn.experiments import stats
from hmlearn.fileio import atomic_write

__all__ = ["DEFAULT_METRICS", "FORMATS", "ReportError", "build_report", "report_path", "write_report"]

FORMATS = {"md": ".md", "html": ".html", "latex": ".tex"}
DEFAULT_METRICS = ("au_prc", "binary_ap", "precision", "recall", "f1", "recall_rare")
FRACTION_METRICS = {"au_prc", "binary_ap"}  # evaluate() gives these as fractions, the rest in percent
METRIC_LABELS = {
    "au_prc": "AU(PRC)",
    "binary_ap": "binary AP",
    "precision": "precision (%)",
    "recall": "recall (%)",
    "f1": "F1 (%)",
    "precision_present": "precision, present nodes (%)",
    "recall_present": "recall, present nodes (%)",
    "f1_present": "F1, present nodes (%)",
    "recall_rare": "recall of rare nodes (%)",
}
TEST_METRICS = ("f1", "recall")
PR_GRID = np.linspace(0.0, 1.0, 101)
MAX_ERROR_CHARS = 500


class ReportError(HMLError, ValueError):
    """A results frame that cannot be reported as asked (no runs, unknown baseline or metric)."""


# ---------------------------------------------------------------------- the document, format-free
@dataclass
class _Table:
    header: list[str]
    rows: list[list[str]]
    bold: set[tuple[int, int]] = field(default_factory=set)  # (row, column) of the rows
    caption: str = ""
    align: str = ""  # one "l" or "r" per column; default: the first column left, the others right

    def __post_init__(self):
        self.align = self.align or "l" + "r" * (len(self.header) - 1)


@dataclass
class _Figure:
    name: str  # file stem, [a-z0-9_-]
    figure: object  # matplotlib Figure
    caption: str


@dataclass
class _Heading:
    text: str
    level: int = 2


@dataclass
class _Text:
    text: str


def _metric_label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric)


def _decimals(metric: str) -> int:
    return 3 if metric in FRACTION_METRICS else 2


def _number(value: float, decimals: int) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.{decimals}f}"


def _pvalue(p: float) -> str:
    if p is None or not math.isfinite(p):
        return "–"
    return f"{p:.3g}" if p >= 1e-3 else f"{p:.2e}"


def _one_line(text: object) -> str:
    text = re.sub(r"\s+", " ", str(text or "")).strip()
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


# ---------------------------------------------------------------------- preparing the runs
@dataclass
class _Runs:
    ok: pd.DataFrame
    failed: pd.DataFrame
    methods: list[str]  # baseline first, then in order of appearance
    datasets: list[str]
    superseded: int


def _prepare(frame: pd.DataFrame, baseline: str) -> _Runs:
    if frame is None or len(frame) == 0:
        raise ReportError("no runs to report (the results store is empty)")
    frame = frame.copy()
    if "status" not in frame.columns:
        frame["status"] = "ok"
    frame["status"] = frame["status"].fillna("ok")
    methods = list(dict.fromkeys(frame["method"]))
    if baseline not in methods:
        raise ReportError(f"baseline {baseline!r} is not a method of these runs; methods found: {', '.join(methods)}")
    methods = [baseline] + [m for m in methods if m != baseline]
    ok = frame[frame["status"] == "ok"]
    failed = frame[frame["status"] != "ok"]
    superseded = 0
    cell = ["dataset", "method", "seed"]
    if ok.duplicated(cell).any():  # the same cell run under several configs or sweeps: keep the latest
        order = ok["finished_at"].fillna("") if "finished_at" in ok.columns else pd.Series("", index=ok.index)
        ok = ok.assign(_order=order).sort_values("_order", kind="stable")
        before = len(ok)
        ok = ok.drop_duplicates(cell, keep="last").drop(columns="_order")
        superseded = before - len(ok)
    datasets = list(dict.fromkeys(frame["dataset"]))
    return _Runs(ok=ok, failed=failed, methods=methods, datasets=datasets, superseded=superseded)


def _check_metrics(runs: _Runs, metrics: Sequence[str]) -> list[str]:
    """The metrics to tabulate: ``metrics``, or of the default ones those some run has (runs imported
    from elsewhere may have AU(PRC) only); an unknown metric asked for is an error."""
    known = list(dict.fromkeys(k for m in runs.ok["metrics"] if isinstance(m, dict) for k in m))
    if tuple(metrics) == DEFAULT_METRICS and len(runs.ok) and any(m in known for m in metrics):
        return [m for m in metrics if m in known]
    unknown = [m for m in metrics if m not in known]
    if unknown and len(runs.ok):
        raise ReportError(f"unknown metric(s) {', '.join(map(repr, unknown))}; the runs have: {', '.join(known)}")
    return list(metrics)


# ---------------------------------------------------------------------- tables
def _cell_stats(runs: _Runs, metric: str) -> pd.DataFrame:
    """Per (dataset, method): mean, std (ddof 1) and n of ``metric`` over the seeds."""
    values = runs.ok[["dataset", "method", "seed"]].assign(value=stats.metric_values(runs.ok, metric))
    values = values.dropna(subset=["value"])
    grouped = values.groupby(["dataset", "method"], sort=False)["value"]
    return pd.DataFrame({"mean": grouped.mean(), "std": grouped.std(ddof=1), "n": grouped.size()})


_NOT_OPTIONS = ("seed", "threads", "device", "preset")


def _methods_table(runs: _Runs) -> _Table:
    """Each method's preset and the options it sets: the config values all its runs share that differ from
    TrainConfig's defaults (a dataset's own settings, which differ between datasets, drop out)."""
    from hmlearn.training.config import TrainConfig

    defaults = vars(TrainConfig())
    rows = []
    for method in runs.methods:
        configs = [c for c in runs.ok[runs.ok["method"] == method].get("config", []) if isinstance(c, dict)]
        if not configs:
            rows.append([method, "–", "–"])
            continue
        shared = {k: v for k, v in configs[0].items()
                  if k not in _NOT_OPTIONS and all(c.get(k) == v for c in configs) and defaults.get(k, v) != v}
        presets = sorted({str(c.get("preset", "–")) for c in configs})
        options = ", ".join(f"{k}={v}" for k, v in shared.items()) or "plain C-HMCNN (defaults)"
        rows.append([method, "/".join(presets), options])
    return _Table(["method", "preset", "options (other than the defaults and each dataset's own settings)"],
                  rows, caption="What each method was: the settings all its runs share")


def _provenance(frame: pd.DataFrame) -> str:
    """Library versions the runs recorded, when they finished, and when this report was written."""
    import datetime

    versions: dict[str, set[str]] = {}
    for record in frame.get("versions", []):
        if isinstance(record, dict):
            for name, value in record.items():
                if name in ("hmlearn", "torch", "numpy", "python"):
                    versions.setdefault(name, set()).add(str(value))
    listed = "; ".join(f"{name} {', '.join(sorted(values))}" for name, values in versions.items()) or "not recorded"
    finished = sorted(str(v) for v in frame.get("finished_at", []) if isinstance(v, str) and v)
    span = f"{finished[0][:10]} to {finished[-1][:10]}" if finished else "not recorded"
    return (f"Library versions of the runs: {listed}. Runs finished {span}; report written "
            f"{datetime.date.today().isoformat()}.")


def _runs_table(runs: _Runs) -> _Table:
    rows = []
    for method in runs.methods:
        ok = runs.ok[runs.ok["method"] == method]
        failed = runs.failed[runs.failed["method"] == method]
        seconds = pd.to_numeric(ok["seconds"], errors="coerce").mean() if "seconds" in ok.columns else math.nan
        rows.append([method, str(len(ok)), str(len(failed)), str(ok["dataset"].nunique()),
                     str(ok["seed"].nunique()), _number(seconds, 0)])
    return _Table(["method", "ok runs", "failed runs", "datasets", "seeds", "mean seconds"], rows)


def _published(runs: _Runs, metric: str) -> dict[str, float]:
    """Dataset -> published C-HMCNN AU(PRC), for the AU(PRC) table's datasets that have one."""
    if metric != "au_prc":
        return {}
    from hmlearn.data.registry import PUBLISHED_AUPRC

    return {d: PUBLISHED_AUPRC[d] for d in runs.datasets if d in PUBLISHED_AUPRC}


def _metric_table(runs: _Runs, metric: str) -> _Table:
    summary = _cell_stats(runs, metric)
    decimals = _decimals(metric)
    failed_cells = runs.failed.groupby(["dataset", "method"]).size() if len(runs.failed) else pd.Series(dtype=int)
    most_seeds = int(summary["n"].max()) if len(summary) else 0
    rows, bold = [], set()
    for r, dataset in enumerate(runs.datasets):
        row, shown = [dataset], {}
        for c, method in enumerate(runs.methods, start=1):
            if (dataset, method) in summary.index:
                mean, std, n = summary.loc[(dataset, method)]
                text = _number(mean, decimals)
                if n > 1:
                    text += f" ± {_number(std, decimals)}"
                if n < most_seeds:
                    text += f" (n={int(n)})"
                if (dataset, method) in failed_cells.index:
                    text += f" ({failed_cells[(dataset, method)]} failed)"
                shown[c] = round(float(mean), decimals)
            elif (dataset, method) in failed_cells.index:
                text = f"failed ({failed_cells[(dataset, method)]})"
            else:
                text = "–"
            row.append(text)
        if len(set(shown.values())) > 1:  # a best to show: not a single method, not all tied
            best = max(shown.values())
            bold |= {(r, c) for c, value in shown.items() if value == best}
        rows.append(row)
    published = _published(runs, metric)
    ran = [m for m in runs.methods if m in set(runs.ok["method"])]
    table = stats.block_table(runs.ok, metric, ran, "dataset") if len(ran) > 1 else pd.DataFrame()
    if len(table):
        ranks = stats.average_ranks(table)
        row = [f"average rank ({len(table)} datasets)"]
        row += [_number(ranks[m], 2) if m in ranks.index else "–" for m in runs.methods]
        if ranks.nunique() > 1:
            bold |= {(len(rows), c) for c, m in enumerate(runs.methods, start=1)
                     if m in ranks.index and ranks[m] == ranks.min()}
        rows.append(row)
    seeds = {0: "no successful run", 1: "one seed"}.get(most_seeds, f"mean ± std over {most_seeds} seeds")
    caption = (f"{_metric_label(metric)}: {seeds} ((n=k): a cell with fewer seeds; (k failed): seeds that failed); "
               "best per dataset in bold; average rank: 1 = best, over the datasets where every method ran")
    header = ["dataset", *runs.methods]
    if published:  # a column after the dataset's: published C-HMCNN AU(PRC), never bold
        header.insert(1, "published")
        rows = [[row[0], _number(published[row[0]], decimals) if row[0] in published else "", *row[1:]]
                for row in rows]
        bold = {(r, c + 1) for r, c in bold}
        caption += ("; published: C-HMCNN's published AU(PRC), mean of 10 seeds (Giunchiglia & Lukasiewicz 2020; "
                    "hmlearn.data.registry.PUBLISHED_AUPRC)")
    return _Table(header, rows, bold, caption)


def _recall_ratios(runs: _Runs, baseline: str) -> dict[str, dict[str, float]]:
    """Method -> {dataset: mean recall of the method / mean recall of the baseline} (means over seeds),
    for the datasets where both ran and the baseline's recall is above 0."""
    summary = _cell_stats(runs, "recall")["mean"]
    ratios: dict[str, dict[str, float]] = {m: {} for m in runs.methods}
    for dataset in runs.datasets:
        base = summary.get((dataset, baseline), math.nan)
        for method in runs.methods:
            value = summary.get((dataset, method), math.nan)
            if math.isfinite(base) and base > 0 and math.isfinite(value):
                ratios[method][dataset] = value / base
    return ratios


def _recall_gain_table(runs: _Runs, baseline: str) -> _Table | str:
    others = [m for m in runs.methods if m != baseline]
    if not others:
        return "only the baseline ran: no recall gain to show"
    ratios = _recall_ratios(runs, baseline)
    rows = []
    for dataset in runs.datasets:
        rows.append([dataset] + [f"{ratios[m][dataset]:.2f}×" if dataset in ratios[m] else "–" for m in others])
    rows.append(["mean of dataset ratios"]
                + [f"{np.mean(list(ratios[m].values())):.2f}×" if ratios[m] else "–" for m in others])
    caption = (f"relative recall gain over {baseline}: mean recall of the method / mean recall of {baseline} per "
               "dataset (means over seeds); last row: the mean of the per-dataset ratios (– where the baseline's "
               "recall is 0 or a method did not run)")
    return _Table(["dataset", *others], rows, caption=caption)


def _summary_table(runs: _Runs, baseline: str, metrics: Sequence[str], alpha: float) -> _Table:
    """Per method: its runs, each metric's mean over the complete datasets, recall gain and F1 Wilcoxon p."""
    ran = [m for m in runs.methods if m in set(runs.ok["method"])]
    known = _known_metrics(runs)
    means, counts = {}, {}
    for metric in metrics:
        table = stats.block_table(runs.ok, metric, ran, "dataset") if ran else pd.DataFrame()
        means[metric], counts[metric] = table.mean(), len(table)
    gain = "recall" in known and len(ran) > 1
    ratios = _recall_ratios(runs, baseline) if gain else {}
    test = "f1" in known and len(ran) > 1
    header = ["method", "runs", *(_metric_label(m) for m in metrics)]
    header += ["recall gain"] * gain + [f"F1 Wilcoxon p vs {baseline}"] * test
    rows, bold = [], set()
    for r, method in enumerate(runs.methods):
        row = [method, str(int((runs.ok["method"] == method).sum()))]
        row += [_number(means[m].get(method, math.nan), _decimals(m)) for m in metrics]
        if gain:
            row.append(f"{np.mean(list(ratios[method].values())):.2f}×" if ratios.get(method) else "–")
        if test:
            p = math.nan
            if method != baseline and method in ran and baseline in ran:
                with contextlib.suppress(stats.StatsInputError):
                    p = stats.wilcoxon_test(runs.ok, method, baseline, "f1", blocks="dataset-seed").pvalue
            row.append(_pvalue(p))
            if p < alpha:
                bold.add((r, len(row) - 1))
        rows.append(row)
    for c, metric in enumerate(metrics, start=2):  # the best mean of each metric in bold
        shown = {r: round(float(means[metric][m]), _decimals(metric)) for r, m in enumerate(runs.methods)
                 if m in means[metric].index and math.isfinite(means[metric][m])}
        if len(set(shown.values())) > 1:
            bold |= {(r, c) for r, value in shown.items() if value == max(shown.values())}
    n = sorted(set(counts.values()))
    over = (f"{n[0]} datasets" if len(n) == 1 else "datasets") + " where every method ran"
    caption = (f"summary per method: each metric's mean over the {over} (of the means over the seeds), best in "
               "bold" + (f"; recall gain: the mean of the per-dataset recall ratios to {baseline} (the recall gain "
                         "table's last row)" if gain else "")
               + (f"; F1 Wilcoxon p: signed-rank test of the F1 against {baseline} over the (dataset, seed) pairs, "
                  f"p < {alpha:g} in bold" if test else ""))
    return _Table(header, rows, bold, caption)


def _wilcoxon_table(runs: _Runs, baseline: str, alpha: float) -> _Table | str:
    others = [m for m in runs.methods if m != baseline]
    if not others:
        return "only the baseline ran: nothing to test"
    rows, bold = [], set()
    for metric in TEST_METRICS:
        for method in others:
            try:
                result = stats.wilcoxon_test(runs.ok, method, baseline, metric, blocks="dataset-seed")
            except stats.StatsInputError as error:
                rows.append([method, _metric_label(metric), "0", "–", "–", "–", "–", str(error)])
                continue
            decimals = _decimals(metric)
            note = result.note
            floor = stats.smallest_wilcoxon_p(result.n - result.ties)
            if floor >= alpha:
                note = (note + "; " if note else "") + (f"{result.n - result.ties} non-zero pairs cannot give p < "
                                                        f"{alpha:g} (smallest possible p {floor:.3g})")
            rows.append([method, _metric_label(metric), str(result.n), f"{result.wins}/{result.ties}/{result.losses}",
                         f"{result.mean_difference:+.{decimals}f}" if result.n else "–",
                         _number(result.statistic, 1), _pvalue(result.pvalue), note])
            if result.significant(alpha):
                bold.add((len(rows) - 1, 6))
    caption = (f"Wilcoxon signed-rank test (two-sided) of each method against {baseline} over the (dataset, seed) "
               f"pairs both ran; W: the smaller signed-rank sum; p < {alpha:g} in bold")
    return _Table(["method", "metric", "pairs", "wins/ties/losses", f"mean difference vs {baseline}", "W", "p", "note"],
                  rows, bold, caption, align="llrrrrrl")


def _friedman_part(runs: _Runs, metric: str, blocks: str, alpha: float) -> list:
    methods = [m for m in runs.methods if m in set(runs.ok["method"])]
    try:
        result = stats.friedman_test(runs.ok, metric, methods, blocks=blocks, alpha=alpha)
    except stats.StatsInputError as error:
        return [_Text(f"Friedman test on {_metric_label(metric)}: not run: {error}.")]
    unit = " x ".join(result.blocks)
    verdict = ("the methods differ significantly" if result.significant()
               else "no significant difference among the methods" if math.isfinite(result.pvalue) else result.note)
    parts: list = [_Text(
        f"Friedman test on {_metric_label(metric)} with {result.n_blocks} {unit} blocks and {result.k} methods: "
        f"chi-square = {_number(result.statistic, 3)}, p = {_pvalue(result.pvalue)} ({verdict} at alpha = {alpha:g})"
        + (f"; {result.dropped_blocks} blocks left out where some method did not run" if result.dropped_blocks else "")
        + f". Nemenyi critical difference: CD = {result.critical_difference:.3f} (two methods whose average ranks "
          "differ by at least CD differ significantly).")]
    ranks = result.average_ranks
    best = {(r, 1) for r, m in enumerate(ranks.index) if ranks[m] == ranks.min()} if ranks.nunique() > 1 else set()
    parts.append(_Table(["method", "average rank"], [[m, f"{ranks[m]:.3f}"] for m in ranks.index],
                        best, f"average ranks on {_metric_label(metric)} (1 = best)"))
    order = list(ranks.index)
    rows, bold = [], set()
    for r, a in enumerate(order):
        rows.append([a] + ["" if a == b else _pvalue(result.nemenyi.loc[a, b]) for b in order])
        bold |= {(r, c) for c, b in enumerate(order, start=1) if a != b and result.nemenyi.loc[a, b] < alpha}
    parts.append(_Table(["method", *order], rows, bold, f"Nemenyi post-hoc p-values; p < {alpha:g} in bold"))
    parts.append(_Figure(f"cd_{_slug(metric)}", stats.cd_diagram(result),
                         f"critical-difference diagram, {_metric_label(metric)}: methods joined by a bar do not "
                         f"differ significantly (Nemenyi, alpha = {alpha:g})"))
    return parts


def _failed_table(runs: _Runs) -> _Table | str:
    if not len(runs.failed):
        return "none"
    failed = runs.failed.sort_values(["dataset", "method", "seed"], kind="stable")
    # the error's first paragraph: its one line (a traceback may follow after a blank line)
    rows = [[str(r.dataset), str(r.method), str(r.seed), _one_line(str(getattr(r, "error", "") or "").split("\n\n")[0])]
            for r in failed.itertuples(index=False)]
    return _Table(["dataset", "method", "seed", "error"], rows, caption=f"failed runs: {len(rows)}", align="llrl")


# ---------------------------------------------------------------------- plots
def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "plot"


def _colours(methods: Sequence[str]) -> dict[str, object]:
    from matplotlib import colormaps

    palette = colormaps["tab10" if len(methods) <= 10 else "tab20"]
    return {m: palette(i % palette.N) for i, m in enumerate(methods)}


def _curve_records(runs: _Runs, key: str) -> pd.DataFrame:
    """The ``curves[key]`` records of every ok run, with its dataset, method and seed."""
    parts = []
    for run in runs.ok.itertuples(index=False):
        curves = getattr(run, "curves", None)
        records = curves.get(key) if isinstance(curves, dict) else None
        if records:
            part = pd.DataFrame.from_records(records)
            parts.append(part.assign(dataset=run.dataset, method=run.method, seed=run.seed))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _mean_over_seeds_then_datasets(records: pd.DataFrame, group: str) -> pd.DataFrame:
    records = records.assign(recall=pd.to_numeric(records["recall"], errors="coerce"))
    per_dataset = records.groupby(["method", "dataset", group], sort=False)["recall"].mean()
    return per_dataset.groupby(["method", group], sort=False).mean().unstack(group)


def _depth_figure(runs: _Runs) -> _Figure | None:
    from matplotlib.figure import Figure

    records = _curve_records(runs, "by_depth")
    if records.empty or "depth" not in records:
        return None
    table = _mean_over_seeds_then_datasets(records, "depth")
    table = table.reindex(columns=sorted(table.columns))
    colours = _colours(runs.methods)
    figure = Figure(figsize=(7, 4), layout="constrained")
    axes = figure.add_subplot()
    for method in [m for m in runs.methods if m in table.index]:
        axes.plot(table.columns, table.loc[method], marker="o", label=method, color=colours[method])
    axes.set(xlabel="depth (1 = top level)", ylabel="node-macro recall (%)", title="recall by depth")
    axes.set_xticks(list(table.columns))
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    return _Figure("recall_by_depth", figure, "node-macro recall (percent, nodes present in the test set) by depth: "
                   "mean over seeds, then over the datasets that have that depth")


def _frequency_figure(runs: _Runs) -> _Figure | None:
    from matplotlib.figure import Figure

    records = _curve_records(runs, "by_frequency")
    if records.empty or "bucket" not in records:
        return None
    buckets = list(dict.fromkeys(records["bucket"]))
    table = _mean_over_seeds_then_datasets(records, "bucket").reindex(columns=buckets)
    methods = [m for m in runs.methods if m in table.index]
    colours = _colours(runs.methods)
    figure = Figure(figsize=(7, 4), layout="constrained")
    axes = figure.add_subplot()
    width = 0.8 / max(len(methods), 1)
    positions = np.arange(len(buckets))
    for i, method in enumerate(methods):
        axes.bar(positions + (i - (len(methods) - 1) / 2) * width, table.loc[method].to_numpy(dtype=float), width,
                 label=method, color=colours[method])
    axes.set_xticks(positions, buckets)
    axes.set(xlabel="training positives of the node", ylabel="node-macro recall (%)",
             title="recall by training frequency")
    axes.grid(alpha=0.3, axis="y")
    axes.legend(fontsize=8)
    return _Figure("recall_by_frequency", figure, "node-macro recall (percent, nodes present in the test set) by "
                   "the node's number of training positives: mean over seeds, then over datasets")


def _interpolated_precision(precision: Sequence[float], recall: Sequence[float]) -> np.ndarray:
    """Precision on :data:`PR_GRID`: the highest precision at a recall >= r (NaN beyond the curve's end)."""
    precision = np.asarray([math.nan if p is None else p for p in precision], dtype=float)
    recall = np.asarray([math.nan if r is None else r for r in recall], dtype=float)
    keep = np.isfinite(precision) & np.isfinite(recall)
    precision, recall = precision[keep], recall[keep]
    if recall.size == 0:
        return np.full(PR_GRID.shape, math.nan)
    order = np.argsort(recall, kind="stable")
    recall, precision = recall[order], precision[order]
    best_after = np.maximum.accumulate(precision[::-1])[::-1]  # max precision at index >= i
    index = np.searchsorted(recall, PR_GRID - 1e-12, side="left")
    out = np.full(PR_GRID.shape, math.nan)
    inside = index < recall.size
    out[inside] = best_after[index[inside]]
    return out


def _pr_figure(runs: _Runs, pr_dataset: str | None) -> _Figure | None:
    from matplotlib.figure import Figure

    curves: dict[tuple[str, str], list[np.ndarray]] = {}
    for run in runs.ok.itertuples(index=False):
        pr = run.curves.get("pr") if isinstance(getattr(run, "curves", None), dict) else None
        if pr and pr.get("precision") and pr.get("recall"):
            curves.setdefault((run.dataset, run.method), []).append(
                _interpolated_precision(pr["precision"], pr["recall"]))
    if not curves:
        return None
    datasets = [d for d in runs.datasets if any((d, m) in curves for m in runs.methods)]
    if pr_dataset is not None:
        if pr_dataset not in datasets:
            raise ReportError(f"no precision-recall curve for {pr_dataset!r}; datasets with curves: {', '.join(datasets)}")
        datasets = [pr_dataset]
    columns = min(len(datasets), 4)
    rows = math.ceil(len(datasets) / columns)
    size = (7, 4.5) if len(datasets) == 1 else (3.2 * columns, 2.8 * rows)
    figure = Figure(figsize=size, layout="constrained")
    grid = figure.subplots(rows, columns, squeeze=False, sharex=True, sharey=False)
    colours = _colours(runs.methods)
    for axes, dataset in zip(grid.flat, datasets):
        for method in runs.methods:
            if (dataset, method) in curves:
                with np.errstate(all="ignore"):
                    mean = np.nanmean(np.vstack(curves[(dataset, method)]), axis=0)
                axes.plot(PR_GRID, mean, label=method, color=colours[method], linewidth=1.2)
        axes.set_title(dataset, fontsize=9)
        axes.set_xlim(0, 1)
        axes.set_ylim(bottom=0)
        axes.grid(alpha=0.3)
        axes.tick_params(labelsize=7)
    for axes in grid.flat[len(datasets):]:
        axes.set_visible(False)
    for axes in grid[:, 0]:
        axes.set_ylabel("precision", fontsize=8)
    for axes in grid[-1, :]:
        axes.set_xlabel("recall", fontsize=8)
    handles, labels = grid.flat[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 3), fontsize=8)
    where = f"on {datasets[0]}" if len(datasets) == 1 else "per dataset"
    return _Figure("precision_recall", figure, f"micro precision-recall curves {where} (all (sample, node) pairs "
                   "pooled): mean over seeds of the interpolated precision (highest precision at a recall >= r)")


# ---------------------------------------------------------------------- assembling
def _comparison_cell(runs: _Runs, method: str, against: str, metric: str, alpha: float) -> tuple[str, int, bool]:
    """'+0.41 (p 0.002)': the mean difference of ``method`` minus ``against`` over the (dataset,
    seed) pairs and its Wilcoxon p; with the number of pairs and whether p < alpha."""
    try:
        result = stats.wilcoxon_test(runs.ok, method, against, metric, blocks="dataset-seed")
    except stats.StatsInputError:
        return "–", 0, False
    if not result.n:
        return "–", 0, False
    return (f"{result.mean_difference:+.{_decimals(metric)}f} (p {_pvalue(result.pvalue)})", result.n,
            result.significant(alpha))


def _comparisons_table(runs: _Runs, comparisons: Sequence[tuple[str, str]], metrics: Sequence[str],
                       alpha: float) -> _Table:
    unknown = sorted({name for pair in comparisons for name in pair if name not in runs.methods})
    if unknown:
        raise ReportError(f"--compare: {', '.join(map(repr, unknown))} not a method of these runs; methods found: "
                          f"{', '.join(runs.methods)}")
    rows, bold = [], set()
    for method, against in comparisons:
        cells = [_comparison_cell(runs, method, against, metric, alpha) for metric in metrics]
        rows.append([method, against, str(max((n for _, n, _ in cells), default=0))] + [text for text, _, _ in cells])
        bold |= {(len(rows) - 1, 3 + column) for column, (_, _, significant) in enumerate(cells) if significant}
    caption = ("paired comparisons: the mean difference of each method minus the one it is compared with over the "
               "(dataset, seed) pairs both ran (AU(PRC) a fraction, the rest percentage points), and the two-sided "
               f"Wilcoxon signed-rank p; p < {alpha:g} in bold")
    return _Table(["method", "compared with", "pairs"] + [_metric_label(m) for m in metrics], rows, bold, caption,
                  align="llr" + "r" * len(metrics))


def _document(frame: pd.DataFrame, baseline: str, metrics: Sequence[str], blocks: str, alpha: float,
              pr_dataset: str | None, title: str, comparisons: Sequence[tuple[str, str]] = ()) -> list:
    runs = _prepare(frame, baseline)
    metrics = _check_metrics(runs, list(dict.fromkeys(metrics)))
    seeds = sorted(runs.ok["seed"].dropna().unique().tolist()) if len(runs.ok) else []
    sweeps = sorted({str(s) for s in frame["sweep"].dropna()}) if "sweep" in frame.columns else []
    doc: list = [_Heading(title, 1), _Text(
        f"{len(runs.ok)} successful and {len(runs.failed)} failed runs: {len(runs.datasets)} datasets, "
        f"{len(runs.methods)} methods, seeds {', '.join(map(str, seeds)) or 'none'}"
        + (f", sweep {', '.join(sweeps)}" if sweeps else "") + f". Baseline: {baseline}. AU(PRC) and binary AP are "
        "fractions, the node-macro precision, recall and F1 percent (hmlearn.metrics.evaluate).")]
    if runs.superseded:
        doc.append(_Text(f"{runs.superseded} older runs of a (dataset, method, seed) that ran again under another "
                         "config or sweep are left out (the latest is kept); select one sweep with --sweep."))
    doc.append(_Text(_provenance(frame)))
    doc += [_Heading("Methods"), _methods_table(runs), _Heading("Runs"), _runs_table(runs), _Heading("Summary"),
            _summary_table(runs, baseline, metrics, alpha)]
    if comparisons:
        doc += [_Heading("Paired comparisons"), _comparisons_table(runs, comparisons, metrics, alpha)]
    doc.append(_Heading("Results"))
    doc += [_metric_table(runs, metric) for metric in metrics]
    doc.append(_Heading(f"Recall gain over {baseline}"))
    gain = _recall_gain_table(runs, baseline) if "recall" in _known_metrics(runs) else "no run has a recall"
    doc.append(gain if isinstance(gain, _Table) else _Text(gain))
    doc.append(_Heading("Statistical tests"))
    wilcoxon = _wilcoxon_table(runs, baseline, alpha)
    doc.append(wilcoxon if isinstance(wilcoxon, _Table) else _Text(wilcoxon))
    doc += _friedman_part(runs, "f1", blocks, alpha)
    doc.append(_Heading("Plots"))
    figures = [f for f in (_depth_figure(runs), _frequency_figure(runs), _pr_figure(runs, pr_dataset)) if f]
    doc += figures or [_Text("the runs hold no curves (recall by depth, by frequency, precision-recall)")]
    doc.append(_Heading("Failed runs"))
    failed = _failed_table(runs)
    doc.append(failed if isinstance(failed, _Table) else _Text(failed))
    return doc


def _known_metrics(runs: _Runs) -> set[str]:
    return {k for m in runs.ok["metrics"] if isinstance(m, dict) for k in m}


def _figure_bytes(figure, fmt: str) -> bytes:
    buffer = io.BytesIO()
    metadata = {"Software": None} if fmt == "png" else {"Creator": None, "Producer": None, "CreationDate": None}
    figure.savefig(buffer, format=fmt, dpi=100, metadata=metadata)  # no dates: the same runs give the same bytes
    return buffer.getvalue()


# ---------------------------------------------------------------------- renderers
def _write_figure(block: _Figure, files_dir: Path | None, fmt: str) -> str | None:
    """Write a figure as ``files_dir/<name>.<fmt>`` (atomically); its file name, or None without a folder."""
    if files_dir is None:
        return None
    name = f"{block.name}.{fmt}"
    with atomic_write(files_dir / name) as handle:
        handle.write(_figure_bytes(block.figure, fmt))
    return name


def _md_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace("*", "\\*").replace("\n", " ")


def _md_cell(text: str, bold: bool) -> str:
    text = text.replace("\\", "\\\\").replace("|", "\\|").replace("*", "\\*").replace("\n", " ")
    return f"**{text}**" if bold and text else text


def _render_md(doc: list, files_dir: Path | None) -> str:
    out = []
    for block in doc:
        if isinstance(block, _Heading):
            out.append(f"{'#' * block.level} {block.text}\n")
        elif isinstance(block, _Text):
            out.append(_md_text(block.text) + "\n")
        elif isinstance(block, _Table):
            if block.caption:
                out.append(f"*{_md_text(block.caption)}*\n")
            lines = ["| " + " | ".join(_md_cell(h, False) for h in block.header) + " |",
                     "|" + "|".join(":---" if a == "l" else "---:" for a in block.align) + "|"]
            for r, row in enumerate(block.rows):
                lines.append("| " + " | ".join(_md_cell(t, (r, c) in block.bold) for c, t in enumerate(row)) + " |")
            out.append("\n".join(lines) + "\n")
        elif isinstance(block, _Figure):
            name = _write_figure(block, files_dir, "png")
            if name is None:
                out.append(f"({block.caption}: not written, no folder for plots given)\n")
                continue
            out.append(f"![{block.name}]({files_dir.name}/{name})\n\n*{_md_text(block.caption)}*\n")
    return "\n".join(out)


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 80em;
       padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
caption { caption-side: top; text-align: left; color: #555; padding-bottom: 0.3em; max-width: 60em; }
th, td { padding: 0.25em 0.7em; border-bottom: 1px solid #ddd; }
th { border-bottom: 2px solid #444; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.txt, th.txt { text-align: left; }
figure { margin: 1em 0 2em; }
figure img { max-width: 100%; height: auto; }
figcaption { color: #555; font-size: 0.9em; max-width: 60em; }
"""


def _render_html(doc: list, title: str) -> str:
    e = html.escape
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">', f"<title>{e(title)}</title>",
           f"<style>{_CSS}</style>", "</head>", "<body>"]
    for block in doc:
        if isinstance(block, _Heading):
            out.append(f"<h{block.level}>{e(block.text)}</h{block.level}>")
        elif isinstance(block, _Text):
            out.append(f"<p>{e(block.text)}</p>")
        elif isinstance(block, _Table):
            out.append("<table>")
            if block.caption:
                out.append(f"<caption>{e(block.caption)}</caption>")
            kinds = ["txt" if a == "l" else "num" for a in block.align]
            out.append("<thead><tr>" + "".join(f'<th class="{k}">{e(h)}</th>' for k, h in zip(kinds, block.header))
                       + "</tr></thead><tbody>")
            for r, row in enumerate(block.rows):
                cells = []
                for c, text in enumerate(row):
                    inner = f"<b>{e(text)}</b>" if (r, c) in block.bold and text else e(text)
                    cells.append(f'<td class="{kinds[c]}">{inner}</td>')
                out.append("<tr>" + "".join(cells) + "</tr>")
            out.append("</tbody></table>")
        elif isinstance(block, _Figure):
            data = base64.b64encode(_figure_bytes(block.figure, "png")).decode("ascii")
            out.append(f'<figure id="{e(block.name)}"><img alt="{e(block.name)}" src="data:image/png;base64,{data}">'
                       f"<figcaption>{e(block.caption)}</figcaption></figure>")
    out += ["</body>", "</html>", ""]
    return "\n".join(out)


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def _tex(text: str) -> str:
    text = "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))
    return text.replace("±", r"$\pm$").replace("×", r"$\times$").replace("–", "--").replace("…", r"\ldots{}")


def _render_latex(doc: list, files_dir: Path | None, title: str) -> str:
    out = [r"\documentclass{article}", r"\usepackage[T1]{fontenc}", r"\usepackage[utf8]{inputenc}",
           r"\usepackage[margin=2cm]{geometry}", r"\usepackage{booktabs}", r"\usepackage{graphicx}",
           r"\usepackage{caption}", r"\usepackage{array}", "", r"\begin{document}", ""]
    for block in doc:
        if isinstance(block, _Heading) and block.level == 1:
            out.append(rf"\begin{{center}}\Large {_tex(block.text)}\end{{center}}")
        elif isinstance(block, _Heading):
            out.append(rf"\{'sub' * (block.level - 2)}section*{{{_tex(block.text)}}}")
        elif isinstance(block, _Text):
            out.append(_tex(block.text) + "\n")
        elif isinstance(block, _Table):
            spec = block.align
            if block.header[-1] in ("error", "note"):  # long text: a wrapping column
                spec = spec[:-1] + r">{\raggedright\arraybackslash}p{0.4\linewidth}"
            lines = [r"\begin{table}[htbp]", r"\centering", r"\small"]
            if block.caption:
                lines.append(rf"\caption*{{{_tex(block.caption)}}}")
            lines += [r"\resizebox{\ifdim\width>\linewidth\linewidth\else\width\fi}{!}{%",
                      rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
                      " & ".join(_tex(h) for h in block.header) + r" \\", r"\midrule"]
            for r, row in enumerate(block.rows):
                cells = [rf"\textbf{{{_tex(t)}}}" if (r, c) in block.bold and t else _tex(t) for c, t in enumerate(row)]
                lines.append(" & ".join(cells) + r" \\")
            lines += [r"\bottomrule", r"\end{tabular}}", r"\end{table}", ""]
            out.append("\n".join(lines))
        elif isinstance(block, _Figure):
            name = _write_figure(block, files_dir, "pdf")
            if name is None:
                out.append(f"({_tex(block.caption)}: not written, no folder for plots given)\n")
                continue
            out.append("\n".join([r"\begin{figure}[htbp]", r"\centering",
                                  rf"\includegraphics[width=\linewidth]{{{files_dir.name}/{name}}}",
                                  rf"\caption*{{{_tex(block.caption)}}}", r"\end{figure}", ""]))
    out += [r"\end{document}", ""]
    return "\n".join(out)


# ---------------------------------------------------------------------- public
def build_report(
    frame: pd.DataFrame,
    baseline: str = "C-HMCNN",
    metrics: Sequence[str] = DEFAULT_METRICS,
    fmt: str = "md",
    *,
    files_dir: str | Path | None = None,
    blocks: str = "dataset",
    alpha: float = 0.05,
    pr_dataset: str | None = None,
    title: str = "hmlearn report",
    comparisons: Sequence[tuple[str, str]] = (),
) -> str:
    """The report of the runs in ``frame`` as a string (see the module docstring for its content).

    Parameters
    ----------
    frame : the results frame, ``ResultStore.frame(status=None)`` (ok and failed rows; a frame of
        ok rows only works too). Needs the columns ``dataset``, ``method``, ``seed``, ``metrics``;
        ``status``, ``error``, ``curves``, ``seconds``, ``sweep``, ``finished_at`` are used when there.
    baseline : the method every other one is compared with.
    metrics : keys of :func:`hmlearn.metrics.evaluate`, one results table each. With the default,
        :data:`DEFAULT_METRICS`, those no run has are left out (runs imported with AU(PRC) only).
    fmt : ``"md"``, ``"html"`` or ``"latex"``.
    files_dir : for ``"md"`` and ``"latex"``, the folder the plots are written to (PNG, resp. PDF,
        atomically), expected beside the report: they are linked as ``<files_dir name>/<plot>``.
        Without it these formats carry no plots. HTML embeds its plots.
    blocks : the Friedman test's blocks, ``"dataset"`` (seed means) or ``"dataset-seed"``.
    alpha : significance level of the tests and the critical difference.
    pr_dataset : draw the precision-recall curves of this dataset only (default: one panel per dataset).
    comparisons : (method, against) pairs for the paired-comparisons section (each method with its
        own control, e.g. an ablation's arms); none by default.

    Raises :class:`ReportError` for an empty frame, a baseline or metric not in the runs.
    """
    if fmt not in FORMATS:
        raise ReportError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    doc = _document(frame, baseline, metrics, blocks, alpha, pr_dataset, title, comparisons)
    files = Path(files_dir) if files_dir is not None else None
    if fmt == "html":
        return _render_html(doc, title)
    if fmt == "latex":
        return _render_latex(doc, files, title)
    return _render_md(doc, files)


def report_path(runs_dir: str | Path, fmt: str) -> Path:
    """The default report file of a runs folder: ``RUNS/report.md``, ``.html`` or ``.tex``."""
    return Path(runs_dir) / f"report{FORMATS[fmt]}"


def write_report(frame: pd.DataFrame, path: str | Path, fmt: str | None = None, **options) -> Path:
    """Build the report of ``frame`` and write it to ``path`` atomically; returns ``path``.

    ``fmt`` defaults from the suffix (``.md``, ``.html``, ``.tex``). Markdown and LaTeX plots go
    to the folder ``<path stem>_files`` beside it. ``options`` are :func:`build_report`'s.
    """
    path = Path(path)
    if fmt is None:
        by_suffix = {suffix: name for name, suffix in FORMATS.items()}
        if path.suffix not in by_suffix:
            raise ReportError(f"{path}: cannot tell the format from the suffix; use .md, .html or .tex, or give fmt")
        fmt = by_suffix[path.suffix]
    files_dir = None if fmt == "html" else path.with_name(f"{path.stem}_files")
    text = build_report(frame, fmt=fmt, files_dir=files_dir, **options)
    with atomic_write(path, "w") as handle:
        handle.write(text)
    return path
