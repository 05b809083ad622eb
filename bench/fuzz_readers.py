"""Mutational fuzzing of the data readers: any bytes in, a valid dataset or a clear HMLError out.

    python bench/fuzz_readers.py --minutes 10 [--target arff|table|all] [--seed N] [--crash-dir DIR]

Targets and the contract each reader must keep, for every input:
- ``arff``: ``read_arff_header``, ``read_arff`` and ``load_dataset`` on a path (cold, then from
  the parsed cache) return a valid result (X float32 2-D, Y bool with one column per node and
  closed upwards, one feature name per column) or raise an ``HMLError`` whose message names
  the file;
- ``table``: ``predict_io.read_features`` on ``.csv`` / ``.parquet`` files, and
  ``hmlearn.data.table.read_table`` when that module is importable, likewise;
- ``checkpoint``: ``load_checkpoint`` on a mutated payload in a valid envelope (magic, header,
  size and SHA-256 all correct): a model that predicts, or an ``HMLError`` naming the file;
  the file unchanged and no code from it run;
- ``spec``: ``load_spec`` and ``expand`` on a mutated YAML sweep spec: cells with distinct keys,
  or an ``HMLError`` naming the file.

Inputs are mutated from seeds (synthetic tree and DAG datasets written by ``write_arff``,
nominal attributes, missing values, excerpts of the benchmark files in ``../shared/hmc_data``,
small CSV and Parquet tables): bit flips, byte inserts and deletes, line duplication, deletion
and swaps, splices of two inputs and special tokens (``?``, ``@DATA``, quotes, ``nan``,
``1e999``, NUL, invalid UTF-8, CRLF, very long lines, ...). An input with a new outcome (for
each reader: success, or the error type and the line of hmlearn that raised it) joins the
corpus, so the search reaches deeper into the readers.

A finding is an exception other than an ``HMLError`` (or a hang), a result that breaks the
contract (also: fewer or more rows than data lines, ``load_dataset`` disagreeing with
``read_arff``), an error that does not name the file, an ARFF error from the reader's
fallback (its line checks missed what pandas failed on), or an input slower than ``--slow``
seconds. Each distinct one (by exception type and place) is minimised and saved with its
input and traceback under the crash directory.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import hashlib
import io
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import hmlearn
from hmlearn.errors import HMLError

PACKAGE = str(Path(hmlearn.__file__).resolve().parent)
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "hmc_data"
MAX_SIZE = 256 * 1024  # inputs are cut to this many bytes, so no input is slow merely by its size
# The ARFF reader's fallbacks: its line checks missed what its fast path failed on.
VAGUE = re.compile(r"could not parse|cannot read '")

TOKENS = [
    b"?", b"@DATA", b"@data", b"@ATTRIBUTE", b"@attribute x numeric", b"@ATTRIBUTE c hierarchical a,a/b",
    b"@RELATION", b"hierarchical", b"numeric", b"real", b"integer", b"string", b"date", b"'", b'"', b",",
    b"{", b"}", b"{}", b"{a,b}", b"%", b"@", b"/", b"//", b"root", b"root/", b"root/root", b"nan", b"NaN",
    b"inf", b"-inf", b"1e999", b"-1e999", b"1e-999", b"9" * 400, b"0x10", b"1_000", b"1e", b"--1", b".",
    b"\xd9\xa1\xd9\xa2", b"\x00", b"\xff", b"\xc3", b"\xc0\xaf", b"\xed\xa0\x80", b"\xef\xbb\xbf", b"\xc2\xa0",
    b"\xe2\x80\xa8", b"\r\n", b"\r", b"\n", b"\t", b" ", b"\x0b", b"\x0c", b"\\", b"''", b"'a b'", b"id",
    b"sample", b"gene", b";", b"NA", b"NULL", b"True", b"PAR1", b"\n\n",
]


class ContractBroken(Exception):
    """A reader returned something invalid, or raised an HMLError that breaks the contract."""

    def __init__(self, kind: str, detail: str):
        super().__init__(f"{kind}: {detail}")
        self.kind, self.detail = kind, detail


class _Timeout(BaseException):
    """Raised by SIGALRM when one input runs past the hard time limit."""


# ---------------------------------------------------------------------------- contract checks
def _check_dataset(data, source: str) -> None:
    from hmlearn.data.dataset import HMCDataset

    if not isinstance(data, HMCDataset):
        raise ContractBroken("invalid", f"{source} returned {type(data).__name__}, not an HMCDataset")
    X, Y, hierarchy = data.X, data.Y, data.hierarchy
    problems = [
        (X.dtype != np.float32 or X.ndim != 2, f"X is {X.dtype} {X.shape}, not 2-D float32"),
        (Y.dtype != bool or Y.ndim != 2, f"Y is {Y.dtype} {Y.shape}, not 2-D bool"),
        (len(X) != len(Y), f"X has {len(X)} rows, Y {len(Y)}"),
        (Y.ndim == 2 and Y.shape[1] != len(hierarchy), f"Y has {Y.shape[1:]} columns for {len(hierarchy)} nodes"),
        (data.feature_names and len(data.feature_names) != X.shape[-1], "feature names do not match X's columns"),
    ]
    for broken, detail in problems:
        if broken:
            raise ContractBroken("invalid", f"{source}: {detail}")
    if not hierarchy.is_closed(Y):
        raise ContractBroken("invalid", f"{source}: Y is not closed upwards")


def _check_features(result, n_features: int, source: str) -> None:
    X, ids = result
    if not isinstance(X, np.ndarray) or X.dtype != np.float32 or X.ndim != 2 or X.shape[1] != n_features:
        raise ContractBroken("invalid", f"{source}: X is {getattr(X, 'dtype', type(X))} {getattr(X, 'shape', '')}")
    if len(ids) != len(X) or len(X) == 0:
        raise ContractBroken("invalid", f"{source}: {len(ids)} ids for {len(X)} rows")


def _template(message: str, path: Path) -> str:
    """The message with the file, quoted text and numbers blanked: the shape of the outcome."""
    message = message.replace(str(path), "<file>").replace(path.name, "<file>")
    message = re.sub(r"'[^']*'|\"[^\"]*\"", "'_'", message)
    return re.sub(r"\d+", "N", message)[:160]


def _expect(call: Callable, path: Path, check: Callable) -> str:
    """Run one reader on ``path``; return the outcome's signature, raise if it breaks the contract."""
    try:
        result = call(path)
    except HMLError as error:
        message = str(error)
        if path.name not in message:
            raise ContractBroken("unnamed", f"{type(error).__name__} does not name the file: {message[:300]}") from None
        if VAGUE.search(message):
            raise ContractBroken("vague", f"{type(error).__name__}: {message[:300]}") from None
        return f"{type(error).__name__}@{_raise_site(error)}"
    check(result)
    return "ok"


