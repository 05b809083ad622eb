"""hmlearn.experiments.report and `hmlearn report`: tables, bold cells, statistics, plots, formats, errors."""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from hmlearn.cli import main
from hmlearn.experiments import stats
from hmlearn.experiments.report import ReportError, build_report, write_report
from hmlearn.experiments.store import ResultStore, cell_key

DATASETS = ("alpha_FUN", "beta_FUN", "gamma_GO")
METHODS = ("C-HMCNN", "weights", "focal")
# Mean F1 per dataset (rows) and method (columns); the seeds add -0.1, 0, +0.1: std (ddof 1) 0.10.
F1 = {"alpha_FUN": (3.0, 5.0, 4.0), "beta_FUN": (2.0, 2.5, 6.0), "gamma_GO": (1.0, 4.0, 3.0)}
# Mean recall (no seed noise): ratios to C-HMCNN 2.00x / 1.50x, 3.00x / 1.50x, undefined (baseline 0).
RECALL = {"alpha_FUN": (2.0, 4.0, 3.0), "beta_FUN": (1.0, 3.0, 1.5), "gamma_GO": (0.0, 1.0, 2.0)}
SEED_NOISE = (-0.1, 0.0, 0.1)
ERROR = "RuntimeError: out of memory <allocating 4 GiB> & more"


def _curves(recall: float) -> dict:
    points = np.linspace(1.0, 0.0, 21)
    return {"pr": {"precision": (0.2 + 0.6 * (1 - points) ** 2).tolist(), "recall": points.tolist()},
            "by_depth": [{"depth": d, "n_nodes": 10, "n_present": 8, "recall": recall / d} for d in (1, 2, 3)],
            "by_frequency": [{"bucket": b, "n_nodes": 10, "n_present": 8, "recall": recall * (i + 1)}
                             for i, b in enumerate(("<5", "5-19", "20-99", ">=100"))]}


def _rows() -> list[dict]:
    rows = []
    for dataset in DATASETS:
        for j, method in enumerate(METHODS):
            for seed, noise in enumerate(SEED_NOISE):
                config = {"seed": seed, "preset": "fast", "method": method}
                metrics = {"au_prc": 0.2 + 0.01 * j, "binary_ap": 0.05, "precision": 5.0 + j,
                           "recall": RECALL[dataset][j], "f1": F1[dataset][j] + noise, "recall_rare": 1.0,
                           "coherent": True}
                rows.append({"key": cell_key(dataset, method, config), "sweep": "test", "dataset": dataset,
                             "method": method, "seed": seed, "status": "ok", "config": config, "metrics": metrics,
                             "per_node": [], "curves": _curves(RECALL[dataset][j]), "seconds": 2.0,
                             "versions": {"hmlearn": "0"}, "finished_at": "2025-01-01T00:00:00+00:00"})
    failed = [("gamma_GO", "focal", 3), ("alpha_FUN", "broken", 0), ("alpha_FUN", "broken", 1)]
    for dataset, method, seed in failed:
        config = {"seed": seed, "method": method}
        rows.append({"key": cell_key(dataset, method, config), "sweep": "test", "dataset": dataset,
                     "method": method, "seed": seed, "status": "failed", "error": ERROR, "config": config,
                     "seconds": 1.0, "finished_at": "2025-01-01T00:00:00+00:00"})
    return rows


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory) -> Path:
    """A runs folder whose results.sqlite is written through ResultStore.add, as a sweep writes it."""
    folder = tmp_path_factory.mktemp("runs")
    with ResultStore(folder) as store:
        for row in _rows():
            store.add(row)
    return folder


@pytest.fixture(scope="module")
def frame(runs_dir) -> pd.DataFrame:
    with ResultStore(runs_dir) as store:
        return store.frame(status=None)


@pytest.fixture(scope="module")
def markdown(frame, tmp_path_factory) -> tuple[str, Path]:
    path = tmp_path_factory.mktemp("md") / "report.md"
    write_report(frame, path)
    return path.read_text(), path


