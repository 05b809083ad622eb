"""Seafloor-like synthetic images with hierarchical labels: the image path's test bed without BenthicNet.

Ten leaves under three families, 16 nodes with the root, 3 levels deep:

- ``sand``: ``flat`` (smooth beige), ``rippled/fine`` and ``rippled/coarse`` (stripes at any
  orientation, 5-7 or 2-3 cycles an image);
- ``rock``: ``boulders`` (1-3 large shaded stones) and ``cobbles`` (6-12 small ones);
- ``biota`` on a plain mud floor: ``algae`` (green wavy strands), ``sponges`` (yellow lumps),
  ``echinoderms/sea_urchins`` (dark spiny discs), ``echinoderms/sea_stars`` (orange five-armed
  stars) and ``echinoderms/brittle_stars`` (pale, thin-armed, the hardest).

Leaf frequencies are long-tailed: the leaf of rank r (``LEAVES`` order) is drawn with weight
``r ** -1.6``, each at least twice, so the two rarest have a handful of images at 600. A fifth of
the images have a second leaf: a second substrate fills a half-plane, a biota leaf's animals lie
on the substrate (sea stars on rippled sand). Then brightness, tint and pixel noise. At 32 x 32 a
small CNN learns the families in a few epochs; the rare echinoderms stay hard. Everything is drawn
from one seeded generator and vectorised per leaf: the same seed gives the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from hmlearn.data.splitting import stratified_split
from hmlearn.fileio import atomic_write
from hmlearn.hierarchy import Hierarchy

LEAVES = (  # by frequency rank, the most frequent first
    "sand/flat",
    "rock/cobbles",
    "sand/rippled/fine",
    "rock/boulders",
    "sand/rippled/coarse",
    "biota/algae",
    "biota/echinoderms/sea_urchins",
    "biota/sponges",
    "biota/echinoderms/sea_stars",
    "biota/echinoderms/brittle_stars",
)
TAIL = 1.6  # Zipf exponent of the leaf frequencies
SECOND_LEAF = 0.2  # share of images with two leaves
LAYOUTS = ("paths", "levels", "benthicnet")

_SAND = np.array([0.78, 0.70, 0.52])
_ROCK = np.array([0.46, 0.46, 0.50])
_MUD = np.array([0.42, 0.37, 0.31])
_ANIMALS = {  # leaf: (colour, objects per image (low, high), radius (low, high), shape)
    "biota/echinoderms/sea_stars": ((0.86, 0.38, 0.22), (1, 2), (0.14, 0.22), "star"),
    "biota/echinoderms/brittle_stars": ((0.64, 0.54, 0.50), (1, 2), (0.16, 0.26), "brittle"),
    "biota/echinoderms/sea_urchins": ((0.28, 0.12, 0.32), (1, 4), (0.07, 0.12), "urchin"),
    "biota/sponges": ((0.90, 0.78, 0.26), (1, 2), (0.10, 0.16), "lump"),
}


def synthetic_image_hierarchy() -> Hierarchy:
    """The 16-node tree of ``LEAVES`` (root included), nodes named by ``/`` paths."""
    return Hierarchy.from_paths(LEAVES)


def make_synthetic_images(
    n_images: int = 600, size: int = 32, seed: int = 0
) -> tuple[np.ndarray, list[list[str]]]:
    """((S, 3, size, size) uint8 RGB pixels, per image its one or two leaf paths)."""
    if n_images < 2 * len(LEAVES):
        raise ValueError(f"n_images must be at least {2 * len(LEAVES)} (every leaf at least twice), got {n_images}")
    if size < 8:
        raise ValueError(f"size must be at least 8 pixels, got {size}")
    rng = np.random.default_rng(seed)
    weights = np.arange(1, len(LEAVES) + 1, dtype=float) ** -TAIL
    weights /= weights.sum()
    first = rng.permutation(np.repeat(np.arange(len(LEAVES)), _quotas(n_images, weights)))
    second = np.full(n_images, -1)
    two = np.flatnonzero(rng.random(n_images) < SECOND_LEAF)
    for i in two:
        others = weights.copy()
        others[first[i]] = 0.0
        second[i] = rng.choice(len(LEAVES), p=others / others.sum())
    layers = _layers(first, second)
    grid = np.stack(np.meshgrid(np.arange(size), np.arange(size), indexing="xy")).astype(np.float32) / size
    canvas = np.empty((n_images, size, size, 3), dtype=np.float32)
    biota = [leaf for leaf in range(len(LEAVES)) if LEAVES[leaf].startswith("biota/")]
    substrates = [leaf for leaf in range(len(LEAVES)) if leaf not in biota]
    for leaf in substrates:  # first substrate: the whole floor
        rows = np.flatnonzero(layers["ground"] == leaf)
        canvas[rows] = _substrate(LEAVES[leaf], rng, len(rows), grid)
    mud = np.flatnonzero(layers["ground"] == -1)
    canvas[mud] = _plain(_MUD, rng, len(mud), grid)
    for leaf in substrates:  # second substrate: a half-plane of it
        rows = np.flatnonzero(layers["half"] == leaf)
        half = _half_plane(rng, len(rows), grid)[..., None]
        canvas[rows] = np.where(half, _substrate(LEAVES[leaf], rng, len(rows), grid), canvas[rows])
    for layer in ("biota", "biota2"):  # animals and plants on top
        for leaf in biota:
            rows = np.flatnonzero(layers[layer] == leaf)
            colour, alpha = _biota(LEAVES[leaf], rng, len(rows), grid)
            canvas[rows] = canvas[rows] * (1 - alpha[..., None]) + colour * alpha[..., None]
    gain = rng.uniform(0.8, 1.15, size=(n_images, 1, 1, 1)) * (1 + rng.uniform(-0.05, 0.05, size=(n_images, 1, 1, 3)))
    canvas = canvas * gain + rng.normal(0.0, 0.05, size=canvas.shape)
    pixels = np.rint(np.clip(canvas, 0.0, 1.0) * 255).astype(np.uint8).transpose(0, 3, 1, 2)
    labels = [[LEAVES[a]] + ([LEAVES[b]] if b >= 0 else []) for a, b in zip(first, second)]
    return np.ascontiguousarray(pixels), labels


def write_synthetic_images(
    out_dir: str | Path, n_images: int = 600, size: int = 32, seed: int = 0, layout: str = "paths"
) -> Path:
    """PNG images under ``out_dir/images/``, ``out_dir/labels.csv`` and ``out_dir/hierarchy.txt``; the table's path.

    Layouts, as :func:`hmlearn.data.images.read_image_table` reads them:
    - ``paths``: columns ``image`` (``images/img_0000.png``), ``labels`` (``sand/flat;biota/sponges``),
      ``partition``; ``hierarchy.txt`` one ``/`` path per node.
    - ``levels``: ``image, level1, level2, level3, partition``, an image with two leaves on two rows.
    - ``benthicnet``: ``dataset, site, image, partition, catami_biota`` (node indices from 0 into
      ``hierarchy.txt``, every node of the paths, e.g. ``[0, 1, 3]``), ``biota_mask`` (empty,
      ignored), the image at ``images/dataset/site/image``: read it with ``images_dir=out_dir/images``;
      ``hierarchy.txt`` holds ``' > '`` paths.
    ``partition`` is a seeded stratified 70/30 train/test split.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
    out_dir = Path(out_dir)
    pixels, labels = make_synthetic_images(n_images, size, seed)
    hierarchy = synthetic_image_hierarchy()
    train, _ = stratified_split(hierarchy.encode(labels), hierarchy, 0.3, seed)
    partition = np.full(n_images, "test", dtype=object)
    partition[train] = "train"
    names = [f"img_{i:04d}.png" for i in range(n_images)]
    if layout == "benthicnet":
        sites = [f"site_{i % 4}" for i in range(n_images)]
        folders = [Path("synthetic") / site for site in sites]
    else:
        folders = [Path() for _ in range(n_images)]
    for folder in set(folders):
        (out_dir / "images" / folder).mkdir(parents=True, exist_ok=True)
    for image, folder, name in zip(pixels, folders, names):
        Image.fromarray(image.transpose(1, 2, 0)).save(out_dir / "images" / folder / name, format="PNG")
    nodes = [n for n in hierarchy.nodes if n not in hierarchy.not_evaluated]
    separator = " > " if layout == "benthicnet" else "/"
    with atomic_write(out_dir / "hierarchy.txt", "w") as handle:
        handle.write("".join(node.replace("/", separator) + "\n" for node in nodes))
    if layout == "paths":
        frame = pd.DataFrame({"image": [f"images/{n}" for n in names], "labels": [";".join(s) for s in labels],
                              "partition": partition})
    elif layout == "levels":
        rows = [(f"images/{name}", *(leaf.split("/") + ["", ""])[:3], part)
                for name, leaves, part in zip(names, labels, partition) for leaf in leaves]
        frame = pd.DataFrame(rows, columns=["image", "level1", "level2", "level3", "partition"])
    else:
        position = {node: i for i, node in enumerate(nodes)}
        cells = [sorted({position[a] for leaf in leaves for a in _prefixes(leaf)}) for leaves in labels]
        frame = pd.DataFrame({"dataset": "synthetic", "site": sites, "image": names, "partition": partition,
                              "catami_biota": [str(c) for c in cells], "biota_mask": "[]"})
    table = out_dir / "labels.csv"
    with atomic_write(table, "w") as handle:
        frame.to_csv(handle, index=False, lineterminator="\n")
    return table


