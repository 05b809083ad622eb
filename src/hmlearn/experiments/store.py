"""The results store of a sweep: one SQLite file, one row per finished cell.

``RUNS_DIR/results.sqlite`` holds a table ``runs`` keyed by the cell's key (the SHA-256 of the
canonical JSON of its dataset, method and full config including the seed). Each finished cell is
written in one transaction of a write-ahead-logged database, so a process killed at any moment
(SIGKILL included) loses no finished cell and leaves no partial row: a transaction whose commit
record did not reach the log is simply not there when the file is next opened.

Columns (JSON columns are decoded by :meth:`ResultStore.frame`)::

    key          TEXT PRIMARY KEY   sha256 of canonical JSON {dataset, method, config}
    sweep        TEXT               the spec's name
    dataset      TEXT               registry name or ARFF path
    method       TEXT               method label, e.g. "weights (omega=0.5)"
    seed         INTEGER
    status       TEXT               'ok' | 'failed'
    error        TEXT               the exception text of a failed cell, else NULL
    config       TEXT  (JSON dict)  the full TrainConfig as a dict, plus "preset"
    metrics      TEXT  (JSON dict)  hmlearn.metrics.evaluate's dict (NaN stored as null, read back as NaN)
    per_node     TEXT  (JSON list)  records of metrics.per_node_table (with train_Y)
    curves       TEXT  (JSON dict)  {"pr": {"precision": [...], "recall": [...]},
                                     "by_depth": [records], "by_frequency": [records]}
    seconds      REAL               wall time of the cell
    versions     TEXT  (JSON dict)  hmlearn, torch, numpy, python
    finished_at  TEXT               ISO 8601, UTC

JSON is standard (NaN and infinities are written as null). Only the parent process of a sweep writes (a single writer); any number of readers may open the
file at the same time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Self

from hmlearn.errors import HMLError

FILENAME = "results.sqlite"

#: (name, SQL type) in table order.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("key", "TEXT PRIMARY KEY"),
    ("sweep", "TEXT"),
    ("dataset", "TEXT"),
    ("method", "TEXT"),
    ("seed", "INTEGER"),
    ("status", "TEXT"),
    ("error", "TEXT"),
    ("config", "TEXT"),
    ("metrics", "TEXT"),
    ("per_node", "TEXT"),
    ("curves", "TEXT"),
    ("seconds", "REAL"),
    ("versions", "TEXT"),
    ("finished_at", "TEXT"),
)
COLUMN_NAMES = tuple(name for name, _ in COLUMNS)
JSON_COLUMNS = ("config", "metrics", "per_node", "curves", "versions")
STATUSES = ("ok", "failed")

_SCHEMA = "CREATE TABLE IF NOT EXISTS runs (\n    " + ",\n    ".join(f"{n} {t}" for n, t in COLUMNS) + "\n)"


def _plain(value: Any) -> Any:
    """``value`` as plain JSON types: numpy scalars/arrays to Python, NaN/inf to None."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # numpy array or scalar
        return _plain(value.tolist())
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store a value of type {type(value).__name__} as JSON: {value!r}")


def canonical_json(value: Any) -> str:
    """Canonical JSON: sorted keys, no spaces, plain types (the form keys are hashed from)."""
    return json.dumps(_plain(value), sort_keys=True, separators=(",", ":"), allow_nan=False)


def cell_key(dataset: str, method: str, config: Mapping[str, Any]) -> str:
    """The key of one cell: sha256 of canonical JSON of its dataset, method and full config (seed included)."""
    payload = canonical_json({"dataset": str(dataset), "method": str(method), "config": dict(config)})
    return hashlib.sha256(payload.encode()).hexdigest()


