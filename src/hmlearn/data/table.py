"""A user's own table (CSV or Parquet, one row per sample) read into an :class:`HMCDataset`.

Bioinformaticians and ecologists keep their samples in spreadsheets, not in ARFF: numeric
feature columns (an empty or ``NA`` cell is a missing value, imputed later), perhaps an id
column, and a labels column of hierarchy paths joined by ``;`` (``01/01.03;02``). The
hierarchy is built from the label paths, or read from a file of its own (one path per line,
or ``parent,child`` edges for a DAG). Every error names the file, the row (counted from 1 at
the first row below the header) and the column, and says what to do; the same feature parsing
serves prediction tables (:func:`hmlearn.predict_io.read_features`), so both give the same
errors.
"""

from __future__ import annotations

import csv
import warnings
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from hmlearn.data.dataset import HMCDataset
from hmlearn.errors import DataFormatError, HierarchyError
from hmlearn.fileio import read_text
from hmlearn.hierarchy import Hierarchy

TABLE_SUFFIXES = (".csv", ".parquet", ".pq")
MISSING = ("", "?", "NA", "N/A", "n/a", "NaN", "nan", "NULL", "null", "#N/A")  # cells read as missing
ID_COLUMNS = ("id", "sample", "sample_id", "gene", "name")  # names taken for the id column
SEPARATORS = ("/", "|", ">", ".")  # path separators guessed, in this order
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def is_table(path: str | Path) -> bool:
    """True for the file names :func:`read_table` reads (``.csv``, ``.parquet``, ``.pq``)."""
    return Path(path).suffix.lower() in TABLE_SUFFIXES


def read_table(
    path: str | Path,
    labels_column: str = "labels",
    hierarchy: Hierarchy | str | Path | None = None,
    id_column: str | None = None,
    label_delimiter: str = ";",
    separator: str | None = None,
    strict: bool = False,
) -> HMCDataset:
    """One training table -> HMCDataset (X float32 with NaN where missing, Y closed upwards).

    ``hierarchy``: None builds it from the label paths (every prefix is a node); a
    :class:`Hierarchy` or the path of a hierarchy file (see :func:`read_hierarchy`) fixes it, and
    a label outside it is an error. ``separator`` splits paths (default: guessed, see
    :func:`guess_separator`). A label listed without its ancestors (possible when the hierarchy
    is given, e.g. as DAG edges) is added with a warning, or refused with ``strict=True``.
    ``id_column`` defaults to a column named ``id``, ``sample``, ``gene``, ... or a first column
    holding text; every other column but the labels must be numeric.
    """
    return read_tables([path], labels_column, hierarchy, id_column, label_delimiter, separator, strict)[0]


def read_tables(
    paths: Sequence[str | Path],
    labels_column: str = "labels",
    hierarchy: Hierarchy | str | Path | None = None,
    id_column: str | None = None,
    label_delimiter: str = ";",
    separator: str | None = None,
    strict: bool = False,
) -> list[HMCDataset]:
    """Several tables (train, valid, test) over one hierarchy and one feature layout.

    Without ``hierarchy`` it is built from the labels of all the tables, so a node seen only in
    the test table is still a node. Arguments as in :func:`read_table`.
    """
    if separator is not None and separator == label_delimiter:
        raise DataFormatError(f"the path separator and the label delimiter are both {separator!r}; they must differ")
    paths = [Path(p) for p in paths]
    frames = [read_frame(p, text_columns=[labels_column, *([id_column] if id_column else [])]) for p in paths]
    label_sets = [read_label_sets(frame, labels_column, path, label_delimiter) for frame, path in zip(frames, paths)]
    source = ""
    if hierarchy is None:
        hierarchy = hierarchy_from_labels(label_sets, paths, labels_column, separator)
    elif not isinstance(hierarchy, Hierarchy):
        source = f" in {hierarchy}"
        hierarchy = read_hierarchy(hierarchy, separator)
    datasets: list[HMCDataset] = []
    for frame, path, labels in zip(frames, paths, label_sets):
        _, features = split_columns(frame, path, exclude=[labels_column], id_column=id_column)
        if datasets and features != datasets[0].feature_names:
            raise DataFormatError(f"{path}: {_layout_difference(features, datasets[0].feature_names, paths[0])}")
        X = feature_matrix(frame, features, path)
        Y = encode_labels(labels, hierarchy, path, labels_column, source, strict)
        datasets.append(HMCDataset(X, Y, hierarchy, features, path.stem))
    return datasets


