from __future__ import annotations

import io
from collections import OrderedDict

import numpy as np
import pytest
import torch

from hmlearn.errors import HMLError
from hmlearn.nn import encoders
from hmlearn.nn.encoders import ENCODERS, build_encoder, check_images, encode_images, save_encoder_weights


def _pixels(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 3, size, size), dtype=np.uint8)


def _state(encoder) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in encoder.backbone.state_dict().items()}


def _trained_small_cnn(seed: int = 7):
    """A small-cnn whose BatchNorm statistics moved off their initial 0 / 1, like pretrained weights."""
    encoder = build_encoder("small-cnn", 32, seed=seed).train()
    with torch.no_grad():
        encoder(torch.from_numpy(_pixels(8, seed=seed)))
    return encoder.eval()


@pytest.mark.parametrize("name", list(ENCODERS))
def test_every_encoder_builds_at_32_px_and_returns_its_features(name):
    encoder = build_encoder(name, 32)
    images = _pixels(2)
    features = encode_images(encoder, images)
    assert features.shape == (2, encoder.out_features) and features.dtype == np.float32
    assert np.isfinite(features).all()
    with torch.no_grad():  # raw pixels as uint8 or float 0-255: the encoder normalises them itself
        as_float = encoder(torch.from_numpy(images.astype(np.float32))).numpy()
    np.testing.assert_allclose(features, as_float, rtol=1e-5, atol=1e-5)


def test_small_cnn_is_small():
    encoder = build_encoder("small-cnn", 32)
    assert 50_000 <= sum(p.numel() for p in encoder.parameters()) <= 200_000 and encoder.out_features == 128


def test_building_is_seeded_and_leaves_the_global_generator_alone():
    before = torch.get_rng_state()
    a, b, c = (build_encoder("small-cnn", 32, seed=s) for s in (0, 0, 1))
    assert torch.equal(torch.get_rng_state(), before)
    assert all(torch.equal(x, y) for x, y in zip(_state(a).values(), _state(b).values()))
    assert not torch.equal(a.backbone.features[0].weight, c.backbone.features[0].weight)


def test_weights_round_trip_through_a_file(tmp_path):
    source = _trained_small_cnn()
    path = save_encoder_weights(source, tmp_path / "small.pth")
    loaded = build_encoder("small-cnn", 32, weights=path, seed=3)  # the seed does not matter at alpha 0
    assert all(torch.equal(v, _state(loaded)[k]) for k, v in _state(source).items())
    assert np.array_equal(encode_images(source, _pixels(4)), encode_images(loaded, _pixels(4)))
    assert [p.name for p in tmp_path.iterdir()] == ["small.pth"]


def test_torchvision_state_dict_with_classifier_and_module_prefix_loads(tmp_path):
    import torchvision

    torch.manual_seed(5)
    reference = torchvision.models.resnet18(weights=None)  # what resnet18-*.pth holds, fc included
    state = OrderedDict((f"module.{k}", v) for k, v in reference.state_dict().items())
    assert "module.fc.weight" in state
    torch.save(state, tmp_path / "resnet18-f37072fd.pth")
    encoder = build_encoder("resnet18", 32, weights=tmp_path / "resnet18-f37072fd.pth")
    assert torch.equal(encoder.backbone.conv1.weight, reference.conv1.weight)
    assert torch.equal(encoder.backbone.layer4[1].bn2.running_var, reference.layer4[1].bn2.running_var)
    assert isinstance(encoder.backbone.fc, torch.nn.Identity)


def test_vit_position_embeddings_saved_at_224_are_interpolated(tmp_path, monkeypatch):
    from torchvision.models.vision_transformer import VisionTransformer

    def tiny_vit(image_size: int):  # vit_b_16's loading path on a ViT small enough for a test
        model = VisionTransformer(image_size, 16, num_layers=1, num_heads=2, hidden_dim=32, mlp_dim=64)
        model.heads = torch.nn.Identity()
        return model, 32

    monkeypatch.setitem(ENCODERS, "vit_b_16", (tiny_vit, "heads."))
    torch.manual_seed(0)
    at_224 = VisionTransformer(224, 16, num_layers=1, num_heads=2, hidden_dim=32, mlp_dim=64)
    torch.save(at_224.state_dict(), tmp_path / "vit_b_16-c867db91.pth")
    encoder = build_encoder("vit_b_16", 32, weights=tmp_path / "vit_b_16-c867db91.pth")
    assert encoder.backbone.encoder.pos_embedding.shape == (1, 5, 32)  # 2 x 2 patches + the class token
    assert torch.equal(encoder.backbone.encoder.pos_embedding[:, 0], at_224.encoder.pos_embedding[:, 0])
    assert torch.equal(encoder.backbone.conv_proj.weight, at_224.conv_proj.weight)
    assert encode_images(encoder, _pixels(2)).shape == (2, 32)


class Exploit:
    def __reduce__(self):
        return (print, ("code ran",))


