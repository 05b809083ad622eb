"""`hmlearn demo` (and `make demo`): a small real sweep, printed as a table, with an HTML report.

Plain C-HMCNN against the rare-node objective (node-wise imbalance weights, omega 0.2) and
against ``--rare-nodes`` (tuned decision thresholds, the setting configs/rare-nodes.yaml
recommends) on derisi_FUN, 3 seeds, ``fast`` preset, run through the same
sweep runner, results store and report as `hmlearn sweep` / `hmlearn report`. Where no
benchmark dataset can be found or downloaded it says so and runs on synthetic hierarchical data.
Finished cells are stored, so a second run only prints.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import click
from tabulate import tabulate

from hmlearn.errors import DatasetNotFoundError

BASELINE = "C-HMCNN"
DEMO_METHODS: dict[str, dict] = {
    BASELINE: {},
    "rare-node weights": {"node_weights": "class-wise", "omega": 0.2},
    "rare-nodes switch": {"rare_nodes": True},
}
COLUMNS = {"au_prc": "AU(PRC)", "binary_ap": "bin AP", "precision": "P %", "recall": "R %", "f1": "F1 %",
           "recall_rare": "R rare %"}


def demo_spec(dataset: str = "derisi_FUN", seeds: int | list[int] = 3, preset: str = "fast") -> dict:
    """The sweep spec of the demo, as `configs/demo.yaml` writes it (a test keeps both equal)."""
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    return {"name": "demo", "preset": preset, "datasets": [dataset], "seeds": seed_list, "methods": DEMO_METHODS}


def _dataset_entry(dataset: str, runs_dir: Path) -> tuple[str, str]:
    """(spec entry, label): the registry name if its files are found or fetched, else synthetic ARFF files."""
    from hmlearn.data.store import fetch

    try:
        fetch(dataset)
        return dataset, dataset
    except DatasetNotFoundError as error:
        from hmlearn.data.arff import write_arff
        from hmlearn.data.synthetic import make_hmc_data, train_test_split

        click.echo(f"{error}\n-> offline fallback: synthetic hierarchical data (200 nodes, long-tailed)")
        data = make_hmc_data(n_samples=3000, n_features=40, n_nodes=200, max_depth=5, signal=2.0, seed=0)
        train, test = train_test_split(data, 0.35, seed=0)
        folder = runs_dir / "synthetic"
        write_arff(train, folder / "synthetic.train.arff")
        write_arff(test, folder / "synthetic.test.arff")
        return str((folder / "synthetic.train.arff").resolve()), "synthetic"


def summary_table(frame) -> str:
    """Method rows: mean ± std over seeds of each metric, recall relative to the baseline, coherence."""
    from hmlearn.experiments.stats import smallest_wilcoxon_p, wilcoxon_test

    ok = frame[frame["status"] == "ok"]
    base = [m["recall"] for m in ok[ok["method"] == BASELINE]["metrics"]]
    base_recall = statistics.fmean(base) if base else 0.0  # every baseline cell failed: no ratio
    rows = []
    for method, runs in ok.groupby("method", sort=False):
        metrics = list(runs["metrics"])
        row = {"method": method, "seeds": len(metrics)}
        for key, label in COLUMNS.items():
            values = [m[key] for m in metrics]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            digits = 3 if key in ("au_prc", "binary_ap") else 2
            row[label] = f"{statistics.fmean(values):.{digits}f} ± {spread:.{digits}f}"
        recall = statistics.fmean(m["recall"] for m in metrics)
        row["R / plain"] = f"{recall / base_recall:.2f}x" if base_recall else "-"
        if method != BASELINE:
            test = wilcoxon_test(ok, method, BASELINE, metric="f1")
            floor = smallest_wilcoxon_p(test.n - test.ties)
            flag = f" (>= {floor:.3g} with {test.n - test.ties} pairs)" if floor >= 0.05 else ""
            row["F1 Wilcoxon p"] = f"{test.pvalue:.3g}{flag}" if test.pvalue == test.pvalue else "-"
        row["coherent"] = all(bool(m["coherent"]) for m in metrics)
        rows.append(row)
    rows.sort(key=lambda r: r["method"] != BASELINE)
    return tabulate(rows, headers="keys", tablefmt="simple", disable_numparse=True)


def run_demo(dataset: str = "derisi_FUN", seeds: int | list[int] = 3, preset: str = "fast",
             runs_dir: str | Path = "runs/demo", executor: str = "process", progress: bool = True) -> str:
    """Run (or resume) the demo sweep, write ``runs_dir/report.html``, return the printed table."""
    from hmlearn.experiments.report import write_report
    from hmlearn.experiments.runner import run_sweep
    from hmlearn.experiments.spec import expand, parse_spec

    runs_dir = Path(runs_dir)
    entry, label = _dataset_entry(dataset, runs_dir)
    spec = parse_spec({**demo_spec(dataset, seeds, preset), "datasets": [entry]}, "hmlearn demo")
    store = run_sweep(spec, runs_dir, executor=executor, progress=progress)
    try:
        frame = store.frame(status=None, per_node=False)
    finally:
        store.close()
    frame = frame[frame["key"].isin({cell.key for cell in expand(spec)})]  # not runs of another --preset / --seeds
    report = write_report(frame, runs_dir / "report.html", "html", baseline=BASELINE)
    title = (f"{label}: plain C-HMCNN vs the rare-node weights and --rare-nodes; preset {preset!r}, "
             f"{len(spec.seeds)} seeds (mean ± std). AU(PRC), binary AP: fractions; precision, recall, F1 and the "
             "recall of nodes with < 20 training positives: node-macro percent.")
    return f"{title}\n{summary_table(frame)}\n\nHTML report: {report}\nresults store: {runs_dir / 'results.sqlite'}"