def read_hierarchy(path: str | Path, separator: str | None = None) -> Hierarchy:
    """A hierarchy file: one label path per line (a tree), or ``parent,child`` per line (a DAG).

    A file whose lines all hold two comma- (or tab-) separated names is an edge list (a first
    line ``parent,child`` is a header); nodes without a parent are its roots, outputs that
    losses and metrics skip. Otherwise every line is a path (``01/05/06``), each prefix a node,
    under a synthetic ``root``. Blank lines and lines starting with ``#`` are skipped.
    """
    path = Path(path)
    text = read_text(path, "hierarchy file", DataFormatError)
    lines = [(n, line.strip()) for n, line in enumerate(text.splitlines(), start=1)]
    lines = [(n, line) for n, line in lines if line and not line.startswith("#")]
    if not lines:
        raise HierarchyError(f"{path}: the hierarchy file has no nodes; write one path (or 'parent,child') per line")
    delimiter = "\t" if all(line.count("\t") == 1 for _, line in lines) else ","
    if all(len(_fields(line, delimiter)) == 2 for _, line in lines):
        return _hierarchy_from_edges(path, lines, delimiter)
    separator = separator or guess_separator(line for _, line in lines)
    first_line: dict[str, int] = {}
    for lineno, line in lines:
        if delimiter in line:
            raise HierarchyError(f"{path}:{lineno}: {line[:60]!r} is neither a path nor a 'parent,child' pair; "
                                 "write one path per line, or two names on every line")
        key = separator.join(part.strip() for part in line.split(separator))
        if key in first_line:
            raise HierarchyError(f"{path}:{lineno}: duplicate node {key!r} (first on line {first_line[key]}); "
                                 "list each node once")
        first_line[key] = lineno
    try:
        return Hierarchy.from_paths([line for _, line in lines], separator)
    except HierarchyError:
        pass
    for lineno, line in lines:  # errors only: name the line of the first bad path
        try:
            Hierarchy.from_paths([line], separator)
        except HierarchyError as error:
            raise HierarchyError(f"{path}:{lineno}: {error}") from None
    raise AssertionError("unreachable: the paths built no hierarchy but each one builds alone")


def _fields(line: str, delimiter: str) -> list[str]:
    return [field.strip().strip('"') for field in line.split(delimiter)]


def _hierarchy_from_edges(path: Path, lines: list[tuple[int, str]], delimiter: str) -> Hierarchy:
    edges: list[tuple[str, str]] = []
    for index, (lineno, line) in enumerate(lines):
        parent, child = (name.strip() for name in _fields(line, delimiter))
        if index == 0 and (parent.lower(), child.lower()) == ("parent", "child"):
            continue  # header
        if not parent or not child:
            raise HierarchyError(f"{path}:{lineno}: an edge needs two names, 'parent{delimiter}child'; found {line!r}")
        if parent == child:
            raise HierarchyError(f"{path}:{lineno}: cycle in hierarchy: node {parent!r} is its own parent")
        edges.append((parent, child))
    if not edges:
        raise HierarchyError(f"{path}: the hierarchy file has only a header; add one 'parent,child' line per edge")
    try:
        return Hierarchy.from_edges(edges)
    except HierarchyError as error:
        raise HierarchyError(f"{path}: {error}") from None


def guess_separator(paths: Iterable[str]) -> str:
    """The first of ``/ | > .`` that occurs in any path; ``/`` when none does (flat labels)."""
    paths = list(paths)
    return next((sep for sep in SEPARATORS if any(sep in p for p in paths)), "/")


