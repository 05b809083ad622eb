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


@dataclass
class Attribute:
    name: str
    kind: Literal["numeric", "nominal", "hierarchical"]
    values: list[str] = field(default_factory=list)  # nominal values or the hierarchy spec entries


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
        values = next(csv.reader([spec[1:-1]], quotechar="'", skipinitialspace=True), [])
        return Attribute(name, "nominal", [v.strip() for v in values])
    if lower.startswith("hierarchical"):
        entries = spec.split(None, 1)[1] if len(spec.split(None, 1)) == 2 else ""
        return Attribute(name, "hierarchical", [e for e in entries.strip().split(",") if e])
    raise DataFormatError(f"{path}:{lineno}: attribute {name!r} has unsupported type {spec[:30]!r}")


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
    if convention == "auto":
        is_edges = all(e.count("/") == 1 for e in spec) and any(e.startswith("root/") for e in spec)
        convention = "edges" if is_edges else "paths"
    try:
        if convention == "edges":
            return Hierarchy.from_edges(spec, not_evaluated=not_evaluated)
        return Hierarchy.from_paths(spec, strict=True)
    except HierarchyError as error:
        raise HierarchyError(f"{header.path}: {error}") from None


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
    try:
        frame = _read_data_section(header)
        X = _feature_matrix(frame, header)
        Y = _label_matrix(frame.iloc[:, header.class_index], hierarchy, header)
    except (ValueError, pd.errors.ParserError, HierarchyError) as error:
        _raise_first_bad_line(header, hierarchy, error)
        raise  # unreachable: _raise_first_bad_line always raises
    return HMCDataset(X, Y, hierarchy, header.feature_names, name or header.relation, split)


def _read_data_section(header: ArffHeader) -> pd.DataFrame:
    dtypes = {
        i: (np.float64 if a.kind == "numeric" else str) for i, a in enumerate(header.attributes)
    }
    frame = pd.read_csv(
        header.path,
        skiprows=header.data_line,
        header=None,
        names=list(range(len(header.attributes))),
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
    if frame.shape[1] != len(header.attributes):
        raise ValueError("wrong number of columns")
    return frame


def _feature_matrix(frame: pd.DataFrame, header: ArffHeader) -> np.ndarray:
    blocks: list[np.ndarray] = []
    for i, attribute in enumerate(header.attributes):
        column = frame.iloc[:, i]
        if attribute.kind == "numeric":
            blocks.append(column.to_numpy(dtype=np.float32)[:, None])
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


def _raise_first_bad_line(header: ArffHeader, hierarchy: Hierarchy, cause: Exception) -> None:
    """Slow path, errors only: walk the data lines and raise for the first one at fault."""
    n_columns = len(header.attributes)
    nodes = hierarchy.index
    with open(header.path, encoding="utf-8", errors="replace") as handle:
        for lineno, raw in enumerate(handle, start=1):
            if lineno <= header.data_line:
                continue
            line = raw.strip()
            if not line or line.startswith("%"):
                continue
            where = f"{header.path}:{lineno}"
            if line.startswith("{"):
                raise DataFormatError(f"{where}: sparse ARFF rows ({{index value, ...}}) are not supported")
            fields = next(csv.reader(io.StringIO(line.split("%")[0]), quotechar="'", skipinitialspace=True))
            if len(fields) != n_columns:
                raise DataFormatError(f"{where}: expected {n_columns} comma-separated values, found {len(fields)}")
            for column, (attribute, value) in enumerate(zip(header.attributes, fields), start=1):
                value = value.strip()
                if attribute.kind == "numeric" and value != "?":
                    try:
                        float(value)
                    except ValueError:
                        raise DataFormatError(
                            f"{where}: column {column} ({attribute.name}): {value!r} is not a number"
                        ) from None
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
    raise DataFormatError(f"{header.path}: could not parse the data section ({cause})")


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
