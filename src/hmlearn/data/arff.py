"""Reader for the HMC flavour of ARFF (Clus / C-HMCNN benchmark files).

The header declares numeric and nominal attributes and one ``hierarchical`` class attribute
whose spec lists the hierarchy: label paths (``01/05/06``, FunCat and the "others" datasets)
or ``parent/child`` edges (Gene Ontology). Each data row ends with its labels joined by
``@``. The data section is parsed in one vectorised pass (pandas' C reader); only when that
pass fails is the file walked line by line, to name the line and column at fault.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from hmlearn.data.dataset import HMCDataset
from hmlearn.errors import DataFormatError, HierarchyError
from hmlearn.hierarchy import Hierarchy

Convention = Literal["auto", "paths", "edges"]

_ATTRIBUTE = re.compile(r"@attribute\s+('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|\S+)\s+(.+)$", re.IGNORECASE)
_NUMERIC_TYPES = {"numeric", "real", "integer"}
_FLOAT32_MAX = float(np.finfo(np.float32).max)
# What pandas' C reader takes for a number (and the slow path must too): decimals with an
# exponent, padded with C whitespace; inf / infinity only after spaces.
_NUMBER = re.compile(
    r"[ \t\r\x0b\x0c]*[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[ \t\r\x0b\x0c]*|[+-]?inf(?:inity)?",
    re.IGNORECASE,
)


@dataclass
class Attribute:
    name: str
    kind: Literal["numeric", "nominal", "hierarchical"]
    values: list[str] = field(default_factory=list)  # nominal values or the hierarchy spec entries
    line: int = 0  # 1-based line of its @ATTRIBUTE declaration


@dataclass
class ArffHeader:
    path: Path
    relation: str
    attributes: list[Attribute]
    data_line: int  # 1-based line number of the @DATA line

    @property
    def class_index(self) -> int:
        return next(i for i, a in enumerate(self.attributes) if a.kind == "hierarchical")

    @property
    def hierarchy_spec(self) -> list[str]:
        return self.attributes[self.class_index].values

    @property
    def feature_attributes(self) -> list[Attribute]:
        return [a for a in self.attributes if a.kind != "hierarchical"]

    @property
    def feature_names(self) -> list[str]:
        """One name per column after one-hot encoding (``attr=value`` for nominal columns)."""
        names: list[str] = []
        for a in self.feature_attributes:
            names.extend([a.name] if a.kind == "numeric" else [f"{a.name}={v}" for v in a.values])
        return names


def read_arff_header(path: str | Path) -> ArffHeader:
    """Parse the header up to ``@DATA``; errors name the file and line."""
    path = Path(path)
    relation = ""
    attributes: list[Attribute] = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for lineno, raw in enumerate(handle, start=1):
            line = raw.strip()
            if not line or line.startswith("%"):
                continue
            lower = line.lower()
            if lower.startswith("@relation"):
                relation = line[len("@relation") :].strip().strip("'\"")
            elif lower.startswith("@attribute"):
                attributes.append(_parse_attribute(line, path, lineno))
            elif lower.startswith("@data"):
                _check_attributes(attributes, path, lineno)
                return ArffHeader(path, relation, attributes, lineno)
            else:
                raise DataFormatError(f"{path}:{lineno}: unexpected line in ARFF header: {line[:60]!r}")
    raise DataFormatError(f"{path}: no @DATA line found (is this an ARFF file?)")


def _parse_attribute(line: str, path: Path, lineno: int) -> Attribute:
    match = _ATTRIBUTE.match(line)
    if not match:
        raise DataFormatError(f"{path}:{lineno}: malformed @ATTRIBUTE line: {line[:60]!r}")
    name, spec = match.group(1).strip("'\""), match.group(2).strip()
    lower = spec.lower()
    if lower in _NUMERIC_TYPES:
        return Attribute(name, "numeric")
    if spec.startswith("{"):
        if not spec.endswith("}"):
            raise DataFormatError(f"{path}:{lineno}: nominal attribute {name!r} has no closing '}}'")
        values = [v.strip() for v in _fields(spec[1:-1], f"{path}:{lineno}")]
        twice = next((v for i, v in enumerate(values) if v in values[:i]), None)
        if twice is not None:
            raise DataFormatError(f"{path}:{lineno}: nominal attribute {name!r} lists the value {twice!r} twice")
        return Attribute(name, "nominal", values)
    if lower.startswith("hierarchical"):
        entries = spec.split(None, 1)[1] if len(spec.split(None, 1)) == 2 else ""
        return Attribute(name, "hierarchical", [e for e in entries.strip().split(",") if e], lineno)
    raise DataFormatError(f"{path}:{lineno}: attribute {name!r} has unsupported type {spec[:30]!r}")


def _fields(text: str, where: str) -> list[str]:
    """Comma-separated values, quoted as in ARFF (``'a b'``)."""
    try:
        return next(csv.reader([text], quotechar="'", skipinitialspace=True))
    except csv.Error as error:  # a value beyond csv's length limit
        raise DataFormatError(f"{where}: cannot split the line into values ({error})") from None


def _check_attributes(attributes: list[Attribute], path: Path, lineno: int) -> None:
    classes = [a.name for a in attributes if a.kind == "hierarchical"]
    if len(classes) != 1:
        raise DataFormatError(
            f"{path}:{lineno}: expected exactly one 'hierarchical' class attribute, found {len(classes)}"
        )


def hierarchy_from_header(
    header: ArffHeader,
    convention: Convention = "auto",
    not_evaluated: list[str] | None = None,
) -> Hierarchy:
    """Build the hierarchy the header declares.

    ``auto`` reads the spec as ``parent/child`` edges when every entry has exactly one ``/``
    and some entry starts at ``root/`` (the GO files), and as label paths otherwise.
    """
    spec = header.hierarchy_spec
    where = f"{header.path}:{header.attributes[header.class_index].line}"
    if convention == "auto":
        is_edges = all(e.count("/") == 1 for e in spec) and any(e.startswith("root/") for e in spec)
        convention = "edges" if is_edges else "paths"
    try:
        if convention == "edges":
            return Hierarchy.from_edges(spec, not_evaluated=not_evaluated)
        return Hierarchy.from_paths(spec)  # a path listed twice (some public files do) is one node
    except HierarchyError as error:
        raise HierarchyError(f"{where}: {error}") from None


def read_arff(
    path: str | Path,
    hierarchy: Hierarchy | None = None,
    convention: Convention = "auto",
    not_evaluated: list[str] | None = None,
    name: str = "",
    split: str = "",
) -> HMCDataset:
    """Read one HMC ARFF file into an :class:`HMCDataset` (X with NaN for ``?``, Y closed upwards).

    Nominal attributes are one-hot encoded (a missing nominal value gives NaN in all its
    columns, so mean imputation fills it with the value frequencies). ``hierarchy`` defaults to
    the one the header declares.
    """
    header = read_arff_header(path)
    if hierarchy is None:
        hierarchy = hierarchy_from_header(header, convention, not_evaluated)
    with open(header.path, encoding="utf-8", errors="replace") as handle:  # decoded as the header was
        lines = handle.readlines()[header.data_line :]
    try:
        X, Y = _parse_data(lines, header, hierarchy)
    except (ValueError, pd.errors.ParserError, HierarchyError):
        _raise_first_bad_line(header, hierarchy, lines)
        raise  # unreachable: _raise_first_bad_line always raises
    if len(X) == 0:
        raise DataFormatError(f"{header.path}:{header.data_line}: no data rows after @DATA")
    if np.isinf(X).any():  # 'inf' is allowed (a missing value); '1e400', which overflowed to it, is not
        _refuse_overflow(header, lines)
    return HMCDataset(X, Y, hierarchy, header.feature_names, name or header.relation, split)


def _parse_data(lines: list[str], header: ArffHeader, hierarchy: Hierarchy) -> tuple[np.ndarray, np.ndarray]:
    """The fast path: (X, Y) from the data lines, or a terse error that the slow path explains."""
    frame = _read_data_section(lines, header)
    return _feature_matrix(frame, header), _label_matrix(frame.iloc[:, header.class_index], hierarchy, header)


def _read_data_section(lines: list[str], header: ArffHeader) -> pd.DataFrame:
    n = len(header.attributes)
    rows = [line for line in lines if _is_row(line)]
    if rows and len(_fields(rows[0].split("%")[0], str(header.path))) > n:  # pandas would drop the values beyond n
        raise ValueError("the first row has more values than there are attributes")
    dtypes = {i: (np.float64 if a.kind == "numeric" else str) for i, a in enumerate(header.attributes)}
    frame = pd.read_csv(
        io.StringIO("".join(lines)),
        header=None,
        names=list(range(n)),
        dtype=dtypes,
        na_values=["?"],
        keep_default_na=False,
        comment="%",
        quotechar="'",
        skipinitialspace=True,
        skip_blank_lines=True,
        engine="c",
        index_col=False,
        on_bad_lines="error",
    )
    if len(frame) != len(rows):
        raise ValueError("a quoted value spans lines")  # pandas joined lines into one row
    return frame


def _is_row(line: str) -> bool:
    """A data line pandas reads as a row: not blank, not a comment."""
    return bool(line.strip(" \t\n")) and not line.startswith("%")


def _feature_matrix(frame: pd.DataFrame, header: ArffHeader) -> np.ndarray:
    blocks: list[np.ndarray] = []
    for i, attribute in enumerate(header.attributes):
        column = frame.iloc[:, i]
        if attribute.kind == "numeric":
            values = column.to_numpy(dtype=np.float64)
            with np.errstate(invalid="ignore"):
                if np.any(np.isfinite(values) & (np.abs(values) > _FLOAT32_MAX)):
                    raise ValueError(f"value beyond float32 in attribute {attribute.name!r}")
            blocks.append(values.astype(np.float32)[:, None])
        elif attribute.kind == "nominal":
            codes = pd.Index(attribute.values).get_indexer(column.str.strip().str.strip("'"))
            observed = column.notna().to_numpy()
            if np.any((codes < 0) & observed):
                raise ValueError(f"unknown nominal value in attribute {attribute.name!r}")
            onehot = np.zeros((len(frame), len(attribute.values)), dtype=np.float32)
            onehot[np.flatnonzero(codes >= 0), codes[codes >= 0]] = 1.0
            onehot[~observed] = np.nan
            blocks.append(onehot)
    return np.concatenate(blocks, axis=1) if blocks else np.zeros((len(frame), 0), np.float32)


def _label_matrix(labels: pd.Series, hierarchy: Hierarchy, header: ArffHeader) -> np.ndarray:
    labels = labels.fillna("").str.strip()
    if (labels == "").any():
        raise ValueError("a row has no class value (too few columns?)")
    exploded = labels.str.split("@").explode()
    exploded = exploded[exploded.str.len() > 0]
    codes = pd.Index(hierarchy.nodes).get_indexer(exploded.str.strip())
    if np.any(codes < 0):
        raise HierarchyError("label outside the hierarchy")
    direct = np.zeros((len(labels), len(hierarchy)), dtype=bool)
    direct[exploded.index.to_numpy(), codes] = True
    return hierarchy.close(direct)


def _refuse_overflow(header: ArffHeader, lines: list[str]) -> None:
    """DataFormatError at the first numeric cell written as a number too large for a float ('1e400')."""
    numeric = [i for i, attribute in enumerate(header.attributes) if attribute.kind == "numeric"]
    for lineno, raw in enumerate(lines, start=header.data_line + 1):
        if not _is_row(raw):
            continue
        fields = _fields(raw.rstrip("\n").split("%")[0], f"{header.path}:{lineno}")
        for i in numeric:
            value = fields[i].strip()
            if value != "?" and value.lower().lstrip("+-") not in ("inf", "infinity") and np.isinf(float(value)):
                raise DataFormatError(f"{header.path}:{lineno}: column {i + 1} ({header.attributes[i].name}): "
                                      f"{value!r} is beyond float32 (largest {_FLOAT32_MAX:.3g}); rescale the "
                                      "feature, e.g. take its log")


def _raise_first_bad_line(header: ArffHeader, hierarchy: Hierarchy, lines: list[str]) -> None:
    """Slow path, errors only: walk the data lines and raise for the first one at fault."""
    n_columns = len(header.attributes)
    nodes = hierarchy.index
    for lineno, raw in enumerate(lines, start=header.data_line + 1):
        if not _is_row(raw):
            continue
        line = raw.rstrip("\n")
        where = f"{header.path}:{lineno}"
        if line.lstrip().startswith("{"):
            raise DataFormatError(f"{where}: sparse ARFF rows ({{index value, ...}}) are not supported")
        fields = _fields(line.split("%")[0], where)
        if len(fields) != n_columns:
            raise DataFormatError(f"{where}: expected {n_columns} comma-separated values, found {len(fields)}")
        for column, (attribute, cell) in enumerate(zip(header.attributes, fields), start=1):
            value = cell.strip()
            if attribute.kind == "numeric" and cell != "?":
                if not _NUMBER.fullmatch(cell):
                    raise DataFormatError(
                        f"{where}: column {column} ({attribute.name}): {cell!r} is not a number; "
                        "use ? for a missing value"
                    )
                number = float(value)
                overflowed = np.isinf(number) and value.lower().lstrip("+-") not in ("inf", "infinity")
                if (np.isfinite(number) and abs(number) > _FLOAT32_MAX) or overflowed:
                    raise DataFormatError(
                        f"{where}: column {column} ({attribute.name}): {value!r} is beyond float32 "
                        f"(largest {_FLOAT32_MAX:.3g}); rescale the feature, e.g. take its log"
                    )
            elif attribute.kind == "nominal" and value != "?" and value.strip("'") not in attribute.values:
                raise DataFormatError(
                    f"{where}: column {column} ({attribute.name}): {value!r} is not one of "
                    f"{{{','.join(attribute.values[:8])}{',...' if len(attribute.values) > 8 else ''}}}"
                )
            elif attribute.kind == "hierarchical":
                if not value:
                    raise DataFormatError(f"{where}: column {column} ({attribute.name}): no labels")
                for label in filter(None, value.split("@")):
                    if label.strip() not in nodes:
                        raise HierarchyError(f"{where}: label {label!r} is not a node of the hierarchy")
    lineno, error = _first_failing_line(lines, header, hierarchy)
    text = lines[lineno - header.data_line - 1].strip()
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if "EOF inside string" in reason:
        raise DataFormatError(f"{header.path}:{lineno}: a quote (') opened on this line is never closed")
    raise DataFormatError(f"{header.path}:{lineno}: cannot read {text[:60]!r} ({reason})")


def _first_failing_line(lines: list[str], header: ArffHeader, hierarchy: Hierarchy) -> tuple[int, Exception]:
    """Errors the line checks above miss: bisect for the shortest prefix of lines the fast path fails on."""

    def failure(k: int) -> Exception | None:
        try:
            _parse_data(lines[:k], header, hierarchy)
        except (ValueError, pd.errors.ParserError, HierarchyError) as error:
            return error
        return None

    good, bad = 0, len(lines)  # the first `good` lines read; the first `bad` lines fail
    while bad - good > 1:
        middle = (good + bad) // 2
        good, bad = (middle, bad) if failure(middle) is None else (good, middle)
    return header.data_line + bad, failure(bad) or ValueError("unreadable")


def write_arff(dataset: HMCDataset, path: str | Path, relation: str = "") -> Path:
    """Write a dataset as HMC ARFF (numeric features; tree hierarchies as paths, DAGs as edges).

    The file reads back with :func:`read_arff` into the same X (NaN as ``?``), Y and hierarchy.
    """
    from hmlearn.fileio import atomic_write

    hierarchy = dataset.hierarchy
    spec = [n for n in hierarchy.nodes if n != "root"]
    if not (hierarchy.is_tree and "root" in hierarchy.index and _paths_rebuild(spec, hierarchy)):
        spec = [f"{hierarchy.nodes[p]}/{hierarchy.nodes[c]}" for p, c in hierarchy.edges]
    names = dataset.feature_names or [f"x{i}" for i in range(dataset.n_features)]
    evaluated = hierarchy.evaluated
    lines = [f"@RELATION '{relation or dataset.name or 'hmlearn'}'", ""]
    lines += [f"@ATTRIBUTE '{name}' numeric" for name in names]
    lines += [f"@ATTRIBUTE class hierarchical {','.join(spec)}", "", "@DATA"]
    values = np.where(np.isnan(dataset.X), np.nan, dataset.X)
    for row, labels in zip(values, dataset.Y):
        cells = ["?" if np.isnan(v) else repr(float(v)) for v in row]
        positive = [hierarchy.nodes[i] for i in np.flatnonzero(labels & evaluated)]
        lines.append(",".join(cells + ["@".join(positive)]))
    path = Path(path)
    with atomic_write(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    return path


def _paths_rebuild(spec: list[str], hierarchy: Hierarchy) -> bool:
    """True when the node names are full paths, so the header can list them as paths."""
    try:
        return Hierarchy.from_paths(spec) == hierarchy
    except HierarchyError:
        return False
