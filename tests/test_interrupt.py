"""Interrupted training: SIGKILL ten times in a row, Ctrl-C, a diverged loss, then `--resume`.

The killed runs are `hmlearn train` processes; each `--resume` continues from the state file,
and the final checkpoint must predict exactly what an uninterrupted run predicts. Kill moments
are random (seeded) within an epoch, so a kill may land while a file is being written.

The ten killed runs are forked from a server that has imported torch already: a fresh
`python -m hmlearn.cli` spends 3-5 s of a busy 2-core machine importing torch (and torch._dynamo,
which every optimizer pulls in) before its first epoch. The Ctrl-C test runs that real command.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import re
import shlex
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

from hmlearn.cli import main
from hmlearn.data.arff import write_arff
from hmlearn.data.synthetic import make_hmc_data
from hmlearn.training.checkpoint import load_checkpoint, load_training_state

EPOCHS = 60  # ten rounds advance 1 to 3 epochs each: the run is still going at the tenth kill, even if
# epochs run much faster than the reference measured
OPTIONS = ["--epochs", str(EPOCHS), "--hidden-dim", "16", "--seed", "0", "--quiet"]  # dropout 0.7 (default)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(folder, ARFF path, features, probabilities of an uninterrupted run, seconds per epoch)."""
    folder = tmp_path_factory.mktemp("interrupt")
    data = make_hmc_data(n_samples=100, n_features=8, n_nodes=15, seed=0)
    arff = folder / "tiny.arff"
    write_arff(data, arff)
    result = CliRunner().invoke(main, ["train", str(arff), *OPTIONS, "--out", str(folder / "reference.ckpt")])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in folder.iterdir()) == ["reference.ckpt", "tiny.arff"]  # no state file left
    model, _ = load_checkpoint(folder / "reference.ckpt")
    seconds = float(np.median([record["seconds"] for record in model.history]))
    return folder, arff, data.X, model.predict_proba(data.X), seconds


def _train_command(arff, out, *extra: str) -> list[str]:
    return [sys.executable, "-m", "hmlearn.cli", "train", str(arff), *OPTIONS, "--out", str(out), *extra]


def _run_cli(argv: list[str], cwd) -> None:
    """`hmlearn ARGV` in a forked child, output discarded (exits through SystemExit)."""
    os.chdir(cwd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    main(argv, prog_name="hmlearn")


def _forking_context():
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["torch", "torch._dynamo", "hmlearn.cli", "hmlearn.training.checkpoint", "hmlearn.metrics",
                                    "hmlearn.data.store", __name__])
    return context


