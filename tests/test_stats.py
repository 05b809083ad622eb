"""hmlearn.experiments.stats against hand-computed cases and scipy / scikit-posthocs on the same arrays."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import friedmanchisquare, studentized_range, wilcoxon

from hmlearn.errors import HMLError
from hmlearn.experiments import stats


def frame_from(values: dict[tuple[str, str, int], float], metric: str = "f1", failed=()) -> pd.DataFrame:
    """A results frame (the store's shape) from {(dataset, method, seed): value}."""
    rows = [{"dataset": d, "method": m, "seed": s, "status": "ok", "error": None, "metrics": {metric: v, "other": 1.0}}
            for (d, m, s), v in values.items()]
    rows += [{"dataset": d, "method": m, "seed": s, "status": "failed", "error": "boom", "metrics": None}
             for d, m, s in failed]
    return pd.DataFrame(rows)


def grid(table: list[list[float]], methods=("A", "B", "C", "D"), seeds=(0,)) -> pd.DataFrame:
    """One block per row of ``table`` (dataset d0, d1, ...), one column per method; same value for every seed."""
    return frame_from({(f"d{i}", m, s): v for i, row in enumerate(table) for m, v in zip(methods, row) for s in seeds})


# 3 datasets x 4 methods; ranks by hand (1 = highest, ties share the mean rank):
#   d0: 0.9 0.8 0.7 0.6 -> 1 2 3 4
#   d1: 0.5 0.7 0.7 0.1 -> 3 1.5 1.5 4
#   d2: 0.3 0.4 0.2 0.9 -> 3 2 4 1
TABLE_3X4 = [[0.9, 0.8, 0.7, 0.6], [0.5, 0.7, 0.7, 0.1], [0.3, 0.4, 0.2, 0.9]]
RANKS_3X4 = {"A": 7 / 3, "B": 5.5 / 3, "C": 8.5 / 3, "D": 9 / 3}


def test_average_ranks_of_a_3x4_table_by_hand():
    table = stats.block_table(grid(TABLE_3X4), "f1", blocks="dataset")
    assert list(table.columns) == ["A", "B", "C", "D"] and list(table.index) == ["d0", "d1", "d2"]
    ranks = stats.average_ranks(table)
    assert ranks.to_dict() == pytest.approx(RANKS_3X4)
    assert list(ranks.index) == ["B", "A", "C", "D"]  # best first


def test_block_table_means_seeds_per_dataset_and_keeps_complete_blocks():
    values = {("d0", "A", 0): 1.0, ("d0", "A", 1): 3.0, ("d0", "B", 0): 5.0, ("d0", "B", 1): 5.0,
              ("d1", "A", 0): 2.0}  # d1 lacks B
    frame = frame_from(values, failed=[("d1", "B", 0)])
    by_dataset = stats.block_table(frame, "f1", blocks="dataset")
    assert by_dataset.loc["d0"].to_dict() == {"A": 2.0, "B": 5.0} and list(by_dataset.index) == ["d0"]
    everything = stats.block_table(frame, "f1", blocks="dataset", complete=False)
    assert math.isnan(everything.loc["d1", "B"])
    pairs = stats.block_table(frame, "f1", blocks="dataset-seed")
    assert pairs.index.names == ["dataset", "seed"] and len(pairs) == 2


def test_block_table_refuses_duplicates_unknown_methods_and_metrics():
    frame = frame_from({("d0", "A", 0): 1.0, ("d0", "B", 0): 2.0})
    twice = pd.concat([frame, frame], ignore_index=True)
    with pytest.raises(stats.StatsInputError, match="share their"):
        stats.block_table(twice, "f1")
    with pytest.raises(HMLError, match="methods found: A, B"):
        stats.block_table(frame, "f1", ["A", "Z"])
    with pytest.raises(HMLError, match="runs have: f1, other"):
        stats.block_table(frame, "recall")
    with pytest.raises(HMLError, match="blocks must be"):
        stats.block_table(frame, "f1", blocks="seed")


# ---------------------------------------------------------------------- Wilcoxon
def test_wilcoxon_equals_scipy_on_the_paired_differences():
    rng = np.random.default_rng(1)
    values = {}
    for d in ("d0", "d1", "d2", "d3"):
        for s in range(3):
            base = rng.random()
            values[(d, "base", s)] = base
            values[(d, "new", s)] = base + rng.normal(0.2, 0.3)
    values[("d4", "new", 0)] = 9.0  # no baseline there: not a pair
    frame = frame_from(values)
    result = stats.wilcoxon_test(frame, "new", "base", "f1")
    differences = np.array([values[(d, "new", s)] - values[(d, "base", s)]
                            for d in ("d0", "d1", "d2", "d3") for s in range(3)])
    expected = wilcoxon(differences)
    assert result.n == 12
    assert result.statistic == pytest.approx(expected.statistic)
    assert result.pvalue == pytest.approx(expected.pvalue)
    assert result.mean_difference == pytest.approx(differences.mean())
    assert (result.wins, result.ties, result.losses) == (int((differences > 0).sum()), 0, int((differences < 0).sum()))
    one_sided = stats.wilcoxon_test(frame, "new", "base", "f1", alternative="greater")
    assert one_sided.pvalue == pytest.approx(wilcoxon(differences, alternative="greater").pvalue)


def test_wilcoxon_on_dataset_means():
    values = {(d, m, s): v + s for d, (a, b) in {"d0": (1, 2), "d1": (1, 4), "d2": (2, 1)}.items()
              for m, v in (("a", a), ("b", b)) for s in (0, 1)}
    result = stats.wilcoxon_test(frame_from(values), "b", "a", "f1", blocks="dataset")
    assert result.n == 3 and result.pvalue == pytest.approx(wilcoxon([1.0, 3.0, -1.0]).pvalue)


def test_wilcoxon_all_zero_differences_say_so():
    frame = frame_from({(d, m, 0): 0.5 for d in ("d0", "d1", "d2") for m in ("a", "b")})
    result = stats.wilcoxon_test(frame, "a", "b", "f1")
    assert result.n == 3 and result.ties == 3 and result.mean_difference == 0.0
    assert math.isnan(result.pvalue) and math.isnan(result.statistic) and not result.significant()
    assert "all 3 differences are zero" in result.note


def test_wilcoxon_without_pairs():
    frame = frame_from({("d0", "a", 0): 1.0, ("d1", "b", 0): 2.0})
    result = stats.wilcoxon_test(frame, "a", "b", "f1")
    assert result.n == 0 and math.isnan(result.pvalue) and "no dataset/seed block" in result.note


def test_wilcoxon_a_method_that_always_wins_is_significant():
    frame = frame_from({(f"d{i}", m, s): (2.0 if m == "good" else 1.0) + 0.01 * i + 0.001 * s
                        for i in range(4) for s in range(3) for m in ("good", "base")})
    result = stats.wilcoxon_test(frame, "good", "base", "f1")
    assert result.wins == 12 and result.significant(0.01)


# ---------------------------------------------------------------------- Friedman, Nemenyi, CD
def test_friedman_equals_scipy_and_nemenyi_equals_the_formula():
    frame = grid(TABLE_3X4)
    result = stats.friedman_test(frame, "f1")
    columns = np.array(TABLE_3X4).T
    expected = friedmanchisquare(*columns)
    assert result.statistic == pytest.approx(expected.statistic) and result.pvalue == pytest.approx(expected.pvalue)
    assert (result.k, result.n_blocks, result.blocks) == (4, 3, ("dataset",))
    assert result.average_ranks.to_dict() == pytest.approx(RANKS_3X4)
    # Nemenyi (Demsar 2006): q = |R_i - R_j| / sqrt(k (k+1) / (6 N)), p = P(studentized range > q sqrt 2)
    se = math.sqrt(4 * 5 / (6 * 3))
    for a in "ABCD":
        for b in "ABCD":
            if a != b:
                q = abs(RANKS_3X4[a] - RANKS_3X4[b]) / se
                assert result.nemenyi.loc[a, b] == pytest.approx(studentized_range.sf(q * math.sqrt(2), 4, np.inf),
                                                                 rel=1e-6)
    assert np.allclose(np.diag(result.nemenyi), 1.0)


@pytest.mark.parametrize(("k", "q"), [(2, 1.960), (3, 2.343), (4, 2.569), (5, 2.728), (10, 3.164)])
def test_critical_difference_uses_demsar_q_values(k, q):
    n = 14
    assert stats.critical_difference(k, n) == pytest.approx(q * math.sqrt(k * (k + 1) / (6 * n)), abs=1e-3)


def test_a_method_dominating_everywhere_ranks_first_and_significantly():
    rng = np.random.default_rng(0)
    table = rng.random((10, 4))
    table[:, 2] = 2.0 + rng.random(10)  # method C beats everyone on every dataset
    result = stats.friedman_test(grid(table.tolist()), "f1")
    assert result.average_ranks.index[0] == "C" and result.average_ranks["C"] == 1.0
    assert result.significant() and result.pvalue < 0.01
    worst = result.average_ranks.index[-1]
    assert result.average_ranks[worst] - 1.0 > result.critical_difference
    assert result.nemenyi.loc["C", worst] < 0.05


def test_friedman_over_dataset_seed_blocks_and_dropped_blocks():
    values = {(f"d{i}", m, s): float(j + s) for i in range(3) for j, m in enumerate("ABC") for s in range(2)}
    del values[("d2", "A", 1)]
    frame = frame_from(values)
    result = stats.friedman_test(frame, "f1", blocks="dataset-seed")
    assert result.n_blocks == 5 and result.dropped_blocks == 1 and result.blocks == ("dataset", "seed")
    by_dataset = stats.friedman_test(frame, "f1")  # d2's A is the mean of its one seed
    assert by_dataset.n_blocks == 3 and by_dataset.dropped_blocks == 0


def test_friedman_refusals_and_ties():
    with pytest.raises(stats.StatsInputError, match="at least 3 methods"):
        stats.friedman_test(grid([[1, 2], [2, 3]], methods=("A", "B")), "f1")
    with pytest.raises(stats.StatsInputError, match="at least 2 blocks.*dataset, seed"):
        stats.friedman_test(grid([[1, 2, 3]], methods="ABC"), "f1")
    tied = stats.friedman_test(grid([[1, 1, 1], [2, 2, 2]], methods="ABC"), "f1")
    assert math.isnan(tied.pvalue) and "complete tie" in tied.note
    assert tied.average_ranks.to_dict() == {"A": 2.0, "B": 2.0, "C": 2.0}


def test_cd_diagram_is_a_figure():
    from matplotlib.figure import Figure

    result = stats.friedman_test(grid(TABLE_3X4), "f1")
    figure = stats.cd_diagram(result)
    assert isinstance(figure, Figure)
    texts = " ".join(t.get_text() for t in figure.axes[0].texts)
    assert "CD = " in texts and "B (1.83)" in texts


def test_cd_diagram_bars_follow_alpha():
    """Methods closer than the Nemenyi threshold share a crossbar; a looser alpha separates them."""

    def crossbars(alpha: float) -> list[int]:  # the number of methods under each bar
        figure = stats.cd_diagram(stats.friedman_test(grid(TABLE_3X4), "f1", alpha=alpha))
        return sorted(len(line.get_xdata()) for line in figure.axes[0].lines
                      if len(set(line.get_ydata())) == 1 and line.get_ydata()[0] < 0 and len(line.get_xdata()) > 1)

    assert crossbars(0.05) == [4]  # every p-value is large: one bar over all four methods
    assert crossbars(0.9) == [2, 3]  # B-C (p 0.78) and B-D (p 0.69) now differ: {A, B}, {A, C, D}
    assert crossbars(0.999) == []  # every p-value (C-D: 0.9986) is below alpha: no bar


def test_wilcoxon_with_zero_differences_drops_them_as_wilcox_does():
    """Ties (zero differences) are where zero_method matters: "wilcox" drops them, "pratt" / "zsplit" do not."""
    differences = [0.0, 0.0, 0.4, -0.1, 0.3, 0.5, 0.2, -0.05, 0.6, 0.0]
    values = {}
    for i, d in enumerate(differences):
        values[(f"d{i}", "base", 0)] = 1.0
        values[(f"d{i}", "new", 0)] = 1.0 + d
    frame = frame_from(values)
    result = stats.wilcoxon_test(frame, "new", "base", "f1")
    exact = np.array([values[(f"d{i}", "new", 0)] - 1.0 for i in range(len(differences))])
    assert result.ties == 3
    assert result.pvalue == pytest.approx(wilcoxon(exact, zero_method="wilcox").pvalue)
    assert result.pvalue != pytest.approx(wilcoxon(exact, zero_method="pratt").pvalue)
    assert result.pvalue != pytest.approx(wilcoxon(exact, zero_method="zsplit").pvalue)