def _prefixes(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[: d + 1]) for d in range(len(parts))]


def _quotas(n: int, weights: np.ndarray) -> np.ndarray:
    """Images per leaf: ``n * weights`` rounded to sum to n (largest remainder), at least 2 each."""
    exact = n * weights
    counts = np.maximum(np.floor(exact).astype(np.int64), 2)
    order = np.argsort(-(exact - np.floor(exact)), kind="stable")
    for i in order[: max(n - int(counts.sum()), 0)]:
        counts[i] += 1
    counts[0] -= int(counts.sum()) - n  # the minimums of 2 come out of the most frequent leaf
    return counts


def _layers(first: np.ndarray, second: np.ndarray) -> dict[str, np.ndarray]:
    """Per image, which leaf (index, or -1) paints each layer: ground, half-plane, biota, second biota."""
    is_biota = np.array([leaf.startswith("biota/") for leaf in LEAVES] + [False])  # index -1: none
    layers = {name: np.full(len(first), -1) for name in ("ground", "half", "biota", "biota2")}
    for i, (a, b) in enumerate(zip(first, second)):
        substrates = [leaf for leaf in (a, b) if leaf >= 0 and not is_biota[leaf]]
        biota = [leaf for leaf in (a, b) if leaf >= 0 and is_biota[leaf]]
        for name, leaf in zip(("ground", "half"), substrates):
            layers[name][i] = leaf
        for name, leaf in zip(("biota", "biota2"), biota):
            layers[name][i] = leaf
    return layers


