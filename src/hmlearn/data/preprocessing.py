"""Mean imputation then standardisation, fitted on the training split only (METHOD.md section 10).

A plain dataclass of three arrays rather than a scikit-learn pipeline: it goes into
checkpoints as tensors and loads back without unpickling anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hmlearn.errors import HMLError


@dataclass
class Standardizer:
    """``transform(X) = (impute(X) - center) / scale``; ``impute`` fills NaN and +/-inf with ``fill``.

    ``fill``: training column means (0 for an all-missing column, so the feature count never
    changes); ``center`` / ``scale``: mean and standard deviation after imputation (scale 1
    for a constant column). All (F,) float64.
    """

    fill: np.ndarray
    center: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, X: np.ndarray) -> Standardizer:
        X = _finite_or_nan(np.asarray(X, dtype=np.float64))
        if X.ndim != 2 or len(X) == 0:
            raise HMLError(f"cannot fit preprocessing on features of shape {X.shape}: need (samples >= 1, features)")
        with np.errstate(all="ignore"):
            counts = np.sum(~np.isnan(X), axis=0)
            fill = np.where(counts > 0, np.nansum(X, axis=0) / np.maximum(counts, 1), 0.0)
        imputed = np.where(np.isnan(X), fill, X)
        with np.errstate(all="ignore"):
            center = imputed.mean(axis=0)
            scale = imputed.std(axis=0)
        overflowed = np.flatnonzero(~np.isfinite(center) | ~np.isfinite(scale))
        if len(overflowed):
            j = int(overflowed[0])
            raise HMLError(f"feature column {j + 1}: values up to {np.nanmax(np.abs(X[:, j])):g} are too large to "
                           "standardise; rescale the column, e.g. take its log")
        scale[scale < 1e-12] = 1.0
        return cls(fill, center, scale)

    @property
    def n_features(self) -> int:
        return len(self.center)

    def transform(self, X: np.ndarray, source: str = "", feature_names: Sequence[str] | None = None) -> np.ndarray:
        """(S, F) raw features -> (S, F) float32; refuses a feature-count mismatch.

        A value so far from the training mean that it overflows float32 once standardised is
        refused too (it would turn into inf and train or predict NaN); the error names the row
        and the column (by ``feature_names`` when given) and starts with ``source`` (a file).
        """
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise HMLError(f"features have shape {X.shape}, the model was fitted on {self.n_features} features")
        X = _finite_or_nan(X)
        Z = (np.where(np.isnan(X), self.fill, X) - self.center) / self.scale
        with np.errstate(over="ignore"):
            out = Z.astype(np.float32)
        if not np.isfinite(out).all():
            row, j = (int(i[0]) for i in np.nonzero(~np.isfinite(out)))
            column = repr(feature_names[j]) if feature_names is not None else str(j + 1)
            raise HMLError(
                f"{source + ': ' if source else ''}row {row + 1}, column {column}: {X[row, j]:g} overflows float32 "
                f"after standardisation (training mean {self.center[j]:.3g}, scale {self.scale[j]:.3g}); "
                "check the value, or rescale the column (e.g. take its log) and retrain"
            )
        return out

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"fill": self.fill, "center": self.center, "scale": self.scale}


def fit_transform_splits(train: np.ndarray, *others: np.ndarray) -> tuple[Standardizer, list[np.ndarray]]:
    """Fit on ``train`` only and transform it and every other split."""
    standardizer = Standardizer.fit(train)
    return standardizer, [standardizer.transform(X) for X in (train, *others)]


def _finite_or_nan(X: np.ndarray) -> np.ndarray:
    """Treat +/-inf like ``?``: imputed with the column mean."""
    return np.where(np.isinf(X), np.nan, X)