@pytest.fixture(scope="module")
def html_report(frame, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("html") / "report.html"
    write_report(frame, path)
    return path


def md_table(text: str, caption_start: str) -> list[list[str]]:
    """The rows (header first) of the Markdown table whose caption starts with ``caption_start``."""
    block = text.split(f"*{caption_start}", 1)[1].split("\n\n", 2)[1]
    lines = [line for line in block.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines[:1] + lines[2:]]


# ---------------------------------------------------------------------- Markdown
def test_markdown_results_table_means_std_and_bold_best(markdown):
    text, _ = markdown
    rows = md_table(text, "F1 (%)")
    assert rows[0] == ["dataset", "C-HMCNN", "broken", "focal", "weights"]  # the baseline, then the store's order
    cells = {row[0]: dict(zip(rows[0][1:], row[1:])) for row in rows[1:]}
    assert cells["alpha_FUN"] == {"C-HMCNN": "3.00 ± 0.10", "weights": "**5.00 ± 0.10**", "focal": "4.00 ± 0.10",
                                  "broken": "failed (2)"}
    assert cells["beta_FUN"]["focal"] == "**6.00 ± 0.10**" and cells["beta_FUN"]["weights"] == "2.50 ± 0.10"
    assert cells["gamma_GO"]["weights"] == "**4.00 ± 0.10**"
    assert cells["gamma_GO"]["focal"] == "3.00 ± 0.10 (1 failed)" and cells["gamma_GO"]["broken"] == "–"
    # average ranks over the 3 datasets: weights 1, 2, 1; focal 2, 1, 2; C-HMCNN last everywhere
    ranks = cells["average rank (3 datasets)"]
    assert ranks == {"C-HMCNN": "3.00", "weights": "**1.33**", "focal": "1.67", "broken": "–"}


def test_markdown_means_equal_the_computed_means(markdown, frame):
    text, _ = markdown
    ok = frame[frame["status"] == "ok"]
    values = ok.assign(v=stats.metric_values(ok, "au_prc")).groupby(["dataset", "method"])["v"]
    rows = md_table(text, "AU(PRC)")
    cells = {row[0]: dict(zip(rows[0][1:], row[1:])) for row in rows[1:]}
    for (dataset, method), mean in values.mean().items():
        assert cells[dataset][method].strip("*").split(" ± ")[0] == f"{mean:.3f}"
    assert all(cells[d]["focal"].startswith("**") for d in DATASETS)  # 0.22 beats 0.21 and 0.20


def test_markdown_recall_gain(markdown):
    rows = md_table(markdown[0], "relative recall gain")
    cells = {row[0]: row[1:] for row in rows[1:]}
    assert rows[0] == ["dataset", "broken", "focal", "weights"]
    assert cells["alpha_FUN"] == ["–", "1.50×", "2.00×"]
    assert cells["beta_FUN"] == ["–", "1.50×", "3.00×"]
    assert cells["gamma_GO"] == ["–", "–", "–"]  # the baseline's recall is 0
    assert cells["mean of dataset ratios"] == ["–", "1.50×", "2.50×"]


def test_markdown_statistics_match_stats_module(markdown, frame):
    text = markdown[0]
    ok = frame[frame["status"] == "ok"]
    rows = md_table(text, "Wilcoxon")
    by_key = {(r[0], r[1]): r for r in rows[1:]}
    expected = stats.wilcoxon_test(ok, "weights", "C-HMCNN", "f1")
    row = by_key[("weights", "F1 (%)")]
    assert row[2] == "9" and row[3] == "9/0/0" and row[4] == f"{expected.mean_difference:+.2f}"
    assert row[6] == f"**{expected.pvalue:.3g}**"
    assert "no successful run of 'broken'" in by_key[("broken", "F1 (%)")][-1]
    friedman = stats.friedman_test(ok, "f1", ["C-HMCNN", "weights", "focal"])
    assert f"p = {friedman.pvalue:.3g}" in text and f"CD = {friedman.critical_difference:.3f}" in text
    assert "with 3 dataset blocks and 3 methods" in text


def test_markdown_plots_are_png_files_beside_the_report(markdown):
    text, path = markdown
    links = re.findall(r"!\[[^]]*\]\(([^)]+)\)", text)
    assert {Path(link).name for link in links} == {"cd_f1.png", "recall_by_depth.png", "recall_by_frequency.png",
                                                   "precision_recall.png"}
    for link in links:
        assert link.startswith("report_files/")
        with Image.open(path.parent / link) as image:
            image.verify()


def test_markdown_lists_failed_runs_with_errors(markdown):
    rows = md_table(markdown[0], "failed runs: 3")
    assert rows[0] == ["dataset", "method", "seed", "error"]
    assert ["gamma_GO", "focal", "3", ERROR] in rows
    assert sum(r[1] == "broken" for r in rows) == 2


def test_no_published_column_without_a_registry_dataset(markdown):
    rows = md_table(markdown[0], "AU(PRC)")
    assert rows[0] == ["dataset", "C-HMCNN", "broken", "focal", "weights"]
    assert "published" not in markdown[0]


def _registry_runs(au_prc_only: bool = False) -> pd.DataFrame:
    """Runs on derisi_FUN (published AU(PRC) 0.195) and on an ARFF file (none published)."""
    rows = []
    for dataset in ("derisi_FUN", "data/mine_train.arff"):
        for j, method in enumerate(("C-HMCNN", "weights")):
            for seed in (0, 1):
                metrics = {"au_prc": 0.19 + 0.002 * seed + 0.01 * j}
                if not au_prc_only:
                    metrics.update(recall=2.0 + j, f1=3.0 + j + 0.1 * seed)
                rows.append({"dataset": dataset, "method": method, "seed": seed, "status": "ok", "metrics": metrics})
    return pd.DataFrame(rows)


def test_published_auprc_beside_a_registry_dataset():
    from hmlearn.data.registry import PUBLISHED_AUPRC

    frame = _registry_runs()
    text = build_report(frame, metrics=["au_prc", "f1"])
    rows = md_table(text, "AU(PRC)")
    assert rows[0] == ["dataset", "published", "C-HMCNN", "weights"]
    cells = {row[0]: row[1:] for row in rows[1:]}
    assert cells["derisi_FUN"] == [f"{PUBLISHED_AUPRC['derisi_FUN']:.3f}", "0.191 ± 0.001", "**0.201 ± 0.001**"]
    assert cells["data/mine_train.arff"] == ["", "0.191 ± 0.001", "**0.201 ± 0.001**"]  # nothing published
    assert cells["average rank (2 datasets)"] == ["", "2.00", "**1.00**"]  # ranks only the methods
    assert "published: C-HMCNN's published AU(PRC)" in text
    assert md_table(text, "F1 (%)")[0] == ["dataset", "C-HMCNN", "weights"]  # AU(PRC) only
    latex = build_report(frame, metrics=["au_prc"], fmt="latex")
    assert r"derisi\_FUN & 0.195 & 0.191 $\pm$ 0.001 & \textbf{0.201 $\pm$ 0.001} \\" in latex
    html = build_report(frame, metrics=["au_prc"], fmt="html")
    assert '<th class="num">published</th>' in html and '<td class="num">0.195</td>' in html
    no_registry = frame.assign(dataset=frame["dataset"].replace("derisi_FUN", "derisi_copy"))
    assert "published" not in md_table(build_report(no_registry, metrics=["au_prc"]), "AU(PRC)")[0]


def test_summary_per_method(markdown, frame):
    rows = md_table(markdown[0], "summary per method")
    assert rows[0] == ["method", "runs", "AU(PRC)", "binary AP", "precision (%)", "recall (%)", "F1 (%)",
                       "recall of rare nodes (%)", "recall gain", "F1 Wilcoxon p vs C-HMCNN"]
    cells = {row[0]: dict(zip(rows[0][1:], row[1:])) for row in rows[1:]}
    assert cells["weights"]["F1 (%)"] == f"{(5.0 + 2.5 + 4.0) / 3:.2f}"  # the mean over the 3 datasets
    assert cells["focal"]["F1 (%)"] == f"**{(4.0 + 6.0 + 3.0) / 3:.2f}**"  # the best in bold
    assert cells["C-HMCNN"]["F1 (%)"] == "2.00" and cells["C-HMCNN"]["runs"] == "9"
    assert cells["weights"]["recall gain"] == "2.50×" and cells["focal"]["recall gain"] == "1.50×"
    ok = frame[frame["status"] == "ok"]
    assert cells["weights"]["F1 Wilcoxon p vs C-HMCNN"] == \
        f"**{stats.wilcoxon_test(ok, 'weights', 'C-HMCNN', 'f1').pvalue:.3g}**"
    assert cells["C-HMCNN"]["F1 Wilcoxon p vs C-HMCNN"] == "–"
    assert cells["broken"] == {"runs": "0", "AU(PRC)": "–", "binary AP": "–", "precision (%)": "–", "recall (%)": "–",
                               "F1 (%)": "–", "recall of rare nodes (%)": "–", "recall gain": "–",
                               "F1 Wilcoxon p vs C-HMCNN": "–"}


def test_default_metrics_are_those_the_runs_have():
    """Runs imported with AU(PRC) alone report it without --metric; a metric asked for must exist."""
    frame = _registry_runs(au_prc_only=True)
    text = build_report(frame)
    assert "*AU(PRC)" in text and "*F1 (%)" not in text and "no run has a recall" in text
    assert md_table(text, "summary per method")[0] == ["method", "runs", "AU(PRC)"]
    with pytest.raises(ReportError, match="unknown metric.*'f1'.*the runs have: au_prc"):
        build_report(frame, metrics=["au_prc", "f1"])


# ---------------------------------------------------------------------- LaTeX, HTML
def test_latex_booktabs_bold_and_escapes(frame, tmp_path):
    path = write_report(frame, tmp_path / "paper.tex", metrics=["f1"])
    text = path.read_text()
    assert r"\usepackage{booktabs}" in text and r"\toprule" in text and r"\bottomrule" in text
    assert r"alpha\_FUN & 3.00 $\pm$ 0.10 & failed (2) & 4.00 $\pm$ 0.10 & \textbf{5.00 $\pm$ 0.10} \\" in text
    assert r"beta\_FUN & 2.00 $\pm$ 0.10 & -- & \textbf{6.00 $\pm$ 0.10} & 2.50 $\pm$ 0.10 \\" in text
    assert r"\& more" in text and "alpha_FUN" not in text
    assert r"\includegraphics[width=\linewidth]{paper_files/cd_f1.pdf}" in text
    assert (tmp_path / "paper_files" / "cd_f1.pdf").read_bytes().startswith(b"%PDF")


def test_html_is_one_self_contained_file(html_report):
    text = html_report.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text, re.IGNORECASE)
    assert "http://" not in text and "https://" not in text
    assert "<link" not in text and "<script" not in text and "@import" not in text
    assert "<b>5.00 ± 0.10</b>" in text and "<b>6.00 ± 0.10</b>" in text
    assert "RuntimeError: out of memory &lt;allocating 4 GiB&gt; &amp; more" in text
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    assert len(images) == 4
    for payload in images:
        with Image.open(io.BytesIO(base64.b64decode(payload, validate=True))) as image:
            assert image.format == "PNG" and image.size[0] > 100


