"""`HMCClassifier`: a scikit-learn estimator around :func:`hmlearn.training.fit.fit`.

It fits like any scikit-learn classifier, ``fit(X, y)``, so it works in ``Pipeline``,
``GridSearchCV``, ``cross_val_score``, ``clone`` and joblib without the hierarchy passed around:

- ``y`` as one list of label paths per sample (``[["01/01", "02"], ["01"]]``): the hierarchy
  is built from the paths, as ``hmlearn train`` does for a table (every prefix is a node);
- ``y`` as a (S, N) 0/1 matrix over the nodes of ``hierarchy=`` (a constructor parameter), or
  over its evaluated nodes (the order of ``classes_``); without a hierarchy, each column is a
  node of a flat hierarchy;
- ``y`` as one label per sample (1-D): single-label classification over those labels; then
  ``predict`` returns the most probable label of each sample, as any classifier does.

``classes_`` holds the evaluated nodes (roots excluded); ``predict`` / ``predict_proba`` give
(S, len(classes_)) 0/1 / probabilities over them, coherent (a child never above its parent);
``predict_labels`` / ``inverse_transform`` turn them back into label paths.
"""

from __future__ import annotations

import inspect
from dataclasses import fields
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from hmlearn.errors import HMLError
from hmlearn.hierarchy import Hierarchy
from hmlearn.training.config import OPTIONS, OptionError, TrainConfig, suggest


