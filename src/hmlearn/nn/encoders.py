"""Image encoders: (B, 3, H, W) raw pixels -> (B, D) features for the H heads (METHOD.md section 11).

``build_encoder`` makes one of ``ENCODERS``: ``"small-cnn"`` (a tiny conv net of our own, for tests
and CPU studies at 32 x 32), or a torchvision backbone (``"resnet18"``, ``"resnet50"``,
``"vit_b_16"``) with its classifier replaced by ``nn.Identity``. Nothing is ever downloaded:
pretrained weights come from a local file, either a torchvision state dict (``resnet50-*.pth``,
``vit_b_16-*.pth``; ``module.`` prefixes and classifier keys are ignored) or one written by
``save_encoder_weights`` (the same format). ViT position embeddings saved at another image size are
interpolated with torchvision's ``interpolate_embeddings``.

The suboptimal encoder of the paper's stress test, ``theta = (1 - alpha) * theta_pretrained +
alpha * theta_random``, interpolates every floating tensor of the state dict, parameters and
buffers alike: BatchNorm running means and variances belong to the weights they normalise, so
keeping the pretrained statistics over interpolated weights would describe activations that no
longer occur (alpha = 1 must be exactly the random network, statistics included). Integer buffers
(BatchNorm's batch counters) keep the pretrained values.

Encoders normalise with the ImageNet mean and standard deviation inside ``forward``, so callers
pass pixels as they are: uint8 (or float) values in 0-255.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from hmlearn.errors import HMLError
from hmlearn.fileio import atomic_write

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class SmallCNN(nn.Module):
    """Four conv-bn-relu blocks (32, 64, 96, 128 channels; the last three stride 2) and global
    average pooling: (B, 3, H, W) -> (B, 128), 185k parameters; encodes ~5,000 images/s at 32 px on 2 CPU cores."""

    def __init__(self, channels: tuple[int, ...] = (32, 64, 96, 128)) -> None:
        super().__init__()
        blocks, previous = [], 3
        for i, width in enumerate(channels):
            blocks += [nn.Conv2d(previous, width, 3, stride=1 if i == 0 else 2, padding=1, bias=False),
                       nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            previous = width
        self.features = nn.Sequential(*blocks)
        self.out_features = previous

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x).mean(dim=(2, 3))


def _small_cnn(image_size: int) -> tuple[nn.Module, int]:
    model = SmallCNN()
    return model, model.out_features


def _resnet(constructor: Callable) -> Callable[[int], tuple[nn.Module, int]]:
    def build(image_size: int) -> tuple[nn.Module, int]:
        model = constructor(weights=None)
        width = model.fc.in_features
        model.fc = nn.Identity()
        return model, width

    return build


def _vit_b_16(image_size: int) -> tuple[nn.Module, int]:
    from torchvision.models import vit_b_16

    if image_size % 16:
        raise HMLError(f"vit_b_16 cuts images into 16 x 16 patches: image_size must be a multiple of 16, got {image_size}")
    model = vit_b_16(weights=None, image_size=image_size)
    model.heads = nn.Identity()
    return model, model.hidden_dim


def _torchvision(name: str) -> Callable:
    def constructor(**kwargs):
        import torchvision.models

        return getattr(torchvision.models, name)(**kwargs)

    return constructor


# name -> (builder: image_size -> (backbone, feature width), prefix of the classifier keys to ignore)
ENCODERS: dict[str, tuple[Callable[[int], tuple[nn.Module, int]], str | None]] = {
    "small-cnn": (_small_cnn, None),
    "resnet18": (_resnet(_torchvision("resnet18")), "fc."),
    "resnet50": (_resnet(_torchvision("resnet50")), "fc."),
    "vit_b_16": (_vit_b_16, "heads."),
}


class ImageEncoder(nn.Module):
    """(B, 3, H, W) pixels in 0-255 (uint8 or float) -> (B, out_features) float32 features.

    ``backbone`` is the network without its classifier; ``backbone.state_dict()`` is in
    torchvision's key format (what weights files hold). The normalisation constants are not saved.
    """

    def __init__(self, name: str, backbone: nn.Module, out_features: int, image_size: int) -> None:
        super().__init__()
        self.name, self.backbone, self.out_features, self.image_size = name, backbone, out_features, image_size
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255, persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255, persistent=False)

    def forward(self, images: Tensor) -> Tensor:
        return self.backbone((images.float() - self.mean) / self.std)


def build_encoder(name: str, image_size: int, weights: str | Path | None = None, alpha: float = 0.0,
                  seed: int = 0) -> ImageEncoder:
    """The encoder ``name`` for ``image_size`` x ``image_size`` images, in eval mode.

    ``weights``: a local state-dict file (torchvision's, or :func:`save_encoder_weights`'); None:
    the random initialisation drawn with ``seed``. ``alpha`` in [0, 1] moves the loaded weights
    towards that random initialisation (0: the weights as loaded, 1: exactly the random network).
    Building never touches torch's global random generator.
    """
    if name not in ENCODERS:
        raise HMLError(f"unknown encoder {name!r}; choose from {', '.join(ENCODERS)}")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise HMLError(f"image_size must be a positive integer, got {image_size!r}")
    if not 0.0 <= alpha <= 1.0:
        raise HMLError(f"encoder alpha must be in [0, 1] (0: the loaded weights, 1: random), got {alpha}")
    if weights is None and alpha > 0:
        raise HMLError("encoder alpha moves loaded weights towards a random initialisation: give a weights file, "
                       "or use alpha 0 (a random encoder)")
    encoder = _random_encoder(name, image_size, seed)
    if weights is None:
        return encoder
    pretrained = _read_weights(Path(weights), name, image_size, encoder)
    if alpha > 0:  # encoder holds the random initialisation drawn with seed
        random = encoder.backbone.state_dict()
        pretrained = OrderedDict(
            (key, (1 - alpha) * value + alpha * random[key] if value.is_floating_point() else value)
            for key, value in pretrained.items()
        )
    encoder.backbone.load_state_dict(pretrained)
    return encoder


def restore_encoder(name: str, image_size: int, state: dict, seed: int = 0) -> ImageEncoder:
    """An encoder saved inside a checkpoint or training state: the architecture rebuilt, ``state`` loaded
    (what ``ImageEncoder.state_dict()`` gave), so no weights file is needed."""
    encoder = build_encoder(name, image_size, seed=seed)
    encoder.load_state_dict(state)
    return encoder


def save_encoder_weights(encoder: ImageEncoder, path: str | Path) -> Path:
    """Write the encoder's state dict (torchvision key format) to ``path`` atomically; returns the path."""
    path = Path(path)
    state = OrderedDict((k, v.detach().cpu()) for k, v in encoder.backbone.state_dict().items())
    with atomic_write(path) as handle:
        torch.save(state, handle)
    return path