# ---------------------------------------------------------------------------------- reading
def read_frame(path: str | Path, text_columns: Collection[str] = ()) -> pd.DataFrame:
    """The table as a DataFrame: ``MISSING`` cells as NaN, ``text_columns`` and id-named columns as text.

    Refuses, naming the file: a missing or empty file, no rows below the header, an unnamed
    or duplicate column name, a row with more cells than the header has columns.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file")
    if path.suffix.lower() in (".parquet", ".pq"):
        frame = _read_parquet(path)
        _check_column_names([str(c) for c in frame.columns], path)
        frame.columns = [str(c) for c in frame.columns]
    else:
        frame = _read_csv(path, text_columns)
    if len(frame) == 0:
        raise DataFormatError(f"{path}: no data rows below the header; add one row per sample")
    return frame


def _read_csv(path: Path, text_columns: Collection[str]) -> pd.DataFrame:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = csv.reader(handle)
            header = next(rows, None)
            try:
                first_row = next(rows, [])
            except csv.Error:  # a cell beyond csv's length limit: left to pandas
                first_row = []
    except UnicodeDecodeError as error:
        raise DataFormatError(f"{path}: not UTF-8 text (byte {error.start}); save the table as UTF-8 CSV") from None
    except csv.Error as error:
        raise DataFormatError(f"{path}: line 1 (the header): {error}") from None
    except OSError as error:
        raise DataFormatError(f"{path}: cannot read the table ({error.strerror or error})") from None
    if not header or all(not name.strip() for name in header):
        raise DataFormatError(f"{path}: the file is empty; a table needs a header row naming its columns, "
                              "then one row per sample")
    _check_column_names(header, path)
    if len(first_row) > len(header):  # refused before pandas, which would build a column per cell first
        _raise_bad_row(path, len(header), ValueError("the first row is wider than the header"))
    text = {name for name in header if name in text_columns or name.lower() in ID_COLUMNS}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)  # cells beyond the header: refused, not dropped
            return pd.read_csv(path, dtype={name: str for name in text}, keep_default_na=False,
                               na_values=list(MISSING), encoding="utf-8-sig", engine="c", index_col=False)
    except UnicodeDecodeError as error:
        raise DataFormatError(f"{path}: not UTF-8 text (byte {error.start}); save the table as UTF-8 CSV") from None
    except (pd.errors.ParserError, pd.errors.ParserWarning, ValueError) as error:
        _raise_bad_row(path, len(header), error)
        raise  # unreachable


def _raise_bad_row(path: Path, n_columns: int, cause: Exception) -> None:
    """Slow path, errors only: name the first row whose cell count differs from the header's."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            next(reader, None)
            for row, cells in enumerate(reader, start=1):
                if len(cells) > n_columns:
                    raise DataFormatError(
                        f"{path}: row {row} has {len(cells)} cells, the header names {n_columns} columns; "
                        "quote cells that contain a comma"
                    )
    except csv.Error as error:
        raise DataFormatError(f"{path}: line {reader.line_num}: {error}") from None
    first_line = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
    raise DataFormatError(f"{path}: not a readable CSV table ({first_line})")


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except ImportError as error:
        raise DataFormatError(f"{path}: reading Parquet needs pyarrow ({error})") from None
    except KeyError as error:  # pyarrow, on damaged pandas metadata in the file
        raise DataFormatError(f"{path}: not a readable Parquet file (damaged pandas metadata: no {error})") from None
    except (OSError, ValueError, TypeError, NotImplementedError) as error:  # NotImplemented: e.g. 128-bit ints
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataFormatError(f"{path}: not a readable Parquet file ({reason})") from None


def _check_column_names(names: list[str], path: Path) -> None:
    seen: dict[str, int] = {}
    for position, name in enumerate(names, start=1):
        if not name.strip():
            raise DataFormatError(f"{path}: column {position} has no name in the header row "
                                  "(a saved pandas index?); name it, e.g. 'id', or save without the index")
        if name in seen:
            raise DataFormatError(f"{path}: column name {name!r} appears twice (columns {seen[name]} and "
                                  f"{position}); give every column a unique name")
        seen[name] = position


# ---------------------------------------------------------------------------------- features
def split_columns(
    frame: pd.DataFrame, path: str | Path, exclude: Collection[str] = (), id_column: str | None = None
) -> tuple[str | None, list[str]]:
    """(id column or None, feature columns in table order); ``exclude`` names columns that are neither.

    The id column is ``id_column``, else the first column named like an id (``ID_COLUMNS``,
    any case), else the first column when it holds text.
    """
    columns = [c for c in frame.columns if c not in exclude]
    if id_column is not None and id_column not in frame.columns:
        raise DataFormatError(f"{path}: no id column {id_column!r}; the columns are {listing(list(frame.columns))}")
    if id_column is None:
        named = [c for c in columns if c.lower() in ID_COLUMNS]
        if named:
            id_column = named[0]
        elif columns and not _is_numeric(frame[columns[0]]):
            id_column = columns[0]
    features = [c for c in columns if c != id_column]
    if not features:
        raise DataFormatError(f"{path}: no feature columns (the columns are {listing(list(frame.columns))})")
    return id_column, features