class HMCClassifier(ClassifierMixin, BaseEstimator):
    """Coherent hierarchical multi-label classifier (C-HMCNN; ``heads > 1`` for an ensemble).

    The parameters are generated from TrainConfig's declarations (training/config.py: every
    training option, e.g. ``heads``, ``epochs``, ``node_weights``, ``rare_nodes``), plus
    ``hierarchy`` (for a 0/1 ``y``), ``threshold`` (for ``predict``; None: the tuned thresholds
    of ``rare_nodes`` / ``thresholds``, else 0.5) and ``progress``. The constructor only stores
    them; ``fit`` validates them (ValueError naming the parameter) and trains. Fitted attributes:
    ``model_``, ``hierarchy_``, ``classes_``, ``n_features_in_``, ``feature_names_in_`` (from a
    DataFrame). Features may contain NaN (mean-imputed, then standardised, both fitted on the
    ``fit`` data). With ``encoder`` set, X is (S, 3, image_size, image_size) uint8 images.
    """

    def __init__(self, **params: Any) -> None:
        unknown = sorted(set(params) - set(PARAMETERS))
        if unknown:
            raise TypeError(f"HMCClassifier got unknown parameter(s) {', '.join(unknown)}"
                            f"{suggest(unknown[0], PARAMETERS)}")
        for name, default in PARAMETERS.items():
            setattr(self, name, params.get(name, default))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        tags.target_tags.multi_output = True
        tags.input_tags.allow_nan = True
        return tags

    # ------------------------------------------------------------------ fit
    def fit(self, X: Any, y: Any, X_valid: Any = None, y_valid: Any = None,
            hierarchy: Hierarchy | None = None) -> HMCClassifier:
        """Train on (X, y); ``X_valid`` / ``y_valid`` for early stopping (``patience``) and tuned thresholds.

        ``hierarchy`` here is the same as the constructor's (kept for older code).
        """
        from hmlearn.training.fit import fit

        if isinstance(X_valid, Hierarchy):  # fit(X, Y, hierarchy): the older positional form
            hierarchy, X_valid = X_valid, None
        config = self._config()
        X = self._features(X, reset=True)
        Y, self.hierarchy_, single = _targets(y, hierarchy if hierarchy is not None else self.hierarchy, len(X))
        valid = (None, None)
        if X_valid is not None and y_valid is not None:
            X_v = self._features(X_valid, reset=False)
            labels = [[str(v)] for v in np.ravel(y_valid)] if single is not None else y_valid
            valid = (X_v, _matrix_for(labels, self.hierarchy_, len(X_v)))
        self.model_ = fit(X, Y, self.hierarchy_, config, *valid, progress=self.progress)
        if self.encoder is not None:  # images: the heads' input is the encoder's features
            self.n_features_in_ = self.model_.standardizer.n_features
        evaluated = np.flatnonzero(self.hierarchy_.evaluated)
        self.single_label_ = single is not None
        if self.single_label_:  # classes_ in their own type; columns: the node of each class
            self.classes_ = single
            self._columns = np.array([self.hierarchy_.index[str(c)] for c in single])
        else:
            self.classes_ = np.array([self.hierarchy_.nodes[i] for i in evaluated], dtype=object)
            self._columns = evaluated
        return self

    def _config(self) -> TrainConfig:
        values = {name: getattr(self, name) for name in OPTIONS}
        try:
            config = TrainConfig(**values).validate()
        except OptionError as error:
            raise ValueError(f"HMCClassifier parameter {error}") from None
        if self.threshold is not None and not (isinstance(self.threshold, (int, float)) and 0 <= self.threshold <= 1):
            raise ValueError(f"HMCClassifier parameter threshold: {self.threshold!r} is not a number in [0, 1]")
        return config

    def _features(self, X: Any, reset: bool) -> np.ndarray:
        if self.encoder is not None:  # images, kept as they are (uint8): fit and the encoder check them
            return np.asarray(X)
        return validate_data(self, X, reset=reset, dtype=np.float32, ensure_all_finite="allow-nan")

    # ------------------------------------------------------------------ predict
    def predict_proba(self, X: Any) -> np.ndarray:
        """(S, len(classes_)) coherent probabilities (no child above its parent); for a model fitted on one
        label per sample, normalised over the classes (each row sums to 1), as a classifier's are."""
        check_is_fitted(self, "model_")
        proba = self.model_.predict_proba(self._features(X, reset=False))[:, self._columns]
        if self.single_label_:
            total = proba.sum(axis=1, keepdims=True)
            proba = np.divide(proba, total, out=np.full_like(proba, 1.0 / proba.shape[1]), where=total > 0)
        return proba

    def predict(self, X: Any) -> np.ndarray:
        """(S, len(classes_)) 0/1 at ``threshold`` (None: the tuned thresholds, else 0.5), closed upwards;
        for a model fitted on one label per sample, that sample's most probable label."""
        proba = self.predict_proba(X)
        if self.single_label_:
            return self.classes_[np.argmax(proba, axis=1)]
        cutoff = self.model_.decision_thresholds if self.threshold is None else self.threshold
        if np.ndim(cutoff):
            cutoff = np.asarray(cutoff)[self._columns]
        return (proba >= cutoff).astype(np.int64)

    def predict_labels(self, X: Any) -> list[list[str]]:
        """Each sample's predicted label paths (the deepest first, then their ancestors)."""
        return self.inverse_transform(self.predict(X))

    def inverse_transform(self, Y: np.ndarray) -> list[list[str]]:
        """(S, len(classes_)) 0/1 -> one list of node names per sample, deepest nodes first."""
        check_is_fitted(self, "model_")
        Y = np.asarray(Y)
        if Y.ndim != 2 or Y.shape[1] != len(self.classes_):
            raise ValueError(f"expected (samples, {len(self.classes_)}) 0/1 predictions, got shape {Y.shape}")
        depth = self.hierarchy_.depth[self._columns]
        order = np.argsort(-depth, kind="stable")
        return [[str(self.classes_[i]) for i in order if row[i]] for row in Y]

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """AU(PRC) on (X, y), the C-HMCNN headline metric (accuracy for one label per sample)."""
        check_is_fitted(self, "model_")
        if self.single_label_:
            return float(np.mean(self.predict(X) == np.ravel(y)))
        from hmlearn.metrics import au_prc

        if _is_label_sets(y):  # labels the training data never had cannot be predicted: left out, as in scoring
            known = set(self.hierarchy_.nodes)
            y = [[label for label in labels if label in known] for labels in y]
        Y = _matrix_for(y, self.hierarchy_, len(X))
        proba = self.model_.predict_proba(self._features(X, reset=False))
        return au_prc(Y, proba, self.hierarchy_)


# ---------------------------------------------------------------------- targets
_FLAT = "\x1f"  # a separator no label holds: one label per sample makes a flat hierarchy of its labels


def _is_label_sets(y: Any) -> bool:
    """One collection of label names (strings) per sample."""
    return isinstance(y, (list, tuple, np.ndarray)) and len(y) > 0 and all(
        isinstance(item, (list, tuple, set, frozenset)) and all(isinstance(v, str) for v in item) for item in y)


