"""A full disk (ENOSPC) or a full results store is one line naming the file, exit code 2, and the
earlier files untouched: injected for every writer, and for real on a small tmpfs where one can be
mounted."""

from __future__ import annotations

import errno
import shutil
import sqlite3
import subprocess
import sys

import pytest
from click.testing import CliRunner

from hmlearn import fileio
from hmlearn.cli import main
from hmlearn.data.arff import write_arff
from hmlearn.data.synthetic import make_hmc_data, train_test_split


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("disk")
    train, test = train_test_split(make_hmc_data(n_samples=120, n_features=4, n_nodes=10, seed=1), 0.25)
    write_arff(train, folder / "train.arff")
    write_arff(test, folder / "test.arff")
    result = run("train", folder / "train.arff", "--epochs", 2, "--hidden-dim", 8, "--batch-size", 16,
                 "--out", folder / "model.ckpt", "--quiet")
    assert result.exit_code == 0, result.output
    return folder


@pytest.fixture
def full_disk(monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fileio.os, "fsync", full)


def _one_line(result, path) -> str:
    assert result.exit_code == 2, result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith(f"error: {path}: No space left on device; free some disk space"), line
    return line


def test_train_on_a_full_disk(trained, tmp_path, full_disk):
    out = tmp_path / "new.ckpt"
    result = run("train", trained / "train.arff", "--epochs", 2, "--hidden-dim", 8, "--batch-size", 16,
                 "--out", out, "--quiet")
    _one_line(result, f"{out}.state")  # the first write of a run: its training state after epoch 1
    assert not out.exists() and not (tmp_path / "new.ckpt.state").exists()


def test_train_without_state_on_a_full_disk_fails_at_the_checkpoint(trained, tmp_path, full_disk):
    out = tmp_path / "new.ckpt"
    result = run("train", trained / "train.arff", "--epochs", 1, "--hidden-dim", 8, "--save-every", 0,
                 "--out", out, "--quiet")
    _one_line(result, out)
    assert list(tmp_path.iterdir()) == []


def test_predict_and_evaluate_on_a_full_disk_keep_earlier_files(trained, tmp_path, full_disk):
    earlier = tmp_path / "pred.csv"
    earlier.write_text("earlier predictions\n")
    _one_line(run("predict", trained / "model.ckpt", trained / "test.arff", "--out", earlier), earlier)
    assert earlier.read_text() == "earlier predictions\n"
    nodes = tmp_path / "nodes.csv"
    _one_line(run("evaluate", trained / "model.ckpt", trained / "test.arff", "--per-node", nodes), nodes)
    assert not nodes.exists()


def test_a_full_results_store_is_one_line(trained, tmp_path, monkeypatch):
    from hmlearn.experiments.store import ResultStore

    shutil.copy(trained / "train.arff", trained / "disk.train.arff")
    def full(self, row):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(ResultStore, "add", full)
    (tmp_path / "spec.yaml").write_text(f"name: disk\npreset: fast\ndatasets: [{trained / 'disk.train.arff'}]\n"
                                        "methods:\n  plain: {epochs: 1, hidden_dim: 8}\n")
    shutil.copy(trained / "test.arff", trained / "disk.test.arff")
    result = run("sweep", tmp_path / "spec.yaml", "--runs", tmp_path / "runs", "--quiet")
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines()[-1] == (
        "error: results store: database or disk is full; free some disk space and run the command again "
        "(finished results stay stored)")


def test_a_real_full_tmpfs(trained, tmp_path):
    """The same with a real file system that fills up: a 64 kB tmpfs (skipped where none can be mounted)."""
    mount = tmp_path / "small"
    mount.mkdir()
    if sys.platform != "linux" or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
                                                 capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        out = mount / "model.ckpt"
        result = subprocess.run([sys.executable, "-m", "hmlearn.cli", "train", str(trained / "train.arff"),
                                 "--epochs", "1", "--hidden-dim", "200", "--out", str(out), "--quiet"],
                                capture_output=True, text=True)
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip().splitlines()[-1].startswith(f"error: {out}")
        assert "No space left on device" in result.stderr and "Traceback" not in result.stderr
        assert list(mount.iterdir()) == []
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)


def test_report_on_a_full_disk(tmp_path, full_disk):
    from pathlib import Path

    store = Path(__file__).resolve().parents[1] / "bench" / "results" / "reproduce-fast"
    out = tmp_path / "report.md"
    result = run("report", store, "--out", out, "--metric", "au_prc")
    assert result.exit_code == 2, result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith(f"error: {tmp_path}") and "No space left on device; free some disk space" in line
    assert not out.exists()