# ---------------------------------------------------------------------------- targets
@dataclass
class Target:
    name: str
    seeds: Callable[[], list[tuple[str, bytes]]]  # (suffix, content) pairs
    run: Callable[[Path], str]  # outcome signature of one input file; raises on a finding


def run_arff(path: Path) -> str:
    """Every ARFF reader on one file: the outcome's signature; ContractBroken or the reader's crash otherwise."""
    from hmlearn.data.arff import ArffHeader, read_arff, read_arff_header
    from hmlearn.data.store import load_dataset

    def header_ok(header):
        if not isinstance(header, ArffHeader):
            raise ContractBroken("invalid", f"read_arff_header returned {type(header).__name__}")

    outcomes = [_expect(read_arff_header, path, header_ok)]
    first: list = []

    def dataset_ok(data):
        _check_dataset(data, "read_arff")
        rows = _count_data_lines(path)
        if len(data) != rows:
            raise ContractBroken("invalid", f"read_arff returned {len(data)} rows for {rows} data lines")
        first.append(data)

    outcomes.append(_expect(read_arff, path, dataset_ok))

    def same_as_read_arff(data):
        _check_dataset(data, "load_dataset")
        if first and not (np.array_equal(data.X, first[0].X, equal_nan=True) and np.array_equal(data.Y, first[0].Y)):
            raise ContractBroken("invalid", "load_dataset and read_arff disagree")

    for _ in range(2 if first else 1):  # cold, then from the parsed cache
        outcomes.append(_expect(load_dataset, path, same_as_read_arff))
    return "|".join(outcomes)