def _targets(y: Any, hierarchy: Hierarchy | None, n_samples: int) -> tuple[np.ndarray, Hierarchy, np.ndarray | None]:
    """(Y over every node, the hierarchy, the classes of a one-label-per-sample ``y`` or None) from any ``y``."""
    from sklearn.utils.multiclass import type_of_target

    if y is None:
        raise ValueError("HMCClassifier requires y to be passed, but the target y is None")
    if _is_label_sets(y):
        sets = [list(labels) for labels in y]
        if hierarchy is None:
            hierarchy = _from_paths([label for labels in sets for label in labels])
        return _matrix_for(sets, hierarchy, n_samples), hierarchy, None
    if hasattr(y, "toarray"):
        y = y.toarray()
    kind = type_of_target(y, input_name="y")
    if kind.startswith("continuous") or kind == "unknown":
        raise ValueError(f"Unknown label type: {kind}; y must hold labels, label paths or a 0/1 matrix")
    if kind == "multilabel-indicator":
        matrix = np.asarray(y)
        if hierarchy is None:  # a flat hierarchy: each column a node
            hierarchy = Hierarchy.from_paths([str(i) for i in range(matrix.shape[1])])
        return _matrix_for(matrix, hierarchy, n_samples), hierarchy, None
    if kind == "multiclass-multioutput":
        raise ValueError("y has several label columns that are not 0/1; give one list of label paths per sample")
    values = np.asarray(y)
    if values.ndim == 2:
        import warnings

        from sklearn.exceptions import DataConversionWarning

        warnings.warn("a column-vector y was passed when a 1d array was expected", DataConversionWarning,
                      stacklevel=3)
        values = values.ravel()
    classes = np.unique(values)
    if hierarchy is None:
        hierarchy = Hierarchy.from_paths([str(c) for c in classes], separator=_FLAT)
    return _matrix_for([[str(v)] for v in values], hierarchy, n_samples), hierarchy, classes


def _from_paths(labels: list[str]) -> Hierarchy:
    """The hierarchy of these label paths, built as a table's is (separator guessed, every prefix a node)."""
    from hmlearn.data.table import guess_separator

    distinct = list(dict.fromkeys(labels))
    if not distinct:
        raise ValueError("y holds no labels")
    return Hierarchy.from_paths(distinct, guess_separator(distinct))


def _matrix_for(y: Any, hierarchy: Hierarchy, n_samples: int) -> np.ndarray:
    """``y`` (a 0/1 matrix, or label sets) as an (S, N) 0/1 matrix over every node of ``hierarchy``, closed."""
    if hasattr(y, "to_numpy") and not isinstance(y, list):
        y = y.to_numpy()
    if isinstance(y, np.ndarray) and y.ndim == 2 and y.dtype != object:
        evaluated = np.flatnonzero(hierarchy.evaluated)
        if y.shape == (n_samples, len(hierarchy)):
            full = np.asarray(y, dtype=bool)
        elif y.shape == (n_samples, len(evaluated)):
            full = np.zeros((n_samples, len(hierarchy)), dtype=bool)
            full[:, evaluated] = np.asarray(y, dtype=bool)
        else:
            raise ValueError(f"y has shape {y.shape}, expected ({n_samples}, {len(hierarchy)}) or "
                             f"({n_samples}, {len(evaluated)}) for this hierarchy")
        return hierarchy.close(full)
    try:
        Y = hierarchy.encode([[str(label) for label in labels] for labels in y])
    except HMLError as error:
        raise ValueError(str(error)) from None
    if len(Y) != n_samples:
        raise ValueError(f"y has {len(Y)} label sets but X has {n_samples} rows")
    return Y


PARAMETERS: dict[str, Any] = {**{f.name: f.default for f in fields(TrainConfig)}, "hierarchy": None, "threshold": None,
                              "progress": False}
"""The estimator's parameters and defaults: every TrainConfig option, then hierarchy, threshold and progress."""
HMCClassifier.__init__.__signature__ = inspect.Signature(  # type: ignore[attr-defined]  # for get_params / clone
    [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    + [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default) for name, default in PARAMETERS.items()]
)

EXPECTED_FAILED_CHECKS: dict[str, str] = {
    "check_methods_sample_order_invariance": (
        "float32 matrix products in the heads round the last bit differently when the rows come in another "
        "order (BLAS blocking): probabilities differ by about 1e-8, above the check's 1e-9 tolerance"),
}
"""scikit-learn estimator checks that cannot apply to a hierarchical multi-label classifier, with why."""