def test_only_ok_runs_and_two_methods(frame):
    two = frame[frame["method"].isin(["C-HMCNN", "weights"]) & (frame["status"] == "ok")]
    text = build_report(two.drop(columns=["status"]), metrics=["f1"])
    assert "Friedman test on F1 (%): not run: the Friedman test needs at least 3 methods" in text
    assert "## Failed runs\n\nnone" in text
    assert "not written, no folder for plots given" in text  # build_report without files_dir


def test_ties_are_not_bold_and_tracebacks_stay_out(frame):
    ok = frame[frame["status"] == "ok"].copy()
    ok["metrics"] = [{**m, "recall_rare": 0.0} for m in ok["metrics"]]
    failed = frame[frame["status"] == "failed"].assign(error=ERROR + "\n\nTraceback (most recent call last):\n  ...")
    text = build_report(pd.concat([ok, failed]), metrics=["recall_rare"])
    rows = md_table(text, "recall of rare nodes")
    cells = {row[0]: dict(zip(rows[0][1:], row[1:])) for row in rows[1:]}
    assert cells["alpha_FUN"] == {"C-HMCNN": "0.00 ± 0.00", "focal": "0.00 ± 0.00", "weights": "0.00 ± 0.00",
                                  "broken": "failed (2)"}
    assert cells["average rank (3 datasets)"] == {"C-HMCNN": "2.00", "focal": "2.00", "weights": "2.00", "broken": "–"}
    assert ERROR in text and "Traceback" not in text


