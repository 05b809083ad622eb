"""`HMCClassifier`: scikit-learn style fit / predict_proba / predict around :func:`hmlearn.training.fit.fit`."""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Sequence
from dataclasses import fields
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from hmlearn.errors import HMLError
from hmlearn.hierarchy import Hierarchy
from hmlearn.training.config import OPTIONS, TrainConfig, suggest
from hmlearn.training.fit import fit
from hmlearn.training.model import HMCModel


class HMCClassifier(ClassifierMixin, BaseEstimator):
    """Coherent hierarchical multi-label classifier (C-HMCNN; ``heads > 1`` for an ensemble).

    ``node_weights``, ``focal`` and their options switch on the rare-node objective
    (METHOD.md sections 4-6); by default it is plain C-HMCNN.

    The constructor only stores parameters (the fields of :class:`hmlearn.training.config.TrainConfig`);
    ``fit`` validates and trains. Fitted attributes end in ``_``: ``model_``, ``hierarchy_``,
    ``n_features_in_``. Features may contain NaN (mean-imputed, then standardised, both fitted
    on the ``fit`` data). With ``encoder`` set, X is (S, 3, image_size, image_size) uint8 images
    instead, fed through that image encoder (nn/encoders.py), frozen unless ``fine_tune``.

    The parameters are generated from TrainConfig's declarations (training/config.py), plus
    ``threshold`` (for ``predict``) and ``progress``; ``HMCClassifier(heads=4, epochs=20)``.
    """

    def __init__(self, **params: Any) -> None:
        unknown = sorted(set(params) - set(PARAMETERS))
        if unknown:
            raise TypeError(f"HMCClassifier got unknown parameter(s) {', '.join(unknown)}"
                            f"{suggest(unknown[0], PARAMETERS)}")
        for name, default in PARAMETERS.items():
            setattr(self, name, params.get(name, default))

    def fit(
        self,
        X: np.ndarray,
        Y: np.ndarray | Sequence[Iterable[str]],
        hierarchy: Hierarchy,
        X_valid: np.ndarray | None = None,
        Y_valid: np.ndarray | Sequence[Iterable[str]] | None = None,
    ) -> HMCClassifier:
        """Y: (S, N) 0/1 matrix in ``hierarchy.nodes`` order, or one iterable of node names per sample.

        Label sets are closed upwards (ancestors of a positive node become positive).
        """
        X = _features(X, self.encoder)
        Y = _labels(Y, hierarchy, len(X))
        valid = (None, None)
        if X_valid is not None and Y_valid is not None:
            valid = (_features(X_valid, self.encoder), _labels(Y_valid, hierarchy, len(X_valid)))
        config = TrainConfig(**{name: getattr(self, name) for name in OPTIONS})
        self.model_: HMCModel = fit(X, Y, hierarchy, config, *valid, progress=self.progress)
        self.hierarchy_ = hierarchy
        self.n_features_in_ = self.model_.standardizer.n_features
        self.classes_ = np.array(hierarchy.nodes)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """(S, N) coherent probabilities (no child above its parent)."""
        self._check_fitted()
        return self.model_.predict_proba(_features(X, self.model_.config.encoder))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """(S, N) bool predictions at ``threshold`` (None: the tuned thresholds, else 0.5); closed upwards."""
        self._check_fitted()
        cutoff = self.model_.decision_thresholds if self.threshold is None else self.threshold
        return self.predict_proba(X) >= cutoff

    def score(self, X: np.ndarray, Y: np.ndarray, sample_weight=None) -> float:
        """AU(PRC) on (X, Y), the C-HMCNN headline metric."""
        from hmlearn.metrics import au_prc

        return au_prc(_labels(Y, self.hierarchy_, len(X)), self.predict_proba(X), self.hierarchy_)

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise HMLError("this HMCClassifier is not fitted yet; call fit(X, Y, hierarchy) first")


def _features(X, encoder: str | None = None) -> np.ndarray:
    if encoder is not None:  # images, kept as they are (uint8): fit and the encoder check them
        return np.asarray(X)
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise HMLError(f"X must be 2-D (samples, features); got shape {X.shape}")
    return X


def _labels(Y, hierarchy: Hierarchy, n_samples: int) -> np.ndarray:
    if isinstance(Y, np.ndarray) and Y.ndim == 2:
        if Y.shape != (n_samples, len(hierarchy)):
            raise HMLError(f"Y has shape {Y.shape}, expected ({n_samples}, {len(hierarchy)}) for this hierarchy")
        return hierarchy.close(Y)
    Y = hierarchy.encode(list(Y))
    if len(Y) != n_samples:
        raise HMLError(f"Y has {len(Y)} label sets but X has {n_samples} rows")
    return Y


PARAMETERS: dict[str, Any] = {**{f.name: f.default for f in fields(TrainConfig)}, "threshold": None, "progress": False}
"""The estimator's parameters and defaults: every TrainConfig option, then threshold and progress."""
HMCClassifier.__init__.__signature__ = inspect.Signature(  # type: ignore[attr-defined]  # for get_params / clone
    [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    + [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default) for name, default in PARAMETERS.items()]
)