def _count_data_lines(path: Path) -> int:
    """Lines after @DATA that are neither blank nor comments: the rows a reader must return."""
    from hmlearn.data.arff import read_arff_header

    with open(path, encoding="utf-8", errors="replace") as handle:
        lines = handle.readlines()[read_arff_header(path).data_line :]
    return sum(1 for line in lines if line.strip(" \t\r\n") and not line.startswith("%"))


TABLE_FEATURES = 3  # every table seed has three feature columns


def run_table(path: Path) -> str:
    """Every table reader on one file: the outcome's signature; ContractBroken or the reader's crash otherwise."""
    from hmlearn.predict_io import read_features

    outcomes = [_expect(lambda p: read_features(p, TABLE_FEATURES), path,
                        lambda r: _check_features(r, TABLE_FEATURES, "read_features"))]
    read_table = _read_table()
    if read_table is not None:
        outcomes.append(_expect(read_table, path, _check_table_result))
    return "|".join(outcomes)


def _read_table() -> Callable | None:
    """``hmlearn.data.table.read_table`` when that module exists, else None."""
    try:
        from hmlearn.data.table import read_table
    except ImportError:
        return None
    return read_table


def _check_table_result(result) -> None:
    from hmlearn.data.dataset import HMCDataset

    if isinstance(result, HMCDataset):
        _check_dataset(result, "read_table")
    elif isinstance(result, tuple) and result and isinstance(result[0], np.ndarray):
        _check_features(result[:2], result[0].shape[-1] if result[0].ndim == 2 else -1, "read_table")
    else:
        raise ContractBroken("invalid", f"read_table returned {type(result).__name__}")


def arff_seeds() -> list[tuple[str, bytes]]:
    """Small valid ARFF files: synthetic trees and DAGs, nominal attributes, '?', benchmark excerpts."""
    from hmlearn.data.arff import write_arff
    from hmlearn.data.synthetic import make_hmc_data

    seeds: list[bytes] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (dag, n_features, n_nodes) in enumerate([(False, 3, 8), (True, 4, 12), (False, 2, 5), (True, 2, 20)]):
            data = make_hmc_data(n_samples=4, n_features=n_features, n_nodes=n_nodes, dag=dag, seed=i)
            data.X[0, 0] = np.nan
            seeds.append(write_arff(data, Path(tmp) / f"s{i}.arff").read_bytes())
    seeds += [
        (b"% comment\n@RELATION 'toy'\n\n@ATTRIBUTE g1 numeric\n@ATTRIBUTE 'g 2' real\n"
        b"@ATTRIBUTE colour {red,green,blue}\n@ATTRIBUTE class hierarchical 01,01/01,01/02,01/02/03,02\n@DATA\n"
        b"% in data\n1.5,2,red,01/02/03@02\n\n?,-1e3,blue,01/01\n3,?,?,02\n"),
        (b"@RELATION go\n@ATTRIBUTE x numeric\n"
        b"@ATTRIBUTE class hierarchical root/GO1,root/GO2,GO1/A,GO2/A,A/B\n@DATA\n1,B\n2,GO2@A\n?,A@B\n"),
        (b"@relation r\n@attribute a integer\n@attribute s {'x y',z}\n@attribute class hierarchical a/b,c\n"
        b"@data\n1,'x y',a/b\n2,z,c@a\n"),
    ]
    seeds += _benchmark_excerpts()
    return [(".arff", s) for s in seeds]


