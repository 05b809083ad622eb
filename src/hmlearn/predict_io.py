"""Reading features to predict on, and writing predictions as CSV or Parquet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from hmlearn.data.preprocessing import Standardizer
from hmlearn.errors import DataFormatError, HMLError
from hmlearn.fileio import atomic_write
from hmlearn.hierarchy import Hierarchy


class SampleIds(list):
    """The ids of the rows to predict; ``column``: the id column they came from (None: row numbers)."""

    column: str | None = None


def read_features(
    path: str | Path, n_features: int, standardizer: Standardizer | None = None,
    feature_names: list[str] | None = None, labels_column: str = "labels", id_column: str | None = None,
    ignore_extra: bool = False,
) -> tuple[np.ndarray, SampleIds]:
    """(X, ids) from an HMC ARFF file, or a CSV / Parquet table of feature columns.

    With the model's ``feature_names`` the columns are matched **by name** (any order): a missing
    one is named in the error, an unknown one refused unless ``ignore_extra``; the training
    table's ``labels_column`` is ignored, so the table ``train`` took predicts as it is. Without
    names (older checkpoints) columns are taken in the training order. A table may have one id
    column (``id_column``, else ``id``, ``sample``, ``gene``, ... or a first column holding text).
    With the model's ``standardizer``, a value that would overflow once standardised is refused
    here, naming its row and column.
    """
    path = Path(path)
    if not path.is_file():
        raise HMLError(f"{path}: no such file")
    if path.suffix == ".arff":
        from hmlearn.data.arff import read_arff

        data = read_arff(path)
        ids, names, X = SampleIds(str(i) for i in range(len(data))), list(data.feature_names), data.X
        if feature_names and names and names != list(feature_names):
            X = _by_name(pd.DataFrame(data.X, columns=names), names, feature_names, path, ignore_extra)
    else:
        from hmlearn.data.table import feature_matrix, read_frame, split_columns

        frame = read_frame(path, text_columns=[labels_column, *([id_column] if id_column else [])])
        found_id, names = split_columns(frame, path, exclude=[labels_column], id_column=id_column)
        if feature_names:
            _by_name(frame, names, feature_names, path, ignore_extra)
            names = list(feature_names)
        X = feature_matrix(frame, names, path)
        ids = SampleIds(frame[found_id].astype(str).tolist() if found_id else [str(i) for i in range(len(frame))])
        ids.column = found_id
    if X.shape[1] != n_features:
        raise DataFormatError(f"{path}: {X.shape[1]} feature columns, the model was trained on {n_features}")
    if len(X) == 0:
        raise DataFormatError(f"{path}: no rows to predict")
    if standardizer is not None:
        standardizer.transform(X, source=str(path), feature_names=names or None)
    return X, ids


def _by_name(frame: pd.DataFrame, found: list[str], wanted: list[str], path: Path, ignore_extra: bool) -> np.ndarray:
    """The ``wanted`` columns of ``frame`` in the model's order; an error names missing and unknown ones."""
    missing = [name for name in wanted if name not in found]
    if missing:
        raise DataFormatError(f"{path}: missing feature column(s) {', '.join(map(repr, missing[:10]))}"
                              f"{' and more' if len(missing) > 10 else ''}; the model was trained on them")
    extra = [name for name in found if name not in set(wanted)]
    if extra and not ignore_extra:
        raise DataFormatError(f"{path}: column(s) {', '.join(map(repr, extra[:10]))} the model was not trained on; "
                              "remove them, name the id column (--id-column), or pass --ignore-extra")
    return frame[list(wanted)].to_numpy(dtype=np.float32)


OUTPUT_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".json": "jsonl"}
"""Prediction file suffix -> format; ``-`` is CSV on standard output."""


def output_format(path: str | Path) -> str:
    """The format of a prediction file from its suffix; HMLError for one we do not write."""
    if str(path) == "-":
        return "csv"
    suffix = Path(path).suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        raise HMLError(f"{path}: unknown prediction file type {suffix or '(no suffix)'!r}; use .csv, .parquet or "
                       ".jsonl (JSON lines), or - for CSV on standard output")
    return OUTPUT_FORMATS[suffix]


def write_predictions(path: str | Path, ids: list[str], proba: np.ndarray, hierarchy: Hierarchy,
                      threshold: float | np.ndarray, id_name: str = "sample", wide: bool = False) -> None:
    """One row per sample: its id (column ``id_name``), the predicted label paths and their probabilities.

    CSV joins the lists with ``;``; Parquet and JSON lines store them as lists. ``wide`` adds one
    probability column per node. Roots are left out. ``path`` ``-`` writes CSV to standard output.
    """
    import sys

    kind = output_format(path)
    evaluated = np.flatnonzero(hierarchy.evaluated)
    names = np.array(hierarchy.nodes, dtype=object)
    cutoff = threshold if np.ndim(threshold) == 0 else np.asarray(threshold)[evaluated]  # one, or per node
    labels, probabilities = [], []
    for row in proba:
        chosen = evaluated[row[evaluated] >= cutoff]
        labels.append(names[chosen].tolist())
        probabilities.append([round(float(v), 4) for v in row[chosen]])
    frame = pd.DataFrame({id_name: ids, "labels": labels, "probabilities": probabilities})
    if wide:
        frame = pd.concat([frame, pd.DataFrame(np.round(proba[:, evaluated], 4), columns=names[evaluated])], axis=1)
    if kind == "csv":
        frame["labels"] = [";".join(v) for v in labels]
        frame["probabilities"] = [";".join(f"{p:.4f}" for p in v) for v in probabilities]
    if str(path) == "-":
        frame.to_csv(sys.stdout, index=False)
        return
    with atomic_write(Path(path), "wb" if kind == "parquet" else "w") as handle:
        if kind == "parquet":
            frame.to_parquet(handle, index=False)
        elif kind == "jsonl":
            frame.to_json(handle, orient="records", lines=True)
        else:
            frame.to_csv(handle, index=False)
