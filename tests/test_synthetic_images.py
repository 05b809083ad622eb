from __future__ import annotations

import time
from collections import Counter

import numpy as np
import pytest

from hmlearn.data.images import image_splits, load_pixels, read_image_table
from hmlearn.data.synthetic_images import (
    LEAVES,
    make_synthetic_images,
    synthetic_image_hierarchy,
    write_synthetic_images,
)


@pytest.fixture(scope="module")
def generated():
    start = time.perf_counter()
    pixels, labels = make_synthetic_images(600, 32, seed=0)
    return pixels, labels, time.perf_counter() - start


def test_images_are_uint8_rgb_long_tailed_and_partly_multi_label(generated):
    pixels, labels, seconds = generated
    assert pixels.shape == (600, 3, 32, 32) and pixels.dtype == np.uint8 and seconds < 3.0
    h = synthetic_image_hierarchy()
    assert len(h) == 16 and h.max_depth == 3 and len(h.leaves) == len(LEAVES)
    counts = Counter(leaf for leaves in labels for leaf in leaves)
    assert set(counts) == set(LEAVES)
    assert min(counts.values()) < max(counts.values()) / 5  # long tail
    assert sorted(counts.values())[1] <= 15  # two leaves with only a handful of images
    two = sum(len(leaves) == 2 for leaves in labels)
    assert 0.12 * 600 < two < 0.28 * 600 and all(len(set(leaves)) == len(leaves) for leaves in labels)
    assert pixels.std() > 20 and len(np.unique(pixels.reshape(600, -1), axis=0)) == 600  # texture and noise


def test_leaves_differ_in_their_pixels(generated):
    """Families are told apart by simple statistics; sub-patterns need more than colour."""
    pixels, labels, _ = generated
    alone = {leaf: pixels[[i for i, s in enumerate(labels) if s == [leaf]]].astype(float) for leaf in LEAVES}
    mean = {leaf: p.mean(axis=(0, 2, 3)) for leaf, p in alone.items()}
    assert mean["biota/algae"][1] > mean["biota/algae"][0]  # green
    assert mean["sand/flat"].sum() > mean["rock/cobbles"].sum() + 60  # sand is lighter than rock
    def steepness(p):  # mean step between neighbours after a 2 x 2 blur that calms the pixel noise
        b = (p[..., 1:, 1:] + p[..., :-1, 1:] + p[..., 1:, :-1] + p[..., :-1, :-1]) / 4
        return np.abs(np.diff(b, axis=3)).mean() + np.abs(np.diff(b, axis=2)).mean()

    # higher frequency, steeper steps (1.44 to 1.60 over seeds 0-4)
    assert steepness(alone["sand/rippled/fine"]) > 1.3 * steepness(alone["sand/rippled/coarse"])


def test_same_seed_same_bytes_other_seed_other_images(tmp_path):
    first = write_synthetic_images(tmp_path / "a", n_images=60, seed=5)
    again = write_synthetic_images(tmp_path / "b", n_images=60, seed=5)
    other = write_synthetic_images(tmp_path / "c", n_images=60, seed=6)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) == 62
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert first.read_bytes() == again.read_bytes() and first.read_bytes() != other.read_bytes()
    assert (tmp_path / "a/images/img_0000.png").read_bytes() != (tmp_path / "c/images/img_0000.png").read_bytes()
    pixels, _ = make_synthetic_images(60, 32, seed=5)
    np.testing.assert_array_equal(make_synthetic_images(60, 32, seed=5)[0], pixels)


@pytest.mark.parametrize("layout", ["paths", "levels", "benthicnet"])
def test_each_layout_reads_back_what_was_generated(tmp_path, layout):
    table = write_synthetic_images(tmp_path, n_images=200, size=24, seed=1, layout=layout)
    if layout == "benthicnet":
        data = read_image_table(table, tmp_path / "images", hierarchy=tmp_path / "hierarchy.txt")
    else:
        data = read_image_table(table)
    pixels, labels = make_synthetic_images(200, 24, seed=1)
    h, expected = data.hierarchy, synthetic_image_hierarchy()
    as_paths = [node.replace(h.separator, "/") for node in h.nodes]  # benthicnet names nodes 'sand > flat'
    assert sorted(as_paths) == sorted(expected.nodes) and h.max_depth == 3
    assert len(data) == 200 and h.is_closed(data.Y)
    Y = data.Y[:, [as_paths.index(node) for node in expected.nodes]]
    np.testing.assert_array_equal(Y, expected.encode(labels))
    np.testing.assert_array_equal(load_pixels(data.paths, 24), pixels)  # PNG is lossless, no resize
    splits = image_splits(data)
    assert list(splits) == ["train", "test"] and len(splits["test"]) == 60
    assert splits["train"].Y[:, h.leaves].any(axis=0).all()  # every leaf, the rarest too, is trained on
    if layout == "paths":  # the hierarchy file lists the same tree
        assert read_image_table(table, hierarchy=tmp_path / "hierarchy.txt").hierarchy == expected


def test_refuses_unknown_layouts_and_too_few_images(tmp_path):
    with pytest.raises(ValueError, match="unknown layout 'csv'"):
        write_synthetic_images(tmp_path, layout="csv")
    with pytest.raises(ValueError, match="at least 20"):
        make_synthetic_images(10)