def _benchmark_excerpts(n_rows: int = 3) -> list[bytes]:
    """The header and first rows of a few benchmark files; GO hierarchies cut to the rows' ancestors."""
    from hmlearn.data.arff import hierarchy_from_header, read_arff_header

    excerpts = []
    for relative in ("datasets_FUN/spo_FUN/spo_FUN.test.arff", "others/ImCLEF07A_Test.arff",
                     "datasets_GO/spo_GO/spo_GO.test.arff"):
        path = SHARED_DATA / relative
        if not path.is_file():
            continue
        lines = path.read_bytes().split(b"\n")
        header = read_arff_header(path)
        rows = [line for line in lines[header.data_line : header.data_line + 50] if line.strip()][:n_rows]
        head = lines[: header.data_line]
        if len(b"\n".join(head)) > MAX_SIZE // 2:  # GO: keep only the edges among the rows' ancestors
            hierarchy = hierarchy_from_header(header)
            keep: set[int] = set()
            for row in rows:
                for label in row.decode().rsplit(",", 1)[1].split("@"):
                    keep.update(int(i) for i in hierarchy.ancestors(label.strip()))
            edges = [f"{hierarchy.nodes[p]}/{hierarchy.nodes[c]}" for p, c in hierarchy.edges if p in keep and c in keep]
            head = [b"@ATTRIBUTE class hierarchical " + ",".join(edges).encode() if b"hierarchical" in line else line
                    for line in head]
        excerpts.append(b"\n".join(head + rows) + b"\n")
    return excerpts


def table_seeds() -> list[tuple[str, bytes]]:
    """Small CSV and Parquet tables of three feature columns, with and without an id column."""
    import pandas as pd

    csvs = [
        b"id,a,b,c\ns1,1.0,2,3\ns2,?,-1e3,0.5\ns3,,4,5\n",
        b"gene,x1,x2,x3\nYAL001C,0.1,0.2,0.3\nYAL002W,1,2,3\n",
        b"a,b,c\n1,2,3\n4.5,NaN,6\n",
        b"\"sample\",\"a\",\"b\",\"c\"\n\"x, y\",1,2,3\n\"z\",4,5,6\n",
        b"a,b,c\r\n1,2,3\r\n",
        b"id,a,b,c,labels\ns1,1,2,3,01/02;03\ns2,?,,5,01\n",
        b"a,b,c,labels\n0.5,1,2,A|B\n1,1,1,A|C;D\n",
    ]
    seeds = [(".csv", c) for c in csvs]
    frames = [
        pd.DataFrame({"id": ["s1", "s2"], "a": [1.0, np.nan], "b": [2, 3], "c": [0.5, 1.5]}),
        pd.DataFrame({"a": np.arange(3, dtype=np.float32), "b": [True, False, True], "c": [1, 2, 3]}),
        pd.DataFrame({"a": [1.0, 2.0], "b": [3, 4], "c": [0.1, 0.2], "labels": [["01", "01/02"], ["03"]]}),
        pd.DataFrame({"gene": ["g1", "g2"], "a": [1.0, 2.0], "b": [3, 4], "c": [5, 6], "labels": ["x/y;z", "x"]}),
    ]
    for frame in frames:
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        seeds.append((".parquet", buffer.getvalue()))
    return seeds


def checkpoint_seeds() -> list[tuple[str, bytes]]:
    """Payloads (torch.save bytes) of real checkpoints, and of structured variants of them.

    The input is a checkpoint's *payload*: :func:`run_checkpoint` wraps it in a valid envelope
    (magic, header, size, SHA-256), so the mutations reach the payload checks, not the checksum.
    """
    import json

    import torch

    from hmlearn.data.synthetic import make_hmc_data
    from hmlearn.training.checkpoint import save_checkpoint
    from hmlearn.training.config import TrainConfig
    from hmlearn.training.fit import fit

    seeds = []
    with tempfile.TemporaryDirectory() as folder:
        for heads, thresholds in ((1, "fixed"), (2, "global")):
            data = make_hmc_data(n_samples=60, n_features=3, n_nodes=8, seed=heads)
            config = TrainConfig(hidden_dim=4, epochs=1, batch_size=16, heads=heads, thresholds=thresholds)
            model = fit(data.X, data.Y, data.hierarchy, config, progress=False)
            path = save_checkpoint(model, Path(folder) / "m.ckpt", {"dataset": "synthetic"})
            payload = _payload_bytes(path.read_bytes())
            seeds.append((".ckpt", payload))
            decoded = torch.load(io.BytesIO(payload), weights_only=True)
            config_dict = json.loads(decoded["config"])
            variants = [
                {**decoded, "config": json.dumps({**config_dict, "hidden_dim": 2_000_000_000})},
                {**decoded, "config": json.dumps({**config_dict, "future_option": 1})},
                {**decoded, "config": json.dumps({**config_dict, "encoder": "small-cnn"})},
                {**decoded, "n_features": torch.tensor(99)},
                {k: v for k, v in decoded.items() if k != "history"},
            ]
            for variant in variants:
                buffer = io.BytesIO()
                torch.save(variant, buffer)
                seeds.append((".ckpt", buffer.getvalue()))
    return seeds


