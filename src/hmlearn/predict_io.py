"""Reading features to predict on, and writing predictions as CSV or Parquet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from hmlearn.errors import DataFormatError, HMLError
from hmlearn.fileio import atomic_write
from hmlearn.hierarchy import Hierarchy

ID_COLUMNS = ("id", "sample", "sample_id", "gene", "name")


def read_features(path: str | Path, n_features: int) -> tuple[np.ndarray, list[str]]:
    """(X, ids) from an HMC ARFF file, or a CSV / Parquet table of feature columns.

    A table may have one identifier column (``id``, ``sample``, ``gene``, ... or any
    non-numeric column); every other column must be numeric, in the training order.
    """
    path = Path(path)
    if not path.is_file():
        raise HMLError(f"{path}: no such file")
    if path.suffix == ".arff":
        from hmlearn.data.arff import read_arff

        data = read_arff(path)
        X, ids = data.X, [str(i) for i in range(len(data))]
    else:
        frame = pd.read_parquet(path) if path.suffix in (".parquet", ".pq") else pd.read_csv(path)
        id_columns = [c for c in frame.columns if str(c).lower() in ID_COLUMNS or not pd.api.types.is_numeric_dtype(frame[c])]
        if len(id_columns) > 1:
            raise DataFormatError(f"{path}: non-numeric columns {', '.join(map(str, id_columns))}; only one identifier column is allowed")
        ids = frame[id_columns[0]].astype(str).tolist() if id_columns else [str(i) for i in range(len(frame))]
        X = frame.drop(columns=id_columns).to_numpy(dtype=np.float32)
    if X.shape[1] != n_features:
        raise DataFormatError(f"{path}: {X.shape[1]} feature columns, the model was trained on {n_features}")
    if len(X) == 0:
        raise DataFormatError(f"{path}: no rows to predict")
    return X, ids


def write_predictions(path: str | Path, ids: list[str], proba: np.ndarray, hierarchy: Hierarchy, threshold: float) -> None:
    """One row per sample: its id, the predicted label paths and their probabilities.

    CSV joins the lists with ``;``; Parquet stores them as lists. Roots are left out.
    """
    path = Path(path)
    evaluated = np.flatnonzero(hierarchy.evaluated)
    names = np.array(hierarchy.nodes, dtype=object)
    labels, probabilities = [], []
    for row in proba:
        chosen = evaluated[row[evaluated] >= threshold]
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
