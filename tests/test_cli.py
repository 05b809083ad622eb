from __future__ import annotations

import functools
import re
from pathlib import Path

from click.testing import CliRunner

from hmlearn.cli import main
from hmlearn.data.registry import DATASETS

from .conftest import requires_shared

README = Path(__file__).resolve().parents[1] / "README.md"
GUIDE = README.parent / "docs" / "user-guide.md"
BENCHMARKS = README.parent / "docs" / "benchmarks.md"


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_datasets_list_names_all_twenty():
    result = run("datasets", "list")
    assert result.exit_code == 0, result.output
    for name in DATASETS:
        assert re.search(rf"^{name}\s", result.output, re.MULTILINE)


def test_readme_dataset_table_is_the_commands_output():
    """The user guide's table is pasted from `hmlearn datasets list --format github --no-location`."""
    table = run("datasets", "list", "--format", "github", "--no-location").output.strip()
    assert table in GUIDE.read_text(), "docs/user-guide.md dataset table is stale: python bench/readme_tables.py"


@requires_shared
def test_datasets_info_reports_published_counts():
    result = run("datasets", "info", "derisi_FUN")
    assert result.exit_code == 0, result.output
    assert "features (after one-hot): 63 (published 63) ok" in result.output
    assert "evaluated nodes: 499 (published 499) ok" in result.output
    assert "nodes with roots: 500" in result.output
    assert re.search(r"^train\s+1608\s+63\s+500\s+499\s+6\s", result.output, re.MULTILINE)


@requires_shared
def test_datasets_info_go_dag():
    result = run("datasets", "info", "spo_GO")
    assert result.exit_code == 0, result.output
    assert "nodes with roots: 4120" in result.output and "evaluated nodes: 4116 (published 4116) ok" in result.output


def test_unknown_dataset_is_one_line_and_exit_2():
    result = run("datasets", "info", "nope_FUN")
    assert result.exit_code == 2
    assert result.output.strip().startswith("error: unknown dataset 'nope_FUN'")
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_missing_dataset_offline_is_one_line(tmp_path):
    result = run("datasets", "fetch", "imclef07d_others", "--data-dir", str(tmp_path))
    assert result.exit_code == 2
    assert "ImCLEF07D_Train.arff not found" in result.output


@functools.cache
def _readme_tables():
    """bench/readme_tables.py, which takes the README's tables from `hmlearn report` over bench/results (loaded
    once, so the tests share its reports)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("readme_tables", README.parent / "bench" / "readme_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_reproduction_tables_are_the_reports_of_the_stored_sweeps():
    """docs/benchmarks.md's AU(PRC) tables are `hmlearn report bench/results/reproduce[-fast] --format md`'s."""
    tables = _readme_tables()
    text = BENCHMARKS.read_text()
    for name, marker in (("reproduce", "reproduction-table"), ("reproduce-fast", "reproduction-table-fast")):
        assert f"`hmlearn report bench/results/{name} --format md`" in text
        report = tables.table(tables.report_markdown(name), "AU(PRC)")
        assert report.splitlines()[0] == "| dataset | published | C-HMCNN |"
        assert "| derisi_FUN | 0.195 | " in report  # the published value beside the runs' mean
        assert tables.readme_block(text, marker) == report, f"README {marker} is stale: python bench/readme_tables.py"


def test_readme_rare_node_tables_are_the_report_of_the_stored_sweep():
    """docs/benchmarks.md's rare-node tables are the summary and the results of `hmlearn report
    bench/results/rare-nodes`."""
    tables = _readme_tables()
    text = BENCHMARKS.read_text()
    report = tables.report_markdown("rare-nodes")
    summary = tables.table(tables.section(report, "Summary"), "summary per method")
    assert summary.count("| 18 |") == summary.count("\n") - 1  # every method on 6 FUN datasets x 3 seeds
    assert tables.readme_block(text, "rare-nodes-table") == summary, "README rare-node table is stale: " \
        "python bench/readme_tables.py"
    assert tables.readme_block(text, "rare-nodes-per-dataset") == tables.section(report, "Results"), \
        "README rare-node per-dataset tables are stale: python bench/readme_tables.py"


@requires_shared
def test_stored_benchmark_runs_are_the_sweeps_cells():
    """bench/results/<name> holds cells of configs/<name>.yaml under their keys: a sweep would skip them.
    (A change to the resolved TrainConfig changes the keys: rerun `python bench/import_jsonl.py`.)"""
    from hmlearn.experiments.runner import plan
    from hmlearn.experiments.spec import load_spec

    for name, done in (("reproduce", 27), ("reproduce-fast", 27), ("rare-nodes", 144)):
        cells = plan(load_spec(README.parent / "configs" / f"{name}.yaml"), README.parent / "bench" / "results" / name)
        assert len(cells["done"]) >= done, f"bench/results/{name}: rerun python bench/import_jsonl.py"


def test_help_imports_no_heavy_module():
    """`hmlearn --help` and each command's help stay fast: torch, plotting, statistics, Ray and
    pydantic are imported only when a command runs."""
    import subprocess
    import sys

    commands = [["--help"], ["train", "--help"], ["evaluate", "--help"], ["report", "--help"], ["sweep", "--help"]]
    code = ("import sys; from click.testing import CliRunner; from hmlearn.cli import main; "
            f"results = [CliRunner().invoke(main, a) for a in {commands!r}]; "
            "assert all(r.exit_code == 0 for r in results), [r.output for r in results]; "
            "assert '--ray-address' in results[-1].output; "
            "print(sorted(m for m in ('torch', 'matplotlib', 'scikit_posthocs', 'ray', 'pydantic') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.stdout.strip() == "[]", result.stderr


def test_every_generated_table_is_the_output_of_its_command():
    """Every table bench/readme_tables.py writes (README and docs) is what its command prints now."""
    tables = _readme_tables()
    for marker, block in tables.tables().items():
        page = tables.page_of(marker)
        assert tables.readme_block(page.read_text(), marker) == block, \
            f"{page.name} {marker} is stale: python bench/readme_tables.py"


def test_focal_ablation_tables_cover_every_fun_dataset_and_5_seeds():
    """The ablation (configs/focal-ablation.yaml, up to 2 heads) ran every method on the 6 FUN datasets x 5 seeds,
    and its paired comparisons are the pairs bench/readme_tables.py asks for, each over 30 pairs."""
    tables = _readme_tables()
    report = tables.report_markdown("focal-ablation", *tables.ABLATION_ARGS)
    summary = tables.table(tables.section(report, "Summary"), "summary per method")
    assert summary.count("| 30 |") == summary.count("\n") - 1 == 9
    comparisons = tables.table(tables.section(report, "Paired comparisons"), "paired comparisons").splitlines()[2:]
    assert [tuple(row.split(" | ")[:2]) for row in comparisons] == [
        ("| " + method, against) for method, against in tables.ABLATION_COMPARISONS]
    assert all(row.split(" | ")[2] == "30" for row in comparisons)