def _payload_bytes(checkpoint: bytes) -> bytes:
    from hmlearn.training.checkpoint import MAGIC

    return checkpoint[checkpoint.index(b"\n", len(MAGIC)) + 1 :]


def run_checkpoint(path: Path) -> str:
    """``load_checkpoint`` on the payload in ``path`` wrapped in a valid envelope: a model, or an HMLError
    naming the file; the file itself left unchanged and no code run (a marker file would show it)."""
    import json

    from hmlearn.training.checkpoint import MAGIC, load_checkpoint

    payload = path.read_bytes()
    header = {"format": 1, "kind": "model", "size": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}
    wrapped = path.with_suffix(".wrapped.ckpt")
    wrapped.write_bytes(MAGIC + json.dumps(header).encode() + b"\n" + payload)
    before = wrapped.read_bytes()
    marker = path.parent / "code-was-run"

    def model_ok(result):
        model, metadata = result
        probabilities = model.predict_proba(np.zeros((2, model.standardizer.n_features), dtype=np.float32))
        if probabilities.shape != (2, len(model.hierarchy)) or not isinstance(metadata, dict):
            raise ContractBroken("invalid", f"a loaded model predicts {probabilities.shape}")

    outcome = _expect(load_checkpoint, wrapped, model_ok)
    if wrapped.read_bytes() != before:
        raise ContractBroken("changed", "loading changed the checkpoint file")
    if marker.exists():
        raise ContractBroken("code", "loading a checkpoint ran code from it")
    return outcome


SPEC_TOKENS = [b"seeds:", b"methods:", b"datasets:", b"preset:", b"name:", b"- ", b"[", b"]", b"{", b"}", b": ",
               b"null", b"~", b"true", b"1e-4", b"-1", b"0.0", b"&a", b"*a", b"!!python/object:os.system", b"<<: *a",
               b"omega: [0.2, 0.25]", b"focal: gated", b"heads: 0", b"epochs: 1e9", b"FUN", b"GO", b"---", b"...",
               b"\t", b"  ", b"\n", b"'", b'"', b"#", b"?", b"|", b">", b"%YAML 1.1", b"\x00", b"\xff"]
TOKENS.extend(token for token in SPEC_TOKENS if token not in TOKENS)


def spec_seeds() -> list[tuple[str, bytes]]:
    """Sweep specs: the project's configs and small specs using every key."""
    seeds = [(".yaml", path.read_bytes()) for path in sorted((Path(__file__).resolve().parents[1] / "configs")
                                                             .glob("*.yaml"))]
    seeds += [
        (".yaml", b"name: s\npreset: fast\ndatasets: [derisi_FUN]\nseeds: [0, 1]\nthreads_per_cell: 1\nmethods:\n"
                  b"  plain: {}\n  w: {node_weights: class-wise, omega: [0.2, 0.25], heads: 2, focal: gated}\n"),
        (".yaml", b"name: img\ndatasets:\n  - name: sea\n    table: labels.csv\n    image_size: 32\n"
                  b"methods:\n  plain: {encoder: small-cnn, train_fraction: [0.5, 1.0]}\n"),
    ]
    return seeds


def run_spec(path: Path) -> str:
    """``load_spec`` then ``expand``: a spec and its cells, or an HMLError naming the file."""
    from hmlearn.experiments.spec import expand, load_spec

    def cells_ok(cells):
        if len({cell.key for cell in cells}) != len(cells):
            raise ContractBroken("invalid", "two cells share a key")

    return _expect(lambda p: expand(load_spec(p)), path, cells_ok)


TARGETS = {"arff": Target("arff", arff_seeds, run_arff), "table": Target("table", table_seeds, run_table),
           "checkpoint": Target("checkpoint", checkpoint_seeds, run_checkpoint),
           "spec": Target("spec", spec_seeds, run_spec)}


# ---------------------------------------------------------------------------- mutations
def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