def _waves(rng: np.random.Generator, k: int, grid: np.ndarray, cycles: tuple[float, float], terms: int) -> np.ndarray:
    """(k, H, W) sum of ``terms`` random plane waves of ``cycles`` per image, amplitude about 1."""
    x, y = grid
    angle = rng.uniform(0, np.pi, size=(k, terms, 1, 1))
    frequency = rng.uniform(*cycles, size=(k, terms, 1, 1)) * 2 * np.pi
    phase = rng.uniform(0, 2 * np.pi, size=(k, terms, 1, 1))
    return np.sin(frequency * (x * np.cos(angle) + y * np.sin(angle)) + phase).sum(axis=1) / np.sqrt(terms)


def _plain(colour: np.ndarray, rng: np.random.Generator, k: int, grid: np.ndarray) -> np.ndarray:
    """(k, H, W, 3) a jittered colour with gentle low-frequency shading."""
    base = colour + rng.uniform(-0.04, 0.04, size=(k, 1, 1, 3))
    return base * (1 + 0.08 * _waves(rng, k, grid, (0.5, 1.5), 3))[..., None]


def _substrate(leaf: str, rng: np.random.Generator, k: int, grid: np.ndarray) -> np.ndarray:
    """(k, H, W, 3) floor texture of a sand or rock leaf."""
    if leaf == "sand/flat":
        return _plain(_SAND, rng, k, grid)
    if leaf.startswith("sand/rippled/"):
        cycles = (5.0, 7.0) if leaf.endswith("fine") else (2.0, 3.2)
        amplitude = rng.uniform(0.10, 0.20, size=(k, 1, 1, 1))
        return _plain(_SAND, rng, k, grid) * (1 + amplitude * _waves(rng, k, grid, cycles, 1)[..., None])
    count, radius = ((1, 3), (0.18, 0.30)) if leaf == "rock/boulders" else ((6, 12), (0.06, 0.11))
    floor = _plain(_ROCK, rng, k, grid)
    shade = np.ones(floor.shape[:3], dtype=np.float32)
    for present, cx, cy, r in _objects(rng, k, count, radius):  # a lit dome with a shadow rim
        d2 = ((grid[0] - cx) ** 2 + (grid[1] - cy) ** 2) / r**2
        light = rng.uniform(0.15, 0.45, size=(k, 1, 1))
        stone = np.where(d2 < 1, 1 + light * np.sqrt(np.maximum(1 - d2, 0)), 0.7)
        shade = np.where(present & (d2 < 1.4), stone, shade)
    return floor * shade[..., None]


