"""Reading features to predict on, and writing predictions as CSV or Parquet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from hmlearn.data.preprocessing import Standardizer
from hmlearn.errors import DataFormatError, HMLError
from hmlearn.fileio import atomic_write
from hmlearn.hierarchy import Hierarchy


def read_features(
    path: str | Path, n_features: int, standardizer: Standardizer | None = None
) -> tuple[np.ndarray, list[str]]:
    """(X, ids) from an HMC ARFF file, or a CSV / Parquet table of feature columns.

    A table may have one identifier column (``id``, ``sample``, ``gene``, ... or a first
    column holding text); every other column must be numeric, in the training order. Tables
    are parsed by :mod:`hmlearn.data.table`, so they fail with the same errors as training tables.
    With the model's ``standardizer``, a value that would overflow once standardised is refused
    here, naming its row and column.
    """
    path = Path(path)
    if not path.is_file():
        raise HMLError(f"{path}: no such file")
    if path.suffix == ".arff":
        from hmlearn.data.arff import read_arff

        data = read_arff(path)
        X, ids, names = data.X, [str(i) for i in range(len(data))], data.feature_names
    else:
        from hmlearn.data.table import feature_matrix, read_frame, split_columns

        frame = read_frame(path)
        id_column, features = split_columns(frame, path)
        X, names = feature_matrix(frame, features, path), features
        ids = frame[id_column].astype(str).tolist() if id_column else [str(i) for i in range(len(frame))]
    if X.shape[1] != n_features:
        raise DataFormatError(f"{path}: {X.shape[1]} feature columns, the model was trained on {n_features}")
    if len(X) == 0:
        raise DataFormatError(f"{path}: no rows to predict")
    if standardizer is not None:
        standardizer.transform(X, source=str(path), feature_names=names or None)
    return X, ids


def write_predictions(path: str | Path, ids: list[str], proba: np.ndarray, hierarchy: Hierarchy,
                      threshold: float | np.ndarray) -> None:
    """One row per sample: its id, the predicted label paths and their probabilities.

    CSV joins the lists with ``;``; Parquet stores them as lists. Roots are left out.
    """
    path = Path(path)
    evaluated = np.flatnonzero(hierarchy.evaluated)
    names = np.array(hierarchy.nodes, dtype=object)
    cutoff = threshold if np.ndim(threshold) == 0 else np.asarray(threshold)[evaluated]  # one, or per node
    labels, probabilities = [], []
    for row in proba:
        chosen = evaluated[row[evaluated] >= cutoff]
        labels.append(names[chosen].tolist())
        probabilities.append([round(float(v), 4) for v in row[chosen]])
    frame = pd.DataFrame({"sample": ids, "labels": labels, "probabilities": probabilities})
    if path.suffix in (".parquet", ".pq"):
        with atomic_write(path) as handle:
            frame.to_parquet(handle, index=False)
    else:
        frame["labels"] = [";".join(v) for v in labels]
        frame["probabilities"] = [";".join(f"{p:.4f}" for p in v) for v in probabilities]
        with atomic_write(path, "w") as handle:
            frame.to_csv(handle, index=False)