def mutate(data: bytes, corpus: list[tuple[str, bytes]], rng: np.random.Generator) -> bytes:
    """One to six stacked random mutations of ``data``, cut to MAX_SIZE."""
    for _ in range(1 + min(int(rng.exponential(1.5)), 5)):
        data = MUTATIONS[int(rng.integers(len(MUTATIONS)))](data, corpus, rng)
    return data[:MAX_SIZE]


def _position(data: bytes, rng: np.random.Generator) -> int:
    return int(rng.integers(len(data) + 1))


def _flip_bit(data, corpus, rng):
    if not data:
        return data
    i = int(rng.integers(len(data)))
    return data[:i] + bytes([data[i] ^ (1 << int(rng.integers(8)))]) + data[i + 1 :]


def _set_byte(data, corpus, rng):
    if not data:
        return data
    i = int(rng.integers(len(data)))
    value = int(rng.choice([0, 0xFF, 0x7F, 0x80, 0x0A, 0x0D, 0x2C, 0x27, 0x22, 0x25, 0x3F, 0x40, int(rng.integers(256))]))
    return data[:i] + bytes([value]) + data[i + 1 :]


def _insert_bytes(data, corpus, rng):
    i = _position(data, rng)
    return data[:i] + rng.integers(0, 256, int(rng.integers(1, 9)), dtype=np.uint8).tobytes() + data[i:]


def _delete_range(data, corpus, rng):
    i = _position(data, rng)
    return data[:i] + data[i + int(rng.integers(1, 33)) :]


def _copy_range(data, corpus, rng):
    i, j = sorted(int(v) for v in rng.integers(0, len(data) + 1, 2))
    k = _position(data, rng)
    return data[:k] + data[i:j][:256] + data[k:]


def _insert_token(data, corpus, rng):
    i = _position(data, rng)
    return data[:i] + TOKENS[int(rng.integers(len(TOKENS)))] + data[i:]


def _replace_field(data, corpus, rng):
    """One comma-separated field of one line becomes a special token."""
    lines = _lines(data)
    k = int(rng.integers(len(lines)))
    fields = lines[k].split(b",")
    fields[int(rng.integers(len(fields)))] = TOKENS[int(rng.integers(len(TOKENS)))]
    lines[k] = b",".join(fields)
    return b"\n".join(lines)


def _duplicate_line(data, corpus, rng):
    lines = _lines(data)
    k = int(rng.integers(len(lines)))
    lines.insert(int(rng.integers(len(lines) + 1)), lines[k])
    return b"\n".join(lines)


def _delete_line(data, corpus, rng):
    lines = _lines(data)
    del lines[int(rng.integers(len(lines)))]
    return b"\n".join(lines)


def _swap_lines(data, corpus, rng):
    lines = _lines(data)
    i, j = (int(v) for v in rng.integers(0, len(lines), 2))
    lines[i], lines[j] = lines[j], lines[i]
    return b"\n".join(lines)


def _splice(data, corpus, rng):
    """The start of this input, the end of another (or one of its lines inserted here)."""
    other = corpus[int(rng.integers(len(corpus)))][1]
    if rng.random() < 0.5:
        return data[: _position(data, rng)] + other[_position(other, rng) :]
    lines, extra = _lines(data), _lines(other)
    lines.insert(int(rng.integers(len(lines) + 1)), extra[int(rng.integers(len(extra)))])
    return b"\n".join(lines)


def _newlines(data, corpus, rng):
    return data.replace(b"\n", [b"\r\n", b"\r", b"\n\n", b"\x0b"][int(rng.integers(4))])


def _long_line(data, corpus, rng):
    """A very long line: a field or a chunk repeated thousands of times."""
    i = _position(data, rng)
    chunk = data[i : i + int(rng.integers(1, 16))] or b"9"
    return data[:i] + chunk * int(rng.integers(500, 4000 if rng.random() < 0.8 else 20000)) + data[i:]


def _truncate(data, corpus, rng):
    return b"" if rng.random() < 0.1 else data[: _position(data, rng)]


def _change_case(data, corpus, rng):
    lines = _lines(data)
    k = int(rng.integers(len(lines)))
    lines[k] = lines[k].upper() if rng.random() < 0.5 else lines[k].lower()
    return b"\n".join(lines)