def check_images(images: np.ndarray, image_size: int, what: str = "images") -> None:
    """Refuse anything but (S, 3, image_size, image_size) pixel arrays, with the reason."""
    shape = getattr(images, "shape", None)
    if shape is None or len(shape) != 4 or shape[1] != 3:
        raise HMLError(f"{what} must be (samples, 3, height, width) RGB pixel arrays, got shape {shape}")
    if shape[2:] != (image_size, image_size):
        raise HMLError(f"{what} are {shape[2]} x {shape[3]} pixels but the encoder takes {image_size} x {image_size} "
                       "(image_size): resize them when loading, or set image_size")
    if not (images.dtype == np.uint8 or np.issubdtype(images.dtype, np.floating)):
        raise HMLError(f"{what} must be uint8 (or float) pixels in 0-255, got dtype {images.dtype}")


@torch.no_grad()
def encode_images(encoder: ImageEncoder, images: np.ndarray, batch_size: int = 64, progress: bool = False,
                  desc: str = "encode", batch_statistics: bool = False) -> np.ndarray:
    """(S, 3, H, W) pixels -> (S, D) float32 features, in consecutive batches of ``batch_size``.

    In eval mode (BatchNorm running statistics); with ``batch_statistics`` as a training forward
    pass sees them instead: BatchNorm normalises with each batch's own statistics (a copy of the
    encoder runs in train mode, so its running statistics and torch's generator stay untouched).
    """
    check_images(images, encoder.image_size)
    device = next(encoder.parameters()).device
    was_training = encoder.training
    model = copy.deepcopy(encoder).train() if batch_statistics else encoder.eval()
    out = np.empty((len(images), encoder.out_features), dtype=np.float32)
    starts = range(0, len(images), batch_size)
    with torch.random.fork_rng(devices=[]):
        for start in tqdm(starts, desc=desc, unit="batch", disable=not progress, leave=False):
            batch = torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size])).to(device)
            out[start : start + len(batch)] = model(batch).float().cpu().numpy()
    encoder.train(was_training)
    return out


def _random_encoder(name: str, image_size: int, seed: int) -> ImageEncoder:
    """The architecture with its random initialisation drawn from ``seed`` (global generator untouched)."""
    builder, _ = ENCODERS[name]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        backbone, width = builder(image_size)
    return ImageEncoder(name, backbone, width, image_size).eval()


def _read_weights(path: Path, name: str, image_size: int, encoder: ImageEncoder) -> OrderedDict:
    """The state dict in ``path`` checked against ``encoder``: keys and shapes match, or a one-line HMLError."""
    if not path.is_file():
        raise HMLError(f"{path}: no such encoder weights file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 -- corrupt, truncated, or pickled code that weights_only refuses
        raise HMLError(f"{path}: not a readable state dict (corrupt, or not written by torch.save): "
                       f"{type(error).__name__}") from None
    if isinstance(state, dict) and len(state) == 1 and next(iter(state)) in ("state_dict", "model"):
        state = next(iter(state.values()))  # the common {"state_dict": ...} wrapping
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise HMLError(f"{path}: not a state dict (a mapping of parameter names to tensors)")
    _, classifier = ENCODERS[name]
    state = OrderedDict((k.removeprefix("module."), v) for k, v in state.items())  # saved from DataParallel
    state = OrderedDict((k, v) for k, v in state.items() if classifier is None or not k.startswith(classifier))
    expected = encoder.backbone.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = [f"{label} keys {', '.join(keys[:4])}{', ...' if len(keys) > 4 else ''} ({len(keys)})"
                 for label, keys in (("missing", missing), ("unexpected", unexpected)) if keys]
        raise HMLError(f"{path}: not {name} weights: {'; '.join(parts)}")
    if name == "vit_b_16" and state["encoder.pos_embedding"].shape != expected["encoder.pos_embedding"].shape:
        from torchvision.models.vision_transformer import interpolate_embeddings

        try:
            state = interpolate_embeddings(image_size, 16, state)
        except ValueError as error:
            raise HMLError(f"{path}: cannot interpolate the ViT position embeddings to {image_size} px: {error}") from None
    for key, value in state.items():
        if value.shape != expected[key].shape:
            raise HMLError(f"{path}: {key} has shape {tuple(value.shape)}, {name} at {image_size} px needs "
                           f"{tuple(expected[key].shape)}")
    return state
