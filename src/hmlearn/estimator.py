"""`HMCClassifier`: scikit-learn style fit / predict_proba / predict around :func:`hmlearn.train.fit`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from hmlearn.errors import HMLError
from hmlearn.hierarchy import Hierarchy
from hmlearn.train import HMCModel, TrainConfig, fit


class HMCClassifier(ClassifierMixin, BaseEstimator):
    """Coherent hierarchical multi-label classifier (C-HMCNN; ``heads > 1`` for an ensemble).

    ``node_weights``, ``focal`` and their options switch on the rare-node objective
    (METHOD.md sections 4-6); by default it is plain C-HMCNN.

    The constructor only stores parameters (the fields of :class:`hmlearn.train.TrainConfig`);
    ``fit`` validates and trains. Fitted attributes end in ``_``: ``model_``, ``hierarchy_``,
    ``n_features_in_``. Features may contain NaN (mean-imputed, then standardised, both fitted
    on the ``fit`` data). With ``encoder`` set, X is (S, 3, image_size, image_size) uint8 images
    instead, fed through that image encoder (nn/encoders.py), frozen unless ``fine_tune``.
    """

    def __init__(
        self,
        hidden_dim: int = 500,
        num_layers: int = 3,
        dropout: float = 0.7,
        activation: str = "relu",
        heads: int = 1,
        objective: str = "mcloss",
        node_weights: str | None = None,
        omega: float = 0.25,
        weight_side: str = "published",
        descendant_counts: bool = False,
        negative_weights: bool = False,
        focal: str | None = None,
        focal_k: float = 2.0,
        focal_min: float = 0.25,
        focal_gamma: float = 0.0,
        scheduler: str | None = None,
        scheduler_power: float = 2.0,
        mixed_lambda: float | None = None,
        resample: str | None = None,
        sample_weights: str | None = None,
        lr: float = 1e-4,
        weight_decay: float = 1e-5,
        batch_size: int = 4,
        epochs: int = 100,
        seed: int = 0,
        patience: int | None = None,
        mcm_method: str = "auto",
        device: str = "cpu",
        threads: int | None = None,
        encoder: str | None = None,
        encoder_weights: str | None = None,
        encoder_alpha: float = 0.0,
        fine_tune: bool = False,
        image_size: int = 224,
        encoder_lr: float | None = None,
        train_fraction: float = 1.0,
        threshold: float = 0.5,
        progress: bool = False,
    ) -> None:
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.dropout = dropout
        self.activation = activation
        self.heads = heads
        self.objective = objective
        self.node_weights = node_weights
        self.omega = omega
        self.weight_side = weight_side
        self.descendant_counts = descendant_counts
        self.negative_weights = negative_weights
        self.focal = focal
        self.focal_k = focal_k
        self.focal_min = focal_min
        self.focal_gamma = focal_gamma
        self.scheduler = scheduler
        self.scheduler_power = scheduler_power
        self.mixed_lambda = mixed_lambda
        self.resample = resample
        self.sample_weights = sample_weights
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.epochs = epochs
        self.seed = seed
        self.patience = patience
        self.mcm_method = mcm_method
        self.device = device
        self.threads = threads
        self.encoder = encoder
        self.encoder_weights = encoder_weights
        self.encoder_alpha = encoder_alpha
        self.fine_tune = fine_tune
        self.image_size = image_size
        self.encoder_lr = encoder_lr
        self.train_fraction = train_fraction
        self.threshold = threshold
        self.progress = progress

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
        config = TrainConfig().updated(**{k: v for k, v in self.get_params().items() if k in TrainConfig.__annotations__})
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
        """(S, N) bool predictions at ``threshold``; closed upwards because the probabilities are coherent."""
        return self.predict_proba(X) >= self.threshold

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