MUTATIONS = [_flip_bit, _set_byte, _insert_bytes, _delete_range, _copy_range, _insert_token, _insert_token,
             _replace_field, _replace_field, _duplicate_line, _delete_line, _swap_lines, _splice, _newlines,
             _long_line, _truncate, _change_case]


# ---------------------------------------------------------------------------- the loop
@dataclass
class Finding:
    key: str
    kind: str
    summary: str
    report: str
    suffix: str
    data: bytes
    count: int = 1


@dataclass
class FuzzResult:
    target: str
    inputs: int = 0
    seconds: float = 0.0
    corpus: int = 0
    findings: dict[str, Finding] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.inputs / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        lines = [(f"{self.target}: {self.inputs} inputs in {self.seconds:.1f} s ({self.rate:.1f}/s), "
                 f"corpus {self.corpus}, {len(self.findings)} distinct finding(s)")]
        lines += [f"  [{f.kind}] x{f.count} {f.summary}" for f in self.findings.values()]
        return "\n".join(lines)


def _innermost_hmlearn_frame(error: BaseException) -> traceback.FrameSummary | None:
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename.startswith(PACKAGE)]
    return frames[-1] if frames else None


def _raise_site(error: BaseException) -> str:
    frame = _innermost_hmlearn_frame(error)
    return f"{Path(frame.filename).name}:{frame.lineno}" if frame else "?"


def _where(error: BaseException) -> str:
    """Exception type, the innermost hmlearn frame and the innermost frame: one key per place."""
    ours, frames = _innermost_hmlearn_frame(error), traceback.extract_tb(error.__traceback__)
    place = f"{_raise_site(error)} ({ours.name})" if ours else "?"
    if frames and frames[-1] is not ours:
        place += f" <- {Path(frames[-1].filename).name}:{frames[-1].name}"
    return f"{type(error).__name__} at {place}"


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    def expire(signum, frame):
        raise _Timeout(f"no answer within {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_one(target: Target, suffix: str, data: bytes, work: Path, hard_limit: float = 20.0,
            ) -> tuple[str, Finding | None, float]:
    """Run the target on one input: (outcome signature, finding or None, seconds)."""
    path = work / f"input{suffix}"
    path.write_bytes(data)
    started = time.perf_counter()
    try:
        with _time_limit(hard_limit), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            signature = target.run(path)
        return signature, None, time.perf_counter() - started
    except ContractBroken as broken:
        key = f"{broken.kind}: {_template(broken.detail, path)}"
        summary, kind = broken.detail.replace(str(path), path.name), broken.kind
        report = traceback.format_exc()
    except _Timeout as error:
        key = summary = f"hang: {error}"
        kind, report = "hang", traceback.format_exc()
    except Exception as error:  # noqa: BLE001 - every other exception is what we are looking for
        key = summary = _where(error)
        kind, report = "crash", traceback.format_exc()
        summary += f": {str(error)[:200]!r}"
    return key, Finding(key, kind, summary, report, suffix, data), time.perf_counter() - started


def minimize(target: Target, finding: Finding, work: Path, max_tries: int = 800, max_seconds: float = 60) -> bytes:
    """Remove lines, then byte ranges, while the same finding comes back (a small delta debugging)."""
    data, tries = finding.data, 0
    give_up = time.perf_counter() + max_seconds

    def same(candidate: bytes) -> bool:
        nonlocal tries
        tries += 1 if time.perf_counter() < give_up else max_tries
        _, again, _ = run_one(target, finding.suffix, candidate, work)
        return again is not None and again.key == finding.key

    for unit in (b"\n", None):
        chunk = max(len(data.split(b"\n")) if unit else len(data), 1) // 2
        while chunk >= 1 and tries < max_tries:
            parts = data.split(b"\n") if unit else [bytes([b]) for b in data]
            start, shrunk = 0, False
            while start < len(parts) and tries < max_tries:
                candidate = (unit or b"").join(parts[:start] + parts[start + chunk :])
                if candidate != data and same(candidate):
                    data, parts, shrunk = candidate, parts[:start] + parts[start + chunk :], True
                else:
                    start += chunk
            if not shrunk:
                chunk //= 2
    return data