def test_duplicate_cells_keep_the_latest_run(frame):
    ok = frame[frame["status"] == "ok"]
    older = ok[ok["method"] == "weights"].assign(finished_at="2024-01-01T00:00:00+00:00", sweep="old")
    older["metrics"] = [{**m, "f1": 99.0} for m in older["metrics"]]
    text = build_report(pd.concat([older, ok]), metrics=["f1"])
    assert "9 older runs" in text and "99.00" not in text


def test_report_errors(frame):
    with pytest.raises(ReportError, match="methods found: C-HMCNN, broken, focal, weights"):
        build_report(frame, baseline="plain")
    with pytest.raises(ReportError, match="unknown metric.*'f2'.*the runs have: au_prc"):
        build_report(frame, metrics=["f2"])
    with pytest.raises(ReportError, match="no runs"):
        build_report(frame.iloc[:0])
    with pytest.raises(ReportError, match="format must be"):
        build_report(frame, fmt="pdf")


# ---------------------------------------------------------------------- CLI
def test_cli_report_default_paths_and_options(runs_dir, tmp_path):
    result = CliRunner().invoke(main, ["report", str(runs_dir), "--format", "md", "--metric", "f1,recall"])
    assert result.exit_code == 0, result.output
    assert f"report written to {runs_dir / 'report.md'}" in result.output
    text = (runs_dir / "report.md").read_text()
    assert "*F1 (%)" in text and "*recall (%)" in text and "*AU(PRC)" not in text
    out = tmp_path / "r.tex"
    result = CliRunner().invoke(main, ["report", str(runs_dir / "results.sqlite"), "--format", "latex",
                                       "--out", str(out), "--baseline", "weights", "--sweep", "test"])
    assert result.exit_code == 0, result.output
    assert out.is_file() and (tmp_path / "r_files" / "recall_by_depth.pdf").is_file()