def feature_matrix(frame: pd.DataFrame, columns: Sequence[str], path: str | Path) -> np.ndarray:
    """(S, F) float32 from numeric columns, NaN where missing.

    Refuses, naming the row and column: text that is not a number, +/-inf (not a missing
    value) and numbers beyond float32 (about 3.4e38).
    """
    X = np.empty((len(frame), len(columns)), dtype=np.float32)
    for j, name in enumerate(columns):
        X[:, j] = _numeric_column(frame[name], name, path)
    return X


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)


def _numeric_column(series: pd.Series, name: str, path: str | Path) -> np.ndarray:
    if _is_numeric(series):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        try:
            numbers = pd.to_numeric(series, errors="coerce")
        except (TypeError, ValueError, OverflowError):
            numbers = pd.Series([_float_or_nan(v) for v in series], index=series.index, dtype=np.float64)
        missing = series.isna().to_numpy() | series.astype(str).str.strip().isin(MISSING).to_numpy()
        bad = np.flatnonzero(numbers.isna().to_numpy() & ~missing)
        if len(bad):
            value = series.iloc[bad[0]]
            if len(bad) == int((~missing).sum()):
                raise DataFormatError(
                    f"{path}: column {name!r} holds text (row {bad[0] + 1}: {value!r}), not numbers; "
                    "name it as the id column (--id-column) or remove it"
                )
            raise DataFormatError(f"{path}: row {bad[0] + 1}, column {name!r}: {value!r} is not a number; "
                                  "feature columns must be numeric (leave a missing value's cell empty)")
        values = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
    infinite = np.flatnonzero(np.isinf(values))
    if len(infinite) and not _is_numeric(series):  # text such as '1e999' or '99...9' that overflows a float
        raw = str(series.iloc[infinite[0]]).strip()
        if raw.lower().lstrip("+-") not in ("inf", "infinity"):
            raise DataFormatError(f"{path}: row {infinite[0] + 1}, column {name!r}: {raw[:40]!r} is beyond float32 "
                                  f"(largest {_FLOAT32_MAX:.3g}); rescale the column, e.g. take its log")
    if len(infinite):
        raw = _raw_cell(path, name, int(infinite[0]))  # the text as written: '1e400', not the 'inf' it became
        if raw is not None and raw.lower().lstrip("+-") not in ("inf", "infinity"):
            raise DataFormatError(f"{path}: row {infinite[0] + 1}, column {name!r}: {raw[:40]!r} is beyond float32 "
                                  f"(largest {_FLOAT32_MAX:.3g}); rescale the column, e.g. take its log")
        raise DataFormatError(f"{path}: row {infinite[0] + 1}, column {name!r}: {values[infinite[0]]:g}; "
                              "inf is not a missing value, use an empty cell for missing")
    huge = np.flatnonzero(np.abs(np.nan_to_num(values)) > _FLOAT32_MAX)
    if len(huge):
        raise DataFormatError(f"{path}: row {huge[0] + 1}, column {name!r}: {values[huge[0]]:g} is beyond "
                              f"float32 (largest {_FLOAT32_MAX:.3g}); rescale the column, e.g. take its log")
    return values


def _raw_cell(path: str | Path, column: str, row: int) -> str | None:
    """One CSV cell as the text written in the file (None for Parquet, or where it cannot be read again)."""
    if Path(path).suffix.lower() != ".csv":
        return None
    try:
        cells = pd.read_csv(path, usecols=[column], dtype=str, keep_default_na=False, skiprows=range(1, row + 1),
                            nrows=1)
        return str(cells.iloc[0, 0]).strip()
    except (OSError, ValueError, IndexError):
        return None