def _objects(rng: np.random.Generator, k: int, count: tuple[int, int], radius: tuple[float, float]):
    """Per object slot: (present, centre x, centre y, radius), each (k, 1, 1), ``count`` objects an image."""
    n = rng.integers(count[0], count[1] + 1, size=k)
    for slot in range(count[1]):
        centre = rng.uniform(0.1, 0.9, size=(2, k, 1, 1))
        yield (n > slot)[:, None, None], centre[0], centre[1], rng.uniform(*radius, size=(k, 1, 1))


def _half_plane(rng: np.random.Generator, k: int, grid: np.ndarray) -> np.ndarray:
    """(k, H, W) bool: one side of a random line through the middle of the image."""
    angle = rng.uniform(0, 2 * np.pi, size=(k, 1, 1))
    centre = rng.uniform(0.35, 0.65, size=(2, k, 1, 1))
    return (grid[0] - centre[0]) * np.cos(angle) + (grid[1] - centre[1]) * np.sin(angle) > 0


def _biota(leaf: str, rng: np.random.Generator, k: int, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """((k, H, W, 3) colour, (k, H, W) coverage in [0, 1]) of a biota leaf's animals or plants."""
    if leaf == "biota/algae":
        x, y = grid
        angle = rng.uniform(0, np.pi, size=(k, 1, 1))
        along, across = x * np.cos(angle) + y * np.sin(angle), -x * np.sin(angle) + y * np.cos(angle)
        frequency = rng.uniform(3.0, 5.0, size=(k, 1, 1)) * 2 * np.pi
        wave = np.sin(frequency * along + 1.5 * np.sin(2 * np.pi * 1.5 * across) + rng.uniform(0, 6.3, size=(k, 1, 1)))
        alpha = 0.85 * (wave > 0.55)
        colour = np.array([0.25, 0.55, 0.25]) + rng.uniform(-0.05, 0.05, size=(k, 1, 1, 3))
        return np.broadcast_to(colour, (k, *x.shape, 3)), alpha.astype(np.float32)
    colour, count, radius, shape = _ANIMALS[leaf]
    alpha = np.zeros((k, *grid.shape[1:]), dtype=np.float32)
    for present, cx, cy, r in _objects(rng, k, count, radius):
        dx, dy = grid[0] - cx, grid[1] - cy
        distance, theta = np.hypot(dx, dy) / r, np.arctan2(dy, dx)
        turn = rng.uniform(0, 2 * np.pi, size=(k, 1, 1))
        arms = (1 + np.cos(5 * (theta - turn))) / 2
        if shape == "star":
            inside = distance < 0.3 + 0.7 * arms**2.5
        elif shape == "brittle":
            inside = distance < 0.18 + 0.82 * arms**10
        elif shape == "urchin":
            inside = distance < 0.85 + 0.15 * np.cos(14 * theta + turn)
        else:  # lump: a disc and two offset discs
            offset = rng.uniform(-0.6, 0.6, size=(2, 2, k, 1, 1)) * r
            inside = distance < 1
            for ox, oy in offset:
                inside |= np.hypot(dx - ox, dy - oy) < 0.7 * r
        alpha = np.where(present & inside, 1.0, alpha)
    shade = np.array(colour) + rng.uniform(-0.05, 0.05, size=(k, 1, 1, 3))
    return np.broadcast_to(shade, (k, *grid.shape[1:], 3)), alpha