@pytest.mark.parametrize(("setup", "args", "message"), [
    ("missing", [], "no such runs folder"),
    ("folder", [], "no results.sqlite in this folder"),
    ("empty", [], "no runs stored yet"),
    ("runs", ["--baseline", "plain"], "methods found: C-HMCNN, broken, focal, weights"),
    ("runs", ["--sweep", "other"], "sweeps found: test"),
    ("runs", ["--compare", "plain", "weights"], "--compare: 'plain' not a method of these runs"),
])
def test_cli_report_errors_are_one_line(setup, args, message, runs_dir, tmp_path):
    target = {"missing": tmp_path / "nothing", "folder": tmp_path, "runs": runs_dir, "empty": tmp_path / "e"}[setup]
    if setup == "empty":
        ResultStore(target).close()
    result = CliRunner().invoke(main, ["report", str(target), *args])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and result.output.startswith("error: ") and message in result.output


# ---------------------------------------------------------------------- a real browser
CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome") if shutil.which(name)),
                None)


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (CI installs it: .ci/run; locally: apt-get install "
                                             "chromium)")
def test_html_report_renders_in_headless_chromium(html_report, tmp_path):
    """Chromium loads the file offline, the DOM has the tables, and the browser decoded every image."""
    probe = tmp_path / "probe.html"  # a copy that records, once loaded, which images the browser decoded
    script = ("<script>addEventListener('load', () => document.body.setAttribute('data-decoded', "
              "[...document.images].map(i => i.complete && i.naturalWidth > 0 ? i.naturalWidth : 0).join(',')));"
              "</script></body>")
    probe.write_text(html_report.read_text().replace("</body>", script))
    common = [CHROMIUM, "--headless=new", "--disable-gpu", "--no-sandbox", f"--user-data-dir={tmp_path / 'profile'}",
              "--virtual-time-budget=10000"]
    dom = subprocess.run([*common, "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120,
                         check=True).stdout
    assert dom.count("<table>") >= 8 and "<b>5.00 ± 0.10</b>" in dom and "failed runs: 3" in dom
    decoded = re.search(r'data-decoded="([^"]*)"', dom)
    assert decoded, dom[-2000:]
    widths = [int(w) for w in decoded.group(1).split(",")]
    assert len(widths) == 4 and all(w > 100 for w in widths), widths

    shot = tmp_path / "shot.png"
    subprocess.run([*common, f"--screenshot={shot}", "--window-size=1200,3000", html_report.as_uri()],
                   capture_output=True, timeout=120, check=True)
    with Image.open(shot) as image:
        pixels = np.asarray(image.convert("L"))
    assert pixels.shape == (3000, 1200)
    assert (pixels < 128).mean() > 0.005 and (pixels > 250).mean() > 0.3  # text and plots on a white page


def test_the_report_says_what_each_method_was_and_which_versions_ran(markdown):
    text, _ = markdown
    assert md_table(text, "What each method was")[0][:2] == ["method", "preset"]
    assert "Library versions of the runs: hmlearn 0. Runs finished 2025-01-01 to 2025-01-01; report written" in text


def test_a_wilcoxon_p_that_cannot_reach_significance_is_flagged():
    from hmlearn.experiments.stats import smallest_wilcoxon_p

    assert smallest_wilcoxon_p(3) == 0.25 and smallest_wilcoxon_p(5) == 0.0625 and smallest_wilcoxon_p(6) < 0.05
    few = pd.DataFrame([{"dataset": "d", "method": m, "seed": s, "status": "ok", "sweep": "x", "config": {},
                         "metrics": {"f1": 1.0 + s + (m == "new"), "au_prc": 0.1, "recall": 1.0}}
                        for m in ("base", "new") for s in range(3)])
    text = build_report(few, baseline="base", metrics=["f1"], fmt="md")
    assert "3 non-zero pairs cannot give p < 0.05 (smallest possible p 0.25)" in text


def test_the_methods_table_lists_shared_options_not_each_datasets_own():
    rows = [{"dataset": d, "method": m, "seed": 0, "status": "ok", "sweep": "x",
             "config": {"preset": "medium", "hidden_dim": hidden, **options},
             "metrics": {"f1": 1.0 + (m == "w"), "au_prc": 0.1, "recall": 1.0}}
            for d, hidden in (("a", 500), ("b", 250))
            for m, options in (("C-HMCNN", {}), ("w", {"node_weights": "class-wise", "omega": 0.2}))]
    text = build_report(pd.DataFrame(rows), baseline="C-HMCNN", metrics=["f1"], fmt="md")
    methods = {row[0]: row[1:] for row in md_table(text, "What each method was")[1:]}
    assert methods == {"C-HMCNN": ["medium", "plain C-HMCNN (defaults)"],
                       "w": ["medium", "node_weights=class-wise, omega=0.2"]}


def test_paired_comparisons_give_each_method_its_own_control(frame):
    text = build_report(frame, metrics=["f1", "recall"], comparisons=[("focal", "weights"), ("weights", "C-HMCNN")])
    rows = md_table(text, "paired comparisons")
    assert rows[0] == ["method", "compared with", "pairs", "F1 (%)", "recall (%)"]
    by_pair = {(row[0], row[1]): row for row in rows[1:]}
    # focal - weights per dataset: F1 -1.0, +3.5, -1.0 (the seed noise cancels); recall -1.0, -1.5, +1.0.
    focal = by_pair[("focal", "weights")]
    f1_test = stats.wilcoxon_test(frame[frame["status"] == "ok"], "focal", "weights", "f1")
    assert focal[2] == "9"
    assert focal[3] == f"+0.50 (p {f1_test.pvalue:.3g})" and focal[4].startswith("-0.50 (p ")
    # weights beat C-HMCNN in every pair on F1: p = 0.0039 < 0.05, so the cell is bold.
    assert by_pair[("weights", "C-HMCNN")][3].startswith("**+1.83 (p ")
    assert "Paired comparisons" not in build_report(frame, metrics=["f1"])
    with pytest.raises(ReportError, match="--compare: 'plain' not a method of these runs"):
        build_report(frame, comparisons=[("plain", "weights")])


def test_cli_report_compare(runs_dir, tmp_path):
    out = tmp_path / "r.md"
    result = CliRunner().invoke(main, ["report", str(runs_dir), "--out", str(out), "--metric", "f1",
                                       "--compare", "focal", "weights", "--compare", "weights", "C-HMCNN"])
    assert result.exit_code == 0, result.output
    assert [row[:2] for row in md_table(out.read_text(), "paired comparisons")[1:]] == [
        ["focal", "weights"], ["weights", "C-HMCNN"]]