def _save(finding: Finding, crash_dir: Path) -> Path:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", finding.key)[:60] + "-" + hashlib.sha1(finding.key.encode()).hexdigest()[:8]
    folder = crash_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"input{finding.suffix}").write_bytes(finding.data)
    (folder / "report.txt").write_text(f"{finding.summary}\n\ninput: {finding.data[:400]!r}\n\n{finding.report}")
    return folder


def fuzz(target_name: str, seconds: float | None = None, max_inputs: int | None = None, seed: int = 0,
         work_dir: Path | None = None, crash_dir: Path | None = None, slow: float = 2.0,
         minimize_findings: bool = True, log: Callable[[str], None] | None = None) -> FuzzResult:
    """Fuzz one target until ``seconds`` pass or ``max_inputs`` were tried; return what was found."""
    target = TARGETS[target_name]
    rng = np.random.default_rng(seed)
    result = FuzzResult(target_name)
    with tempfile.TemporaryDirectory(prefix="hmlearn-fuzz-") as tmp:
        work = Path(work_dir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        with _environment(HMLEARN_CACHE=str(work / "cache"), HMLEARN_OFFLINE="1"):
            seeds = target.seeds()
            corpus = list(seeds)
            seen: set[str] = set()
            for suffix, data in seeds:  # the seeds themselves must read cleanly
                signature, finding, _ = run_one(target, suffix, data, work)
                if finding is not None:
                    raise RuntimeError(f"seed input fails: {finding.summary}\n{finding.report}")
                seen.add(signature)
            started = time.perf_counter()
            next_log = started + 60
            while (seconds is None or time.perf_counter() - started < seconds) and (
                max_inputs is None or result.inputs < max_inputs
            ):
                suffix, base = corpus[int(rng.integers(len(corpus)))]
                data = mutate(base, corpus, rng)
                signature, finding, took = run_one(target, suffix, data, work)
                result.inputs += 1
                if finding is None and took > slow:
                    finding = Finding(f"slow: {signature}", "slow", f"{took:.1f} s on {len(data)} bytes ({signature[:80]})",
                                      "", suffix, data)
                if finding is not None:
                    if finding.key in result.findings:
                        result.findings[finding.key].count += 1
                    else:
                        if minimize_findings and finding.kind not in ("slow", "hang"):
                            finding.data = minimize(target, finding, work)
                        result.findings[finding.key] = finding
                        if crash_dir is not None:
                            folder = _save(finding, crash_dir)
                            if log:
                                log(f"new [{finding.kind}] {finding.summary} -> {folder}")
                elif signature not in seen:
                    seen.add(signature)
                    corpus.append((suffix, data))
                if result.inputs % 2000 == 0:
                    shutil.rmtree(work / "cache", ignore_errors=True)
                if log and time.perf_counter() > next_log:
                    next_log += 60
                    elapsed = time.perf_counter() - started
                    log(f"{target_name}: {result.inputs} inputs, {result.inputs / elapsed:.0f}/s, "
                        f"corpus {len(corpus)}, {len(result.findings)} finding(s)")
            result.seconds = time.perf_counter() - started
            result.corpus = len(corpus)
    return result


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="total time, shared among the targets")
    parser.add_argument("--target", choices=[*TARGETS, "all"], default="all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--crash-dir", type=Path, default=Path(tempfile.gettempdir()) / "hmlearn-fuzz")
    parser.add_argument("--slow", type=float, default=2.0, help="seconds after which an input counts as a finding")
    args = parser.parse_args()
    faulthandler.enable()  # a crash inside C code still prints where it happened
    names = list(TARGETS) if args.target == "all" else [args.target]
    results = []
    for name in names:
        if name == "table":
            print(f"table: read_features{' and read_table' if _read_table() else ''}", flush=True)
        results.append(fuzz(name, seconds=args.minutes * 60 / len(names), seed=args.seed,
                            crash_dir=args.crash_dir / name, slow=args.slow,
                            log=lambda line: print(line, flush=True)))
    print()
    for result in results:
        print(result.summary())
    print(f"crash directory: {args.crash_dir}")
    sys.exit(1 if any(r.findings for r in results) else 0)


if __name__ == "__main__":
    main()
