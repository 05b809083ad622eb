"""Mean imputation then standardisation, fitted on the training split only (METHOD.md section 10)."""

from __future__ import annotations

import numpy as np
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from hmlearn.errors import HMLError


def make_standardizer() -> Pipeline:
    """An unfitted scikit-learn pipeline: mean imputation, then zero mean / unit variance.

    All-missing columns are kept (filled with 0) so the feature count never changes between
    the split it was fitted on and the others.
    """
    return Pipeline([
        ("impute", SimpleImputer(strategy="mean", keep_empty_features=True)),
        ("scale", StandardScaler()),
    ])


def fit_transform_splits(train: np.ndarray, *others: np.ndarray) -> tuple[Pipeline, list[np.ndarray]]:
    """Fit on ``train`` only and transform it and every other split; float32 out."""
    standardizer = make_standardizer().fit(_infinite_as_missing(train))
    outputs = [transform(standardizer, X) for X in (train, *others)]
    return standardizer, outputs


def transform(standardizer: Pipeline, X: np.ndarray) -> np.ndarray:
    """Apply a fitted standardizer; refuse a feature-count mismatch and non-finite results."""
    expected = standardizer.n_features_in_
    if X.ndim != 2 or X.shape[1] != expected:
        raise HMLError(f"features have shape {X.shape}, the model was fitted on {expected} features")
    out = standardizer.transform(_infinite_as_missing(X)).astype(np.float32)
    if not np.isfinite(out).all():
        raise HMLError("features are not finite after preprocessing (check for extreme values)")
    return out


def _infinite_as_missing(X: np.ndarray) -> np.ndarray:
    """Treat +/-inf like ``?``: imputed with the column mean."""
    return np.where(np.isinf(X), np.nan, X)
