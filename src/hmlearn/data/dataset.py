"""`HMCDataset`: the plain object every loader returns (features, closed labels, hierarchy)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hmlearn.hierarchy import Hierarchy


@dataclass
class HMCDataset:
    """One split of a hierarchical multi-label dataset.

    X: (S, F) float32 features, NaN where a value is missing (impute with
       :class:`hmlearn.data.preprocessing.Standardizer`).
    Y: (S, N) bool labels, closed upwards under ``hierarchy``; column order = ``hierarchy.nodes``.
    """

    X: np.ndarray
    Y: np.ndarray
    hierarchy: Hierarchy
    feature_names: list[str] = field(default_factory=list)
    name: str = ""
    split: str = ""

    def __post_init__(self) -> None:
        if self.X.ndim != 2 or self.Y.ndim != 2 or len(self.X) != len(self.Y):
            raise ValueError(f"{self.name or 'dataset'}: X {self.X.shape} and Y {self.Y.shape} do not match")
        if self.Y.shape[1] != len(self.hierarchy):
            raise ValueError(
                f"{self.name or 'dataset'}: Y has {self.Y.shape[1]} columns, hierarchy has {len(self.hierarchy)} nodes"
            )

    @property
    def n_samples(self) -> int:
        return len(self.X)

    @property
    def n_features(self) -> int:
        return self.X.shape[1]

    def __len__(self) -> int:
        return len(self.X)

    def __repr__(self) -> str:
        label = f"{self.name}[{self.split}]" if self.split else self.name
        return f"HMCDataset({label}: {self.n_samples} samples, {self.n_features} features, {self.hierarchy!r})"

    def subset(self, rows: np.ndarray, split: str | None = None) -> HMCDataset:
        return HMCDataset(self.X[rows], self.Y[rows], self.hierarchy, self.feature_names, self.name,
                          self.split if split is None else split)

    @staticmethod
    def concatenate(parts: list[HMCDataset], split: str) -> HMCDataset:
        """Stack splits that share one hierarchy and feature layout (e.g. train + valid)."""
        first = parts[0]
        for part in parts[1:]:
            if part.hierarchy != first.hierarchy or part.feature_names != first.feature_names:
                raise ValueError(f"{first.name}: splits {first.split!r} and {part.split!r} differ in hierarchy or features")
        return HMCDataset(np.concatenate([p.X for p in parts]), np.concatenate([p.Y for p in parts]),
                          first.hierarchy, first.feature_names, first.name, split)
