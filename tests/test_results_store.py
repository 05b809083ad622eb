"""The SQLite results store: rows round-trip, and a writer killed mid-write leaves only complete rows."""

from __future__ import annotations

import math
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from hmlearn.experiments.store import COLUMN_NAMES, ResultStore, cell_key


def _row(i: int, status: str = "ok") -> dict:
    return {
        "key": cell_key("toy", "plain", {"seed": i}),
        "sweep": "t", "dataset": "toy", "method": "plain", "seed": np.int64(i), "status": status,
        "error": None if status == "ok" else "HMLError: boom",
        "config": {"seed": i, "lr": 1e-3, "node_weights": None, "preset": "fast"},
        "metrics": {"au_prc": np.float32(0.25), "recall": 50.0 + i, "coherent": True, "recall_rare": float("nan")},
        "per_node": [{"node": "a", "depth": np.int64(1), "recall": 12.5}],
        "curves": {"pr": {"precision": [1.0, 0.5], "recall": [0.0, 1.0]}, "by_depth": [], "by_frequency": []},
        "seconds": 1.5, "versions": {"hmlearn": "0.1.0"}, "finished_at": "2026-01-01T00:00:00+00:00",
    }


def test_row_round_trips(tmp_path):
    store = ResultStore(tmp_path / "runs")
    assert store.path == tmp_path / "runs" / "results.sqlite" and store.count() == 0
    store.add(_row(0))
    store.add(_row(1, "failed"))
    store.add({**_row(0), "seconds": 2.5})  # same key: replaced, not duplicated
    assert store.count() == 2 and store.count("ok") == 1
    assert store.keys() == {_row(0)["key"], _row(1)["key"]} and store.keys("failed") == {_row(1)["key"]}
    frame = ResultStore(tmp_path / "runs" / "results.sqlite").frame()  # a second connection sees it
    assert list(frame.columns) == list(COLUMN_NAMES) and len(frame) == 1
    row = frame.iloc[0].to_dict()
    assert row["seed"] == 0 and row["seconds"] == 2.5 and row["error"] is None
    assert row["config"] == {"seed": 0, "lr": 1e-3, "node_weights": None, "preset": "fast"}
    assert row["metrics"]["au_prc"] == 0.25 and row["metrics"]["coherent"] is True
    assert math.isnan(row["metrics"]["recall_rare"])  # stored as JSON null, read back as NaN
    assert row["per_node"] == [{"node": "a", "depth": 1, "recall": 12.5}]
    assert row["curves"]["pr"]["recall"] == [0.0, 1.0]
    assert len(store.frame(status=None)) == 2 and store.frame(status="failed").iloc[0]["error"] == "HMLError: boom"
    assert store._connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    light = store.frame(per_node=False).iloc[0].to_dict()  # what reports read: per-node tables left unread
    assert light["per_node"] is None and light["metrics"] == row["metrics"] and light["curves"] == row["curves"]


def test_bad_rows_are_refused(tmp_path):
    store = ResultStore(tmp_path)
    with pytest.raises(ValueError, match="status"):
        store.add({**_row(0), "status": "done"})
    with pytest.raises(ValueError, match="unknown result column"):
        store.add({**_row(0), "colour": "red"})
    assert store.count() == 0


WRITER = textwrap.dedent("""
    import sys
    from hmlearn.experiments.store import ResultStore
    store = ResultStore(sys.argv[1])
    per_node = [{"node": f"n{j}", "depth": j % 5, "recall": j / 7} for j in range(20000)]
    i = 0
    while True:
        store.add({"key": f"k{i:06d}", "status": "ok", "seed": i, "metrics": {"i": i},
                   "per_node": per_node, "curves": {"pr": {"precision": [i] * 200}}})
        i += 1
""")


def test_killed_writer_leaves_only_complete_rows(tmp_path):
    path = tmp_path / "results.sqlite"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)])
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if path.exists():
                with sqlite3.connect(path, timeout=30) as probe:
                    ready = probe.execute("SELECT name FROM sqlite_master WHERE name = 'runs'").fetchone()
                    if ready and probe.execute("SELECT COUNT(*) FROM runs").fetchone()[0] >= 3:
                        break
            time.sleep(0.02)
        time.sleep(0.013)  # land somewhere inside a write
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
    store = ResultStore(path)
    assert store._connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    frame = store.frame()
    n = len(frame)
    assert n >= 3
    assert sorted(frame["key"]) == [f"k{i:06d}" for i in range(n)]  # a prefix: nothing lost, nothing partial
    for row in frame.itertuples():
        assert row.metrics == {"i": row.seed} and len(row.per_node) == 20000
        assert row.curves["pr"]["precision"] == [row.seed] * 200
    store.add({"key": "after", "status": "ok"})  # and it takes writes again
    assert store.count() == n + 1
