"""HMCModel: a trained predictor ([image encoder] + standardizer + H heads + max constraint) and the
fine-tuning module that puts an encoder in the training graph."""

from __future__ import annotations

import numpy as np
import torch

from hmlearn.data.preprocessing import Standardizer
from hmlearn.errors import HMLError
from hmlearn.hierarchy import Hierarchy
from hmlearn.nn.constraint import MaxConstraint
from hmlearn.nn.encoders import ImageEncoder, encode_images
from hmlearn.nn.heads import HeadsMLP
from hmlearn.training.config import TrainConfig


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise HMLError(f"device {name!r} requested but CUDA is not available")
    return torch.device(name)


class HMCModel:
    """A trained predictor: [image encoder] + standardizer + heads + max constraint, over one hierarchy."""

    def __init__(self, network: HeadsMLP, hierarchy: Hierarchy, standardizer: Standardizer, config: TrainConfig,
                 encoder: ImageEncoder | None = None):
        self.network = network
        self.hierarchy = hierarchy
        self.standardizer = standardizer
        self.config = config
        self.encoder = encoder
        self.constraint = MaxConstraint(hierarchy, config.mcm_method).to(next(network.parameters()).device)
        self.history: list[dict] = []
        self.thresholds: np.ndarray | None = None  # (N,) tuned decision thresholds (training/thresholds.py), or 0.5
        self.train_positives: np.ndarray | None = None  # (N,) positives per node in the training rows: the
        # frequency buckets and recall_rare of evaluate, for any data the model was trained on

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    def features(self, X: np.ndarray, standardized: bool = False) -> np.ndarray:
        """(S, F) standardised features of (S, F) raw features, or of (S, 3, H, W) images through the encoder."""
        if np.ndim(X) == 4:
            if self.encoder is None:
                raise HMLError(f"got images of shape {X.shape}, but this model has no image encoder: it takes "
                               f"(samples, {self.standardizer.n_features}) features")
            return self.standardizer.transform(encode_images(self.encoder, X))
        return X if standardized else self.standardizer.transform(X)

    def _member_batches(self, X: np.ndarray, mc_samples: int, standardized: bool, batch_size: int):
        """(start row, (M, B, N) sigmoid outputs on the model's device) per batch of rows; see member_probabilities."""
        features = self.features(X, standardized)
        passes = max(mc_samples, 1)
        self.network.train(mc_samples > 0)
        try:
            for start in range(0, len(features), batch_size):
                x = torch.from_numpy(np.ascontiguousarray(features[start : start + batch_size])).to(self.device)
                yield start, torch.cat([torch.sigmoid(self.network(x)) for _ in range(passes)])
        finally:
            self.network.eval()

    @torch.no_grad()
    def member_probabilities(self, X: np.ndarray, mc_samples: int = 0, batch_size: int = 4096,
                             standardized: bool = False) -> np.ndarray:
        """(M, S, N) sigmoid outputs of every ensemble member, before the MCM.

        Members are the H heads, or with ``mc_samples = T > 0`` the H x T passes with dropout
        kept on (MC-dropout: a cheap ensemble from one trained network; the encoder stays in eval
        mode). ``X``: (S, F) raw features (standardised ones with ``standardized``), or for a model
        with an encoder (S, 3, H, W) images, or the encoder's (S, D) raw features.
        """
        chunks = [members.cpu() for _, members in self._member_batches(X, mc_samples, standardized, batch_size)]
        if not chunks:
            return np.empty((self.config.heads * max(mc_samples, 1), 0, len(self.hierarchy)), dtype=np.float32)
        return torch.cat(chunks, dim=1).numpy()

    @torch.no_grad()
    def predict_proba(self, X: np.ndarray, mc_samples: int = 0, standardized: bool = False,
                      batch_size: int = 4096) -> np.ndarray:
        """(S, F) raw features or (S, 3, H, W) images -> (S, N) coherent probabilities: the mean over
        members of MCM(sigmoid).

        Chunk by chunk on the model's device: the members never leave it (on CUDA no (M, S, N)
        round trip through host memory), and one head skips the mean's copy. The MCM works row
        by row, so the result is the same, bit for bit, as on the whole (M, S, N) at once.
        """
        out = np.empty((len(X), len(self.hierarchy)), dtype=np.float32)
        for start, members in self._member_batches(X, mc_samples, standardized, batch_size):
            coherent = self.constraint(members)
            mean = coherent[0] if len(coherent) == 1 else coherent.mean(dim=0)
            out[start : start + mean.shape[0]] = mean.cpu().numpy()
        return out

    @property
    def decision_thresholds(self) -> np.ndarray | float:
        """The tuned (N,) thresholds, or 0.5 for every node."""
        return 0.5 if self.thresholds is None else self.thresholds

    def predict(self, X: np.ndarray, threshold: float | np.ndarray | None = None) -> np.ndarray:
        """(S, N) bool: coherent probabilities >= threshold (default: :attr:`decision_thresholds`); closed
        upwards by construction, tuned thresholds never rising towards the root."""
        return self.predict_proba(X) >= (self.decision_thresholds if threshold is None else threshold)


class FineTuned(torch.nn.Module):
    """(B, 3, H, W) images -> encoder -> standardise -> heads -> (H, B, N) logits: what fine-tuning trains.

    The standardisation is the Standardizer's (fitted on the initial features; finite features
    need no imputation) as torch ops, so gradients reach the encoder.
    """

    def __init__(self, encoder: ImageEncoder, standardizer: Standardizer, heads: HeadsMLP) -> None:
        super().__init__()
        self.encoder, self.heads = encoder, heads
        self.register_buffer("center", torch.tensor(standardizer.center, dtype=torch.float32), persistent=False)
        self.register_buffer("scale", torch.tensor(standardizer.scale, dtype=torch.float32), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.heads((self.encoder(images) - self.center) / self.scale)


def param_groups(model: HMCModel, config: TrainConfig) -> list[dict]:
    """What Adam trains: the heads at ``lr``, and a fine-tuned encoder at ``encoder_lr`` (default ``lr``)."""
    groups = [{"params": list(model.network.parameters()), "lr": config.lr}]
    if config.fine_tune:
        groups.append({"params": list(model.encoder.parameters()), "lr": config.lr if config.encoder_lr is None else config.encoder_lr})
    return groups
