from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from hmlearn.cli import main
from hmlearn.data.registry import DATASETS

from .conftest import requires_shared

README = Path(__file__).resolve().parents[1] / "README.md"


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_datasets_list_names_all_twenty():
    result = run("datasets", "list")
    assert result.exit_code == 0, result.output
    for name in DATASETS:
        assert re.search(rf"^{name}\s", result.output, re.MULTILINE)


def test_readme_dataset_table_is_the_commands_output():
    """The README's table is pasted from `hmlearn datasets list --format github --no-location`."""
    table = run("datasets", "list", "--format", "github", "--no-location").output.strip()
    assert table in README.read_text(), "README dataset table is stale: paste the command's output"


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


def test_readme_reproduction_table_comes_from_the_stored_benchmark_results():
    """README's AU(PRC) table is `bench/reproduce_chmcnn.py --report-only` over bench/results."""
    import json
    import sys

    sys.path.insert(0, str(README.parent / "bench"))
    from reproduce_chmcnn import summary_table

    results = README.parent / "bench" / "results" / "reproduce_chmcnn.jsonl"
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    for preset in sorted({r["preset"] for r in rows}):
        table = summary_table(rows, preset, "github")
        assert table in README.read_text(), f"README reproduction table ({preset}) is stale: rerun the benchmark"


def test_readme_rare_node_tables_come_from_the_stored_benchmark_results():
    """README's rare-node tables are `bench/rare_nodes.py --report-only --preset medium` over bench/results."""
    import json
    import sys

    sys.path.insert(0, str(README.parent / "bench"))
    from rare_nodes import per_dataset, summary

    results = README.parent / "bench" / "results" / "rare_nodes.jsonl"
    rows = [r for r in map(json.loads, results.read_text().splitlines()) if r["preset"] == "medium"]
    assert len({(r["dataset"], r["seed"]) for r in rows}) >= 18  # 6 FUN datasets x 3 seeds
    for table in (summary(rows, "github"), per_dataset(rows, "github")):
        assert table in README.read_text(), "README rare-node table is stale: python bench/readme_tables.py"


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