def _float_or_nan(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except OverflowError:
        return np.inf
    except (TypeError, ValueError):
        return np.nan


# ---------------------------------------------------------------------------------- labels
def read_label_sets(frame: pd.DataFrame, column: str, path: Path, delimiter: str) -> list[list[str]]:
    """Per row, the labels of ``column``: a text cell split on ``delimiter``, or a list (Parquet)."""
    if column not in frame.columns:
        raise DataFormatError(f"{path}: no labels column {column!r}; the columns are {listing(list(frame.columns))}; "
                              "name the column of label paths with --labels-column")
    sets: list[list[str]] = []
    for cell in frame[column]:
        if isinstance(cell, (list, tuple, np.ndarray)):
            labels = [str(v).strip() for v in cell]
        elif cell is None or (isinstance(cell, float) and np.isnan(cell)) or cell is pd.NA:
            labels = []
        else:
            labels = [part.strip() for part in str(cell).split(delimiter)]
        sets.append([label for label in labels if label])
    return sets


def hierarchy_from_labels(
    label_sets: list[list[list[str]]], paths: list[Path], column: str, separator: str | None
) -> Hierarchy:
    distinct = list(dict.fromkeys(label for sets in label_sets for labels in sets for label in labels))
    if not distinct:
        raise HierarchyError(f"{paths[0]}: column {column!r} holds no labels; write each sample's label paths "
                             "there, joined by ';'")
    separator = separator or guess_separator(distinct)
    try:
        return Hierarchy.from_paths(distinct, separator)
    except HierarchyError:
        pass
    tried: set[str] = set()
    for path, sets in zip(paths, label_sets):  # errors only: name the row of the first bad path
        for row, labels in enumerate(sets, start=1):
            for label in labels:
                if label in tried:
                    continue
                tried.add(label)
                try:
                    Hierarchy.from_paths([label], separator)
                except HierarchyError as error:
                    raise HierarchyError(f"{path}: row {row}, column {column!r}: {error}") from None
    raise AssertionError("unreachable: the paths built no hierarchy but each one builds alone")


def encode_labels(
    label_sets: list[list[str]], hierarchy: Hierarchy, path: Path, column: str, source: str, strict: bool
) -> np.ndarray:
    """(S, N) bool closed upwards; a label outside the hierarchy raises, naming its row."""
    index = hierarchy.index
    rows: list[int] = []
    cols: list[int] = []
    for row, labels in enumerate(label_sets):
        for label in labels:
            j = index.get(label)
            if j is None:
                raise HierarchyError(f"{path}: row {row + 1}, column {column!r}: label {label!r} is not a node of "
                                     f"the hierarchy{source}")
            rows.append(row)
            cols.append(j)
    direct = np.zeros((len(label_sets), len(hierarchy)), dtype=bool)
    direct[rows, cols] = True
    closed = hierarchy.close(direct)
    stated = direct | (sp.csr_matrix(direct).astype(np.int32) @ _path_prefixes(hierarchy)).toarray().astype(bool)
    unstated = closed & ~stated & hierarchy.evaluated
    if unstated.any():
        rows_open = np.flatnonzero(unstated.any(axis=1))
        if strict:
            row = int(rows_open[0])
            ancestor = int(np.flatnonzero(unstated[row])[0])
            label = next(label for label in label_sets[row] if ancestor in hierarchy.ancestors(label))
            raise HierarchyError(
                f"{path}: row {row + 1}, column {column!r}: label {label!r} is listed without its ancestor "
                f"{hierarchy.nodes[ancestor]!r}; list every ancestor, or leave out strict (--strict) to add them"
            )
        warnings.warn(
            f"{path}: {len(rows_open)} sample(s) listed a label without its ancestors; their label sets were "
            "closed upwards (strict=True / --strict refuses this)", UserWarning, stacklevel=4,
        )
    return closed


def _path_prefixes(hierarchy: Hierarchy) -> sp.csr_matrix:
    """(N, N) ``P[i, j] = 1`` iff node j's name is a path prefix of node i's: implied by writing i."""
    index, separator = hierarchy.index, hierarchy.separator
    rows: list[int] = []
    cols: list[int] = []
    for i, name in enumerate(hierarchy.nodes):
        parts = name.split(separator)
        for depth in range(1, len(parts)):
            j = index.get(separator.join(parts[:depth]))
            if j is not None:
                rows.append(i)
                cols.append(j)
    n = len(hierarchy)
    return sp.csr_matrix((np.ones(len(rows), dtype=np.int32), (rows, cols)), shape=(n, n))


def listing(names: list[str], limit: int = 10) -> str:
    shown = ", ".join(map(str, names[:limit]))
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _layout_difference(features: list[str], reference: list[str], reference_path: Path) -> str:
    if len(features) != len(reference):
        return f"{len(features)} feature columns, {reference_path} has {len(reference)}; use the same columns"
    position = next(j for j, (a, b) in enumerate(zip(features, reference)) if a != b)
    return (f"feature column {position + 1} is {features[position]!r}, in {reference_path} it is "
            f"{reference[position]!r}; use the same columns in the same order")