def test_bad_weights_files_are_refused_with_the_reason(tmp_path):
    good = _state(_trained_small_cnn())
    cases = {"missing.pth": None, "garbage.pth": b"\x00not a torch file", "list.pth": [1, 2, 3],
             "code.pth": {"features.0.weight": Exploit()}}
    for name, content in cases.items():
        if isinstance(content, bytes):
            (tmp_path / name).write_bytes(content)
        elif content is not None:
            buffer = io.BytesIO()
            torch.save(content, buffer)
            (tmp_path / name).write_bytes(buffer.getvalue())
    expected = {"missing.pth": "no such encoder weights file", "garbage.pth": "not a readable state dict",
                "list.pth": "not a state dict", "code.pth": "not a readable state dict"}
    without = {k: v for k, v in good.items() if k != "features.1.running_var"}
    torch.save(without, tmp_path / "short.pth")
    expected["short.pth"] = r"not small-cnn weights: missing keys features.1.running_var \(1\)$"
    torch.save({**good, "extra.weight": torch.zeros(1)}, tmp_path / "extra.pth")
    expected["extra.pth"] = r"not small-cnn weights: unexpected keys extra.weight \(1\)$"
    torch.save({**good, "features.0.weight": torch.zeros(32, 3, 5, 5)}, tmp_path / "shape.pth")
    expected["shape.pth"] = r"features.0.weight has shape \(32, 3, 5, 5\), small-cnn at 32 px needs \(32, 3, 3, 3\)"
    for name, message in expected.items():
        with pytest.raises(HMLError, match=message) as error:
            build_encoder("small-cnn", 32, weights=tmp_path / name)
        assert str(error.value).startswith(str(tmp_path / name)) and "\n" not in str(error.value)


def test_weights_of_another_architecture_list_the_first_keys(tmp_path):
    torch.save(_state(build_encoder("resnet18", 32)), tmp_path / "resnet18.pth")
    with pytest.raises(HMLError, match=r"not small-cnn weights: missing keys features.0.weight, .*, \.\.\. \(\d+\); "
                                       r"unexpected keys conv1.weight, bn1.weight, bn1.bias, bn1.running_mean, \.\.\."):
        build_encoder("small-cnn", 32, weights=tmp_path / "resnet18.pth")


def test_alpha_interpolates_every_float_tensor_towards_the_seeded_random_init(tmp_path):
    pretrained = _state(_trained_small_cnn())
    path = save_encoder_weights(_trained_small_cnn(), tmp_path / "pretrained.pth")
    random = _state(build_encoder("small-cnn", 32, seed=3))
    at = {alpha: _state(build_encoder("small-cnn", 32, weights=path, alpha=alpha, seed=3)) for alpha in (0.0, 0.5, 1.0)}
    assert not torch.equal(pretrained["features.1.running_mean"], random["features.1.running_mean"])
    for key, value in pretrained.items():
        assert torch.equal(at[0.0][key], value)
        if value.is_floating_point():  # parameters and BatchNorm running statistics
            assert torch.equal(at[1.0][key], random[key]), key
            assert torch.equal(at[0.5][key], 0.5 * value + 0.5 * random[key]), key
        else:  # num_batches_tracked: a counter, kept
            assert torch.equal(at[1.0][key], value) and torch.equal(at[0.5][key], value)
    other_seed = _state(build_encoder("small-cnn", 32, weights=path, alpha=1.0, seed=4))
    assert not torch.equal(other_seed["features.0.weight"], random["features.0.weight"])


def test_bad_encoder_settings_are_refused(tmp_path):
    path = save_encoder_weights(build_encoder("small-cnn", 32), tmp_path / "w.pth")
    with pytest.raises(HMLError, match=r"alpha must be in \[0, 1\]"):
        build_encoder("small-cnn", 32, weights=path, alpha=1.5)
    with pytest.raises(HMLError, match="give a weights file, or use alpha 0"):
        build_encoder("small-cnn", 32, alpha=0.5)
    with pytest.raises(HMLError, match="unknown encoder 'resnet51'; choose from small-cnn, resnet18"):
        build_encoder("resnet51", 32)
    with pytest.raises(HMLError, match="image_size must be a multiple of 16, got 40"):
        build_encoder("vit_b_16", 40)


def test_images_of_the_wrong_shape_are_refused():
    for images, message in [(np.zeros((2, 32, 32), np.uint8), "must be \\(samples, 3, height, width\\)"),
                            (np.zeros((2, 1, 32, 32), np.uint8), "must be \\(samples, 3, height, width\\)"),
                            (np.zeros((2, 3, 64, 64), np.uint8), "are 64 x 64 pixels but the encoder takes 32 x 32"),
                            (np.zeros((2, 3, 32, 32), np.int64), "must be uint8")]:
        with pytest.raises(HMLError, match=message):
            check_images(images, 32)
    assert encoders.encode_images(build_encoder("small-cnn", 32), _pixels(0)).shape == (0, 128)
