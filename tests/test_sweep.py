"""`hmlearn sweep`: resume after SIGKILL, identical metrics with every executor, failed cells recorded."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from hmlearn.cli import main
from hmlearn.errors import HMLError
from hmlearn.experiments.runner import plan, run_sweep
from hmlearn.experiments.spec import expand, load_spec
from hmlearn.experiments.store import ResultStore

TOY = "n_samples=300, n_features=10, n_nodes=30"
SPEC = """\
name: toy
preset: fast
datasets: [data/toy.train.arff]
seeds: [0, 1]
methods:
  plain: {epochs: 10, hidden_dim: 32, batch_size: 8}
  weights: {epochs: 10, hidden_dim: 32, batch_size: 8, node_weights: class-wise}
"""


def _sweep(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "hmlearn.cli", "sweep", *args, "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def _results(runs: Path) -> dict[str, tuple]:
    """key -> (metrics, per_node, curves) as canonical JSON (NaN-safe exact comparison)."""
    with ResultStore(runs) as store:
        frame = store.frame(status=None)
    assert (frame["status"] == "ok").all(), frame["error"].tolist()
    assert frame["key"].is_unique
    return {row.key: tuple(json.dumps(getattr(row, c), sort_keys=True) for c in ("metrics", "per_node", "curves"))
            for row in frame.itertuples()}


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    """A folder with a tiny ARFF dataset (data/toy.{train,test}.arff), spec.yaml, and runs/ref: an uninterrupted
    sequential run through the CLI."""
    from hmlearn.data.arff import write_arff
    from hmlearn.data.synthetic import make_hmc_data, train_test_split

    folder = tmp_path_factory.mktemp("sweep")
    (folder / "data").mkdir()
    train, test = train_test_split(make_hmc_data(n_samples=300, n_features=10, n_nodes=30, seed=0), 0.3, seed=0)
    write_arff(train, folder / "data" / "toy.train.arff")
    write_arff(test, folder / "data" / "toy.test.arff")
    (folder / "spec.yaml").write_text(SPEC)
    reference = CliRunner().invoke(main, ["sweep", str(folder / "spec.yaml"), "--runs", str(folder / "runs" / "ref"),
                                          "--quiet"])
    assert reference.exit_code == 0, reference.output
    assert "sweep toy: 4 cells, 0 already done, 4 to run" in reference.output
    assert "4 of 4 cells done, 0 failed" in reference.output
    return folder


def test_killed_sweep_resumes_to_the_uninterrupted_result(toy):
    runs = toy / "runs" / "killed"
    process = _sweep(str(toy / "spec.yaml"), "--runs", str(runs))
    try:
        deadline = time.monotonic() + 90
        stored = 0
        while stored < 1 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
            if (runs / "results.sqlite").exists():
                with ResultStore(runs) as store:
                    stored = store.count()
    finally:
        os.kill(process.pid, signal.SIGKILL)
        _, err = process.communicate()
    with ResultStore(runs) as store:
        done = store.count()
    assert 1 <= done < 4, f"the kill must land after the first cell and before the last; stderr: {err}"
    resumed = CliRunner().invoke(main, ["sweep", str(toy / "spec.yaml"), "--runs", str(runs), "--quiet"])
    assert resumed.exit_code == 0, resumed.output
    assert f"4 cells, {done} already done, {4 - done} to run" in resumed.output
    assert _results(runs) == _results(toy / "runs" / "ref")  # same keys, same metrics, no duplicates

    again = CliRunner().invoke(main, ["sweep", str(toy / "spec.yaml"), "--runs", str(runs), "--quiet",
                                      "--seeds", "0", "1"])
    assert again.exit_code == 0, again.output
    assert "4 cells, 4 already done, 0 to run" in again.output
    assert re.search(r"data/toy.train.arff\s+weights\s+2\s+0\.\d{4}", again.output)
    assert _results(runs) == _results(toy / "runs" / "ref")


def test_every_executor_gives_the_same_metrics(toy):
    spec = load_spec(toy / "spec.yaml")
    reference = _results(toy / "runs" / "ref")  # sequential, through the CLI
    for executor in ("process", "ray"):
        runs = toy / "runs" / executor
        run_sweep(spec, runs, executor=executor, workers=2, progress=False).close()
        assert _results(runs) == reference, executor


def test_failed_cells_are_recorded_and_the_rest_run(toy):
    (toy / "broken.yaml").write_text(
        "name: broken\npreset: fast\ndatasets: [data/toy.train.arff, data/missing.train.arff]\nmethods:\n"
        "  plain: {epochs: 2, hidden_dim: 8}\n"
        "  one-head epistemic: {epochs: 2, hidden_dim: 8, focal: epistemic}\n"  # fails in fit: needs 2 heads
    )
    runs = toy / "runs" / "broken"
    result = CliRunner().invoke(main, ["sweep", str(toy / "broken.yaml"), "--runs", str(runs), "--quiet"])
    assert result.exit_code == 1, result.output
    assert "1 of 4 cells done, 3 failed" in result.output
    assert ("failed: data/toy.train.arff / one-head epistemic / seed 0: HMLError: uncertainty 'epistemic' needs at "
            "least 2 heads") in result.output
    assert "3 cells failed (their errors are stored); run the same command again to retry them" in result.output
    with ResultStore(runs) as store:
        frame = store.frame(status=None).set_index(["dataset", "method"])
    assert len(frame) == 4
    ok = frame.loc[("data/toy.train.arff", "plain")]
    assert ok.status == "ok" and pd.isna(ok.error) and ok.metrics["coherent"] is True
    epistemic = frame.loc[("data/toy.train.arff", "one-head epistemic")]
    assert epistemic.status == "failed" and epistemic.metrics is None
    assert epistemic.error.startswith("HMLError: uncertainty 'epistemic' needs at least 2 heads")
    for method in ("plain", "one-head epistemic"):
        missing = frame.loc[("data/missing.train.arff", method)]
        assert missing.status == "failed"
        assert missing.error == f"DatasetNotFoundError: {toy / 'data' / 'missing.train.arff'}: no such file"
        assert missing.config["seed"] == 0 and missing.config["preset"] == "fast"
    todo = plan(load_spec(toy / "broken.yaml"), runs)  # a resumed sweep retries the failed cells only
    assert len(todo["todo"]) == len(todo["retry"]) == 3 and len(todo["done"]) == 1


def test_cells_carry_the_full_config_and_versions(toy):
    with ResultStore(toy / "runs" / "ref") as store:
        row = store.frame().iloc[0]
    cells = {cell.key: cell for cell in expand(load_spec(toy / "spec.yaml"))}
    assert row.config == cells[row.key].config and row.config["threads"] == 1
    assert set(row.versions) == {"hmlearn", "torch", "numpy", "python"}
    assert {"au_prc", "recall", "f1", "recall_rare", "coherent"} <= set(row.metrics)
    assert {"node", "depth", "train_positives", "test_positives", "recall"} <= set(row.per_node[0])
    pr = row.curves["pr"]
    assert 2 <= len(pr["precision"]) == len(pr["recall"]) <= 200
    assert {"depth", "n_nodes", "n_present", "recall"} <= set(row.curves["by_depth"][0])
    assert [b["bucket"] for b in row.curves["by_frequency"]] == ["<5", "5-19", "20-99", ">=100"]
    assert row.finished_at.endswith("+00:00") and row.seconds > 0


def test_cli_errors_are_one_line(toy, tmp_path, monkeypatch):
    runner = CliRunner()
    result = runner.invoke(main, ["sweep", str(toy / "spec.yaml"), "--seeds", "0", "x"])
    assert result.exit_code == 2 and "unexpected extra argument (x)" in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(SPEC.replace("hidden_dim", "hiden_dim"))
    result = runner.invoke(main, ["sweep", str(bad)])
    assert result.exit_code == 2
    assert result.output == f"error: {bad}: methods.plain.hiden_dim: unknown option; did you mean hidden_dim?\n"
    result = runner.invoke(main, ["sweep", str(toy / "spec.yaml"), "--runs", str(tmp_path / "runs"), "--quiet",
                                  "--executor", "ray", "--ray-address", "127.0.0.1:1"])
    assert result.exit_code == 2
    assert "error: cannot reach a Ray cluster at 127.0.0.1:1 (" in result.output
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(HMLError, match=re.escape("the ray executor needs Ray: pip install 'hmlearn[ray]'")):
        run_sweep(load_spec(toy / "spec.yaml"), tmp_path / "runs", executor="ray")