class ResultStore:
    """The SQLite results store at ``path`` (a ``results.sqlite`` file, or a runs directory holding one).

    ``add`` inserts or replaces one row in one transaction; ``keys``, ``count`` and ``frame`` read.
    """

    def __init__(self, path: str | Path):
        path = Path(path)
        if path.suffix not in (".sqlite", ".db", ".sqlite3"):
            path = path / FILENAME
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._connection = sqlite3.connect(str(path), timeout=60.0, isolation_level=None)
        try:
            self._connection.execute("PRAGMA journal_mode=WAL")
            self._connection.execute("PRAGMA synchronous=FULL")
            self._connection.execute("PRAGMA busy_timeout=60000")
            self._connection.execute(_SCHEMA)
        except sqlite3.DatabaseError as error:
            self._connection.close()
            raise HMLError(f"{path}: cannot be read as a results store ({error}); move it aside to start a new "
                           "one") from None

    def __repr__(self) -> str:
        return f"ResultStore({str(self.path)!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._connection.close()

    def add(self, row: Mapping[str, Any]) -> None:
        """Insert (or replace, by key) one row, in one transaction.

        ``row`` maps column names to values; JSON columns take Python objects (dicts, lists,
        numpy values) or an already-encoded string; missing columns are stored as NULL.
        """
        unknown = set(row) - set(COLUMN_NAMES)
        if unknown:
            raise ValueError(f"unknown result column(s): {', '.join(sorted(unknown))}")
        if not row.get("key"):
            raise ValueError("a result row needs a 'key'")
        if row.get("status") not in STATUSES:
            raise ValueError(f"result status must be one of {STATUSES}, not {row.get('status')!r}")
        values = []
        for name in COLUMN_NAMES:
            value = row.get(name)
            if name in JSON_COLUMNS and value is not None and not isinstance(value, str):
                value = canonical_json(value)
            elif name == "seed" and value is not None:
                value = int(value)
            elif name == "seconds" and value is not None:
                value = float(value)
            elif value is not None and name not in JSON_COLUMNS:
                value = str(value)
            values.append(value)
        placeholders = ", ".join("?" for _ in COLUMN_NAMES)
        with self._transaction():
            self._connection.execute(
                f"INSERT OR REPLACE INTO runs ({', '.join(COLUMN_NAMES)}) VALUES ({placeholders})", values
            )

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._connection.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._connection.execute("ROLLBACK")
            raise
        self._connection.execute("COMMIT")

    def keys(self, status: str | None = None) -> set[str]:
        """Keys of the stored rows (only those with ``status``, if given)."""
        if status is None:
            rows = self._connection.execute("SELECT key FROM runs")
        else:
            rows = self._connection.execute("SELECT key FROM runs WHERE status = ?", (status,))
        return {key for (key,) in rows}

    def count(self, status: str | None = None) -> int:
        """Number of stored rows (only those with ``status``, if given)."""
        if status is None:
            return self._connection.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        return self._connection.execute("SELECT COUNT(*) FROM runs WHERE status = ?", (status,)).fetchone()[0]

    def rows(self, status: str | None = "ok", per_node: bool = True) -> list[dict[str, Any]]:
        """The stored rows as dicts (JSON columns decoded), ordered by sweep, dataset, method, seed.

        ``per_node=False`` leaves the per-node tables (the bulk of a GO sweep) unread: None.
        """
        selected = [name if per_node or name != "per_node" else "NULL AS per_node" for name in COLUMN_NAMES]
        query = f"SELECT {', '.join(selected)} FROM runs"
        params: Iterable = ()
        if status is not None:
            query += " WHERE status = ?"
            params = (status,)
        query += " ORDER BY sweep, dataset, method, seed, key"
        out = []
        for values in self._connection.execute(query, tuple(params)):
            row = dict(zip(COLUMN_NAMES, values, strict=True))
            for name in JSON_COLUMNS:
                if row[name] is not None:
                    row[name] = json.loads(row[name])
            if isinstance(row["metrics"], dict):  # a NaN metric is stored as null
                row["metrics"] = {k: math.nan if v is None else v for k, v in row["metrics"].items()}
            out.append(row)
        return out

    def frame(self, status: str | None = "ok", per_node: bool = True):
        """A pandas DataFrame of the rows with ``status`` (all rows if None), JSON columns decoded;
        ``per_node=False`` as for :meth:`rows`."""
        import pandas as pd

        return pd.DataFrame(self.rows(status, per_node), columns=list(COLUMN_NAMES))
