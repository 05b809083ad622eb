"""The readers under fuzzing: any bytes in, a valid dataset or an HMLError naming the file out.

The long runs are ``python bench/fuzz_readers.py --minutes 10`` (docs/fuzzing.md); here the same
mutational loop runs briefly with a fixed seed and a fixed number of inputs, a hypothesis test
builds data rows from ARFF's special tokens, and each crash the long runs found (minimised)
keeps the exact error it now raises.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hmlearn.data.arff import read_arff
from hmlearn.data.table import read_table
from hmlearn.errors import DataFormatError, HierarchyError

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture(scope="module")
def fuzzer():
    sys.path.insert(0, str(BENCH))
    try:
        import fuzz_readers
    finally:
        sys.path.remove(str(BENCH))
    return fuzz_readers


@pytest.mark.parametrize(("target", "inputs"), [("arff", 250), ("table", 150), ("checkpoint", 100), ("spec", 60)])
def test_mutated_inputs_give_a_dataset_or_a_clear_error(fuzzer, tmp_path, target, inputs):
    result = fuzzer.fuzz(target, max_inputs=inputs, seed=0, work_dir=tmp_path, slow=60.0, minimize_findings=False)
    assert result.inputs == inputs
    assert not result.findings, "\n\n".join(
        f"{f.summary}\ninput: {f.data[:300]!r}\n{f.report}" for f in result.findings.values()
    )


HEADER = "@RELATION r\n@ATTRIBUTE x numeric\n@ATTRIBUTE c {red,'dark blue'}\n@ATTRIBUTE class hierarchical a,a/b,c\n@DATA\n"
CELLS = ["1", "-2.5e3", "?", "nan", "inf", "1e999", "1_0", "red", "'dark blue'", "blue", "a", "a/b@c", "@", "d",
         "", " ", "'", "%", "{", "\x00", "\ufffd", "\x0b", "9" * 50]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.lists(st.sampled_from(CELLS), max_size=5), max_size=4),
       newline=st.sampled_from(["\n", "\r\n", "\r"]))
def test_rows_of_special_tokens_give_a_dataset_or_a_clear_error(fuzzer, tmp_path, rows, newline):
    path = tmp_path / "rows.arff"
    path.write_bytes((HEADER + "\n".join(",".join(row) for row in rows)).replace("\n", newline).encode())
    fuzzer.run_arff(path)  # raises ContractBroken, or the reader's own crash, when the contract breaks


# ------------------------------------------------------------------ regressions: the crashes found, minimised
TOY = b"@RELATION r\n@ATTRIBUTE x numeric\n@ATTRIBUTE class hierarchical a,b\n@DATA\n"

REGRESSIONS = {
    # pandas InvalidIndexError ("Reindexing only valid with uniquely valued Index objects")
    "nominal value listed twice": (
        b"@ATTRIBUTE c {green,green}\n@ATTRIBUTE class hierarchical a\n@DATA\n",
        DataFormatError, "x.arff:1: nominal attribute 'c' lists the value 'green' twice"),
    # read without an error: pandas silently dropped the values beyond the attributes (found by hand while fixing)
    "extra value in the first row": (
        TOY + b"1,a,7\n2,b\n", DataFormatError, "x.arff:5: expected 2 comma-separated values, found 3"),
    "extra value in every row": (
        TOY + b"1,a,7\n2,b,8\n", DataFormatError, "x.arff:5: expected 2 comma-separated values, found 3"),
    # silently read as 0 rows: with CR line ends pandas skipped the row of empty values
    "empty values with CR line ends": (
        b"@RELATION r\r@ATTRIBUTE class hierarchical a\r@DATA\r,\r",
        DataFormatError, "x.arff:4: expected 1 comma-separated values, found 2"),
    # read as 1 row: pandas joined the two lines of a quoted value into one row
    "quoted value across lines": (
        b"@attribute a integer\n@attribute s {x y}\n@attribute l hierarchical a/b\n@data\n1,'\nx y',a",
        DataFormatError, "x.arff:5: expected 3 comma-separated values, found 2"),
    # vague "could not parse the data section (could not convert string to float: '\x0b')"
    "line of a vertical tab": (
        TOY + b"\x0b\n1,a\n", DataFormatError, "x.arff:5: expected 2 comma-separated values, found 1"),
    # vague "could not parse the data section (cannot safely convert passed user dtype of float64 ...)"
    "number python reads, pandas does not": (
        TOY + b"1_000,a\n", DataFormatError, "x.arff:5: column 1 (x): '1_000' is not a number; use ? for a missing value"),
    "boolean among numbers": (
        TOY + b"1,a\nTrue,b\n", DataFormatError,
        "x.arff:6: column 1 (x): 'True' is not a number; use ? for a missing value"),
    "nan is not the missing value": (
        TOY + b"nan,a\n", DataFormatError, "x.arff:5: column 1 (x): 'nan' is not a number; use ? for a missing value"),
    "non-ASCII digit": (
        TOY + "\u0661,a\n".encode(), DataFormatError,
        "x.arff:5: column 1 (x): '\u0661' is not a number; use ? for a missing value"),
    # 2 s (5,000 levels in 29 KB), more than a minute and gigabytes for a longer path: closing labels costs depth^2
    "hierarchy path thousands of levels deep": (
        b"@ATTRIBUTE class hierarchical " + b"/".join([b"a"] * 5000) + b"\n@DATA\n", HierarchyError,
        "x.arff:1: label path 'a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a...' has 5000 levels; at most 100 are supported"),
    "hierarchy edges 101 levels deep": (
        b"@ATTRIBUTE class hierarchical root/n0," + b",".join(b"n%d/n%d" % (i, i + 1) for i in range(100))
        + b"\n@DATA\n",
        HierarchyError, "x.arff:1: node 'n100' is 101 levels deep; at most 100 are supported"),
    # StopIteration from Hierarchy._find_cycle: it walked down from 'a', below the cycle, and found no way on
    "cycle with a node below it": (
        b"@ATTRIBUTE class hierarchical root/x,x/y,y/x,y/a\n@DATA\n",
        HierarchyError, "x.arff:1: cycle in hierarchy: y -> x -> y"),
    # vague "cannot read '1,'a' (Error tokenizing data. C error: EOF inside string starting at row 0)"
    "quote never closed": (
        TOY + b"1,'a\n", DataFormatError, "x.arff:5: a quote (') opened on this line is never closed"),
    # _csv.Error "field larger than field limit (131072)" from the slow path
    "value longer than csv's limit": (
        TOY + b"1," + b"a" * 140_000 + b"\n", DataFormatError,
        "x.arff:5: cannot split the line into values (field larger than field limit (131072))"),
}


def _damaged_parquet() -> bytes:
    """A Parquet file whose pandas metadata lacks 'index_columns' (as byte flips in its footer left it)."""
    table = pa.table({"a": [1.0], "b": [2.0], "c": [3.0]})
    buffer = io.BytesIO()
    pq.write_table(table.replace_schema_metadata({b"pandas": json.dumps({"columns": []}).encode()}), buffer)
    return buffer.getvalue()


TABLE_REGRESSIONS = {
    # KeyError 'index_columns' (also 'pandas_type', 'numpy_type') from pyarrow's pandas metadata
    "damaged pandas metadata": (
        "x.parquet", _damaged_parquet(), DataFormatError,
        "x.parquet: not a readable Parquet file (damaged pandas metadata: no 'index_columns')"),
    # pyarrow ArrowNotImplementedError: a column's logical type mutated into a 128-bit integer (the input as found)
    "128-bit integer column": (
        "x.parquet", (Path(__file__).parent / "data" / "fuzz" / "int128.parquet").read_bytes(), DataFormatError,
        "x.parquet: not a readable Parquet file (Integers with more than 64 bits not implemented)"),
    # no answer within 20 s (16 s for 2,459 levels): the node names and their prefixes cost depth^3
    "label path thousands of levels deep": (
        "x.csv", b"a,b,c,labels\n1,1,1," + b"/".join([b"01"] * 3000) + b"\n", HierarchyError,
        ("x.csv: row 1, column 'labels': label path '01/01/01/01/01/01/01/01/01/01/01/01/0...' has 3000 levels; "
        "at most 100 are supported")),
    # 2.8 s: pandas built a column for each of the first row's 59,334 cells before refusing them
    "first row far wider than the header": (
        "x.csv", b"id,a,b,c\n" + b",".join([b"x"] * 60_000) + b"\n", DataFormatError,
        "x.csv: row 1 has 60000 cells, the header names 4 columns; quote cells that contain a comma"),
    # 2.0 s: one hierarchy built per label, 33,000 times the same label, to find the bad one's row
    "one bad label after thousands of repeats": (
        "x.csv", b"a,b,c,labels\n1,2,3," + b";".join([b"01/02"] * 30_000) + b"\n1,2,3,01//02\n", HierarchyError,
        "x.csv: row 2, column 'labels': label path '01//02' has an empty component"),
}


@pytest.mark.parametrize("case", REGRESSIONS)
def test_arff_crash_found_by_fuzzing_is_now_a_clear_error(tmp_path, case):
    content, error, message = REGRESSIONS[case]
    path = tmp_path / "x.arff"
    path.write_bytes(content)
    with pytest.raises(error) as raised:
        read_arff(path)
    assert str(raised.value) == f"{tmp_path}/{message}"


@pytest.mark.parametrize("case", TABLE_REGRESSIONS)
def test_table_crash_found_by_fuzzing_is_now_a_clear_error(tmp_path, case):
    name, content, error, message = TABLE_REGRESSIONS[case]
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(error) as raised:
        read_table(path)
    assert str(raised.value) == f"{tmp_path}/{message}"


@pytest.mark.parametrize(("text", "words"), [
    ("name: x\ndatasets: " + "[" * 2000 + "]" * 2000 + "\n", "nested too deeply"),
    ("name: x\nseeds: [" + "9" * 5000 + "]\n", "not a usable YAML value"),
    ("name: x\n? {a: 1}\n: 2\n", "a key must be a plain name"),
])
def test_spec_crashes_found_by_fuzzing_are_now_clear_errors(tmp_path, text, words):
    from hmlearn.experiments.spec import SpecError, load_spec

    path = tmp_path / "spec.yaml"
    path.write_text(text)
    with pytest.raises(SpecError, match=words):
        load_spec(path)