def _version(path):
    """Identifies one written version of ``path`` (each atomic write is a new inode), or None."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


def test_killed_ten_times_then_resumed_equals_an_uninterrupted_run(tiny):
    folder, arff, X, expected, seconds = tiny
    runs = folder / "killed"
    out, state = runs / "tiny.ckpt", runs / "tiny.ckpt.state"
    rng = random.Random(0)
    context = _forking_context()
    saved_epochs = []
    for _ in range(10):
        before = _version(state)
        process = context.Process(target=_run_cli, args=(_train_command(arff, out, "--resume")[3:], folder))
        process.start()
        try:
            deadline = time.monotonic() + 120
            while _version(state) == before:  # this run has saved at least one more epoch
                assert process.is_alive(), f"the run ended (code {process.exitcode}) before it was killed"
                assert time.monotonic() < deadline, "no epoch saved within 120 s"
                time.sleep(0.002)
            time.sleep(rng.uniform(0, 2 * seconds))  # anywhere in the next epoch or two, writes included
        finally:
            process.kill()
            process.join()
        assert process.exitcode == -signal.SIGKILL, "the run ended before it was killed"
        left = sorted(p.name for p in runs.iterdir())
        assert set(left) <= {"tiny.ckpt", "tiny.ckpt.state"}, f"half-written or temporary files: {left}"
        if out.exists():
            load_checkpoint(out)
        saved_epochs.append(load_training_state(state)["epoch"])  # complete and verified
    assert saved_epochs == sorted(set(saved_epochs)) and saved_epochs[-1] < EPOCHS, saved_epochs

    result = CliRunner().invoke(main, _train_command(arff, out, "--resume")[3:])
    assert result.exit_code == 0, result.output
    assert f"resuming from {state}" in result.output
    assert sorted(p.name for p in runs.iterdir()) == ["tiny.ckpt"]  # the state file is gone once the run is done
    model, _ = load_checkpoint(out)
    assert np.array_equal(model.predict_proba(X), expected)
    assert [record["epoch"] for record in model.history] == list(range(1, EPOCHS + 1))


def test_ctrl_c_exits_130_with_one_line_and_its_resume_command_finishes_identically(tiny):
    folder, arff, X, expected, seconds = tiny
    runs = folder / "ctrl-c"
    out, state = runs / "tiny.ckpt", runs / "tiny.ckpt.state"
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # a child inherits "ignored", not a handler
    try:
        process = subprocess.Popen(_train_command(arff, out), cwd=folder, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    deadline = time.monotonic() + 120
    while not state.exists():
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.002)
    time.sleep(random.Random(1).uniform(0, 2 * seconds))
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr  # no traceback
    match = re.fullmatch(r"interrupted at epoch (\d+) \(epochs 1-(\d+) saved in (.+)\); resume with: (hmlearn train .+)",
                         lines[0])
    assert match, lines[0]
    epoch, saved, where, command = int(match[1]), int(match[2]), match[3], match[4]
    assert saved == epoch - 1 >= 1 and where == str(state)
    assert sorted(p.name for p in runs.iterdir()) == ["tiny.ckpt.state"]
    assert load_training_state(state)["epoch"] == saved

    argv = shlex.split(command)
    assert argv[-1] == "--resume"
    result = CliRunner().invoke(main, argv[1:])  # the command the message gives, as typed
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in runs.iterdir()) == ["tiny.ckpt"]
    model, _ = load_checkpoint(out)
    assert np.array_equal(model.predict_proba(X), expected)

    done = CliRunner().invoke(main, argv[1:])
    assert done.exit_code == 0 and f"{out} is already complete ({EPOCHS} epochs); nothing to do" in done.output
    other = CliRunner().invoke(main, [*argv[1:], "--hidden-dim", "8"])
    assert other.exit_code == 2 and "exists but holds another run (hidden_dim: saved 16, now 8)" in other.output


def test_a_state_file_is_not_overwritten_without_resume(tiny, tmp_path):
    _, arff, *_ = tiny
    state = tmp_path / "tiny.ckpt.state"
    state.write_bytes(b"an unfinished run")
    result = CliRunner().invoke(main, ["train", str(arff), *OPTIONS, "--out", str(tmp_path / "tiny.ckpt")])
    assert result.exit_code == 2
    assert f"{state} holds an unfinished run; continue it with --resume, or delete it" in result.output
    assert state.read_bytes() == b"an unfinished run"


def test_diverged_loss_says_how_to_resume_with_a_lower_learning_rate(tiny, tmp_path, monkeypatch):
    import hmlearn.training.fit as training
    from hmlearn.errors import TrainingDiverged

    _, arff, *_ = tiny
    real = training.train_epoch

    def diverging(*args):
        if args[-1] == 2:  # the third epoch
            raise TrainingDiverged("training diverged: loss is nan at epoch 3, batch 5; lower the learning rate", 3, 5)
        return real(*args)

    monkeypatch.setattr(training, "train_epoch", diverging)
    out = tmp_path / "tiny.ckpt"
    result = CliRunner().invoke(main, ["train", str(arff), *OPTIONS[2:], "--epochs", "4", "--lr", "0.01",
                                       "--out", str(out)])
    assert result.exit_code == 2
    message = result.output.strip().splitlines()[-1]
    assert message.startswith("error: training diverged: loss is nan at epoch 3, batch 5")
    assert f"the state after epoch 2 is kept in {out}.state, to resume from with a lower learning rate: hmlearn " in message
    assert message.endswith(f"--out {out} --lr 0.001 --resume")
    assert load_training_state(f"{out}.state")["epoch"] == 2
    monkeypatch.undo()
    command = shlex.split(message.split(": hmlearn ", 1)[1])
    again = CliRunner().invoke(main, command)
    assert again.exit_code == 0, again.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.ckpt"]
