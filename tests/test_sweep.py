"""`hmlearn sweep`: resume after SIGKILL, identical metrics with every executor, failed cells recorded."""

from __future__ import annotations

import contextlib
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
    (toy / "data" / "garbled.train.arff").write_text("@RELATION garbled\n@ATTRIBUTE x numeric\n@DATA\n1\n")
    (toy / "data" / "garbled.test.arff").write_text("@RELATION garbled\n")
    (toy / "broken.yaml").write_text(
        "name: broken\npreset: fast\ndatasets: [data/toy.train.arff, data/garbled.train.arff]\nmethods:\n"
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
        garbled = frame.loc[("data/garbled.train.arff", method)]
        assert garbled.status == "failed"
        assert garbled.error.startswith("DataFormatError: ") and "garbled.train.arff" in garbled.error
        assert garbled.config["seed"] == 0 and garbled.config["preset"] == "fast"
    todo = plan(load_spec(toy / "broken.yaml"), runs)  # a resumed sweep retries the failed cells only
    assert len(todo["todo"]) == len(todo["retry"]) == 3 and len(todo["done"]) == 1


def test_a_spec_dataset_file_that_does_not_exist_is_refused_before_anything_runs(toy):
    (toy / "absent.yaml").write_text("name: absent\npreset: fast\ndatasets: [data/toy.train.arff, data/missing.train.arff]"
                                     "\nmethods:\n  plain: {epochs: 2, hidden_dim: 8}\n")
    runs = toy / "runs" / "absent"
    result = CliRunner().invoke(main, ["sweep", str(toy / "absent.yaml"), "--runs", str(runs), "--quiet"])
    assert result.exit_code == 2
    assert result.output.strip() == (f"error: {toy / 'absent.yaml'}: datasets[1]: data/missing.train.arff: no such file "
                                     f"({toy / 'data' / 'missing.train.arff'})")
    assert not (runs / "results.sqlite").exists()


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


def _descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to list a process's children")
def test_a_killed_process_pool_sweep_leaves_no_workers(toy):
    runs = toy / "runs" / "orphans"
    process = subprocess.Popen([sys.executable, "-m", "hmlearn.cli", "sweep", str(toy / "spec.yaml"), "--runs",
                                str(runs), "--executor", "process", "--workers", "2", "--no-resume", "--quiet"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # orphans could hold a pipe
    try:
        deadline, workers = time.monotonic() + 60, set()
        while len(workers) < 3 and time.monotonic() < deadline and process.poll() is None:  # forkserver + 2 workers
            time.sleep(0.1)
            workers = _descendants(process.pid)
        assert len(workers) >= 3, "the pool did not start"
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    deadline = time.monotonic() + 20
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    survivors = [pid for pid in workers if _alive(pid)]
    for pid in survivors:  # leave nothing running whatever the outcome
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    assert not survivors, "workers outlived their killed sweep"


def test_a_second_sweep_on_a_busy_store_is_refused_with_the_holder_named(toy):
    from hmlearn.experiments.runner import hold_store

    runs = toy / "runs" / "busy"
    with ResultStore(runs) as store:
        lock = hold_store(store.path)
    try:
        result = CliRunner().invoke(main, ["sweep", str(toy / "spec.yaml"), "--runs", str(runs), "--quiet"])
        assert result.exit_code == 2
        assert re.search(r"another sweep \(process \d+, started .*\) is running on this results store",
                         result.output)
    finally:
        lock.close()
    with ResultStore(runs) as store:
        assert store.count() == 0  # nothing ran twice, nothing half-written


def test_a_corrupt_results_store_is_one_line_for_sweep_and_report(toy, tmp_path):
    (tmp_path / "results.sqlite").write_bytes(b"this is not a database " * 100)
    for args in (["sweep", str(toy / "spec.yaml"), "--runs", str(tmp_path)], ["report", str(tmp_path)]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2
        assert "results.sqlite: cannot be read as a results store" in result.output.strip().splitlines()[-1]


@pytest.mark.parametrize(("seeds", "words"), [
    ("0-99999999999", "--seeds: 0-99999999999 makes more than 10000 seeds"),
    ("9-3", "--seeds: 9-3 is an empty range"),
])
def test_seed_ranges_are_bounded(toy, seeds, words):
    result = CliRunner().invoke(main, ["sweep", str(toy / "spec.yaml"), "--seeds", seeds])
    assert result.exit_code == 2 and words in result.output


def test_the_cli_seed_limit_is_the_specs():
    from hmlearn import cli
    from hmlearn.experiments import spec

    assert cli.MAX_SEEDS == spec.MAX_SEEDS


def test_the_local_ray_executor_starts_its_own_instance_beside_a_running_cluster(toy, monkeypatch):
    """Without --ray-address, Ray is started as a new local instance (address "local"): with a head already
    running on the machine, a plain ray.init(num_cpus=...) would try to join it and fail. (Starting a real
    head takes minutes on a 2-core machine; this checks what the executor asks Ray for.)"""
    ray = pytest.importorskip("ray")
    from hmlearn.experiments import runner

    asked = {}

    class Stop(Exception):
        pass

    def init(**options):
        asked.update(options)
        raise Stop

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", init)
    cells = expand(load_spec(toy / "spec.yaml"))[:1]
    with pytest.raises(HMLError, match="cannot start Ray"):
        next(runner._EXECUTORS["ray"](cells, workers=1, threads=1))
    assert asked["address"] == "local" and asked["num_cpus"] == 1
