"""Any dataset reference -> its splits and the settings to train with, in one place.

A reference is a standard dataset's name (``derisi_FUN``), an ARFF file, a CSV / Parquet table
of one's own, or an image table. ``hmlearn train``, ``train-images``, ``evaluate``, the sweep
runner and the estimator's users all come through here, so a sweep accepts every kind of
dataset that ``train`` accepts, read the same way, with the same errors.

- :func:`open_dataset`: the command line's protocol. A standard dataset trains on train + valid
  with its published settings and is tested on test; a file trains on itself, with the
  validation and test files given beside it.
- :func:`open_images`: an image table, split by its partition column or stratified.
- :func:`sweep_source`: a sweep cell's dataset: a name, a ``*train*`` file (ARFF or table) with
  its ``*test*`` (and ``*valid*``) sibling, a single table split 70 / 30 stratified, or an image
  entry. Cached per process (cells come ordered by dataset).
- :func:`evaluation_split`: one split of a dataset, read as a trained model expects it.
"""

from __future__ import annotations

import json
import re
import sys
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from hmlearn.data.dataset import HMCDataset
from hmlearn.data.table import is_table
from hmlearn.errors import HMLError
from hmlearn.hierarchy import Hierarchy

SWEEP_TEST_FRACTION = 0.3
"""A single table in a sweep (no ``*test*`` file beside it): this fraction, stratified, seed 0, is its test split."""
_CACHE_SIZE = 2
_cache: OrderedDict[str, Source] = OrderedDict()


class PixelSplit(NamedTuple):
    """One split of an image dataset as training sees it: (S, 3, size, size) uint8 pixels and labels."""

    X: Any
    Y: Any
    hierarchy: Any

    def __len__(self) -> int:
        return len(self.Y)


@dataclass
class Source:
    """A dataset reference resolved: the splits (``X``, ``Y`` each) over one hierarchy, and its settings.

    ``published``: the dataset's published hyper-parameters ({} for one's own data), the base a
    preset scales; ``n_outputs`` picks the preset's variant; ``metadata`` is stored in
    checkpoints so that evaluate / predict read the data again the same way.
    """

    name: str
    hierarchy: Hierarchy
    train: Any
    valid: Any = None
    test: Any = None
    published: dict = field(default_factory=dict)
    n_outputs: int = 0
    metadata: dict = field(default_factory=dict)
    description: str = ""


# ---------------------------------------------------------------------------------- the CLI's protocol
def open_dataset(reference: str, valid: str | None = None, test: str | None = None, data_dir: str | None = None,
                 table_options: dict | None = None) -> Source:
    """A standard dataset's name, an ARFF file or a CSV / Parquet table, with optional valid / test files.

    ``table_options``: :func:`hmlearn.data.table.read_tables` options (labels_column, hierarchy,
    id_column, strict) for tables. Every split is checked before training: not empty, the training
    feature count, and no value that overflows once standardised with the training statistics.
    """
    from hmlearn.data.registry import get_spec
    from hmlearn.data.store import load_dataset

    options = {k: v for k, v in (table_options or {}).items() if v not in (None, False)}
    published, n_outputs = {}, 0
    if is_table(reference):
        others = [p for p in (valid, test) if p]
        for path in others:
            if not is_table(path):
                raise HMLError(f"{path}: --valid and --test must be CSV or Parquet tables when {reference} is one")
        from hmlearn.data.table import read_tables

        parts = read_tables([reference, *others], **options)
        rest = iter(parts[1:])
        train, extra = parts[0], [next(rest) if p else None for p in (valid, test)]
    elif options:
        flags = ", ".join("--" + k.replace("_", "-") for k in options)
        raise HMLError(f"{flags}: only for CSV / Parquet tables; {reference} declares its labels and hierarchy itself")
    elif reference.endswith(".arff"):
        train = load_dataset(reference)
        extra = [load_dataset(p) if p else None for p in (valid, test)]
        for part in extra:
            if part is not None and part.hierarchy != train.hierarchy:
                raise HMLError(f"{part.name}: its hierarchy differs from {reference}'s")
    else:
        spec = get_spec(reference)
        train, test_split = load_dataset(spec.name, ("trainvalid", "test"), data_dir=data_dir)
        extra, (valid, test) = [None, test_split], (None, f"{spec.name} [test]")
        published, n_outputs = spec.hyperparameters(), spec.n_outputs
    check_splits(train, reference, [(part, path) for part, path in zip(extra, (valid, test)) if part is not None])
    metadata = {"dataset": reference, "feature_names": list(train.feature_names), "table": options}
    return Source(train.name or "model", train.hierarchy, train, extra[0], extra[1], published,
                  n_outputs or len(train.hierarchy), metadata, repr(train))


def check_splits(train: HMCDataset, train_path: str, others: list[tuple[HMCDataset, str]]) -> None:
    """Refuse, naming the file, an empty split, a feature-count mismatch or a value that overflows later."""
    from hmlearn.data.preprocessing import Standardizer

    for part, path in [(train, train_path), *others]:
        if len(part) == 0:
            raise HMLError(f"{path}: no samples (the data section is empty); add one row per sample")
        if part.n_features != train.n_features:
            raise HMLError(f"{path}: {part.n_features} feature columns, {train_path} has {train.n_features}")
    if others:
        standardizer = Standardizer.fit(train.X)
        for part, path in others:
            standardizer.transform(part.X, source=str(path), feature_names=part.feature_names or None)


# ---------------------------------------------------------------------------------- images
def open_images(table: str | Path, reading: dict, test_fraction: float = 0.3, valid_fraction: float = 0.0,
                split_seed: int = 0, image_size: int = 224, progress: bool = False) -> Source:
    """An image table (data/images.py) read, split and decoded to ``image_size`` pixels.

    ``reading``: :func:`hmlearn.data.images.read_image_table` options. ``metadata`` holds them
    with absolute paths, so evaluate / predict read the table again from any folder.
    """
    from hmlearn.data.images import image_splits, load_pixels, read_image_table

    data = read_image_table(table, **reading)
    parts = image_splits(data, test_fraction, valid_fraction, split_seed)
    pixels = {name: PixelSplit(load_pixels(part.paths, image_size, progress=progress), part.Y, data.hierarchy)
              for name, part in parts.items()}
    absolute = {k: str(Path(v).resolve()) if k in ("images_dir", "hierarchy") and isinstance(v, (str, Path)) else v
                for k, v in reading.items()}
    metadata = {"dataset": str(table), "image_table": absolute,
                "splits": {"test_fraction": test_fraction, "valid_fraction": valid_fraction, "seed": split_seed}}
    return Source(Path(table).stem, data.hierarchy, pixels["train"], pixels.get("valid"), pixels.get("test"),
                  {}, len(data.hierarchy), metadata, f"{len(parts['train'])} training images of {data!r}")


# ---------------------------------------------------------------------------------- sweeps
IMAGE_LOCATION = "images:"
"""Prefix of a sweep cell location that holds an image dataset entry (as JSON) rather than a name or file."""
READING = {"images": "images_dir"}
"""Image entry keys whose read_image_table argument has another name."""


def is_path(entry: str) -> bool:
    """A dataset entry that names a file (ARFF or table) rather than a registry dataset."""
    return entry.lower().endswith(".arff") or is_table(entry) or "/" in entry or "\\" in entry


def sweep_source(location: str) -> Source:
    """The train / test splits of a sweep cell's dataset (train + valid where there is a valid file)."""
    if location in _cache:
        _cache.move_to_end(location)
        return _cache[location]
    if location.startswith(IMAGE_LOCATION):
        entry = json.loads(location.removeprefix(IMAGE_LOCATION))
        reading = {READING.get(key, key): value for key, value in entry.items()
                   if key not in ("name", "table", "image_size", "test_fraction", "split_seed")}
        source = open_images(entry["table"], reading, entry.get("test_fraction", 0.3), 0.0,
                             entry.get("split_seed", 0), entry.get("image_size", 224))
        if source.test is None:
            raise HMLError(f"{entry['table']}: no test images (the split column has no 'test' rows)")
    elif is_path(location):
        source = _file_source(location)
    else:
        source = open_dataset(location)
    _cache[location] = source
    while len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    return source


def _file_source(location: str) -> Source:
    """An ARFF file or table with ``*test*`` siblings, or a single table split stratified."""
    from hmlearn.data.store import load_dataset

    if is_table(location) and not re.search(r"train", Path(location).name, flags=re.IGNORECASE):
        from hmlearn.data.splitting import stratified_split
        from hmlearn.data.table import read_table

        data = read_table(location)
        train_rows, test_rows = stratified_split(data.Y, data.hierarchy, SWEEP_TEST_FRACTION, seed=0)
        train, test = data.subset(train_rows, "train"), data.subset(test_rows, "test")
    else:
        files = split_files(location)
        if is_table(location):
            from hmlearn.data.table import read_tables

            parts = dict(zip(files, read_tables(list(files.values()))))
        else:
            parts = {split: load_dataset(path) for split, path in files.items()}
            for split, part in parts.items():
                if part.hierarchy != parts["train"].hierarchy:
                    raise HMLError(f"{files[split]}: its hierarchy differs from {files['train']}'s")
        training = [parts[s] for s in ("train", "valid") if s in parts]
        train = training[0] if len(training) == 1 else HMCDataset.concatenate(training, "trainvalid")
        test = parts["test"]
    check_splits(train, location, [(test, f"{location} [test]")])
    return Source(Path(location).stem, train.hierarchy, train, None, test, {}, len(train.hierarchy),
                  {"dataset": location}, repr(train))


def split_files(train_path: str | Path) -> dict[str, Path]:
    """The split files of a dataset given by its training file: train, test and valid if present.

    The test (valid) file's name is the training file's with its last ``train`` (or ``trainvalid``)
    replaced by ``test`` (``valid``), in the same case: ``x.train.arff`` -> ``x.test.arff``,
    ``Enron_trainvalid.arff`` -> ``Enron_test.arff``, ``D_Train.csv`` -> ``D_Test.csv``.
    """
    path = Path(train_path)
    matches = list(re.finditer(r"train(valid)?", path.name, flags=re.IGNORECASE))
    if not matches:
        raise HMLError(f"{path}: a dataset file in a sweep spec is a training file (with 'train' in its name, "
                       "a 'test' file beside it)")
    match = matches[-1]

    def sibling(word: str) -> Path:
        found = match.group(0)
        cased = word.upper() if found.isupper() else (word.capitalize() if found[0].isupper() else word)
        return path.with_name(path.name[: match.start()] + cased + path.name[match.end():])

    files = {"train": path}
    if match.group(1) is None and sibling("valid").is_file():
        files["valid"] = sibling("valid")
    files["test"] = sibling("test")
    return files


def published_settings(dataset: str) -> tuple[dict, int]:
    """(published hyper-parameters, network outputs) of a sweep dataset entry, without training.

    A registry dataset has both in the registry; a file has no published settings, and its output
    count comes from its ARFF header or its labels (0 where the file cannot be read: the cell fails then).
    """
    if is_table(dataset):
        try:
            return {}, sweep_source(dataset).n_outputs
        except (OSError, HMLError):
            return {}, 0
    if is_path(dataset):
        from hmlearn.data.arff import hierarchy_from_header, read_arff_header

        try:
            return {}, len(hierarchy_from_header(read_arff_header(dataset)))
        except (OSError, HMLError):
            return {}, 0
    from hmlearn.data.registry import get_spec

    spec = get_spec(dataset)
    return spec.hyperparameters(), spec.n_outputs


# ---------------------------------------------------------------------------------- evaluation
def evaluation_split(reference: str, model: Any, metadata: dict, split: str = "test", data_dir: str | None = None,
                     images: str | None = None, labels_column: str = "labels",
                     id_column: str | None = None, progress: bool = True) -> tuple[Any, np.ndarray, np.ndarray | None]:
    """(labelled split, features standardised for ``model``, training labels or None) of ``reference``.

    An image model reads its table as in training (options kept in ``metadata``); a table is read
    over the model's hierarchy; a standard dataset's ``split`` is scored against its training labels.
    """
    from hmlearn.data.store import load_dataset
    from hmlearn.data.table import read_table

    if model.encoder is not None:
        data, pixels, train_Y = _image_split(model, metadata, reference, images, split, progress)
        return data, model.features(pixels), train_Y
    if is_table(reference):
        table = metadata.get("table", {})
        data = read_table(reference, table.get("labels_column", labels_column), model.hierarchy,
                          id_column or table.get("id_column"), table.get("label_delimiter", ";"))
        data, train_Y = _in_training_order(data, metadata.get("feature_names"), reference), None
    elif reference.endswith(".arff"):
        data, train_Y = load_dataset(reference), None
    else:
        data = load_dataset(reference, split, data_dir=data_dir)
        train_Y = load_dataset(reference, "trainvalid", data_dir=data_dir).Y
    if data.hierarchy != model.hierarchy:
        raise HMLError(f"{reference}: its hierarchy differs from the one the model was trained on")
    if len(data) == 0:
        raise HMLError(f"{reference}: no samples (the data section is empty); add one row per sample")
    if data.n_features != model.standardizer.n_features:
        raise HMLError(f"{reference}: {data.n_features} feature columns, the model was trained on "
                       f"{model.standardizer.n_features}")
    X = model.standardizer.transform(data.X, source=reference, feature_names=data.feature_names or None)
    return data, X, train_Y


def _in_training_order(data: HMCDataset, names: list[str] | None, reference: str) -> HMCDataset:
    """``data`` with its feature columns in the order the model was trained on, matched by name."""
    if not names or data.feature_names == list(names):
        return data
    missing = [name for name in names if name not in data.feature_names]
    extra = [name for name in data.feature_names if name not in set(names)]
    if missing or extra:
        raise HMLError(f"{reference}: feature columns differ from the training table's (missing: "
                       f"{', '.join(map(repr, missing[:10])) or 'none'}; not trained on: "
                       f"{', '.join(map(repr, extra[:10])) or 'none'})")
    order = [data.feature_names.index(name) for name in names]
    return HMCDataset(data.X[:, order], data.Y, data.hierarchy, list(names), data.name, data.split)


def _image_split(model: Any, metadata: dict, table: str, images: str | None, split: str, progress: bool = True):
    """(ImageDataset, pixels, training labels or None) of ``split`` of an image table, read as in training."""
    from hmlearn.data.images import image_splits, load_pixels, read_image_table

    reading = dict(metadata.get("image_table", {}))
    if images is not None:
        reading["images_dir"] = images
    if reading.get("hierarchy") is None or not str(reading["hierarchy"]).strip():
        reading["hierarchy"] = model.hierarchy  # a label outside the model's hierarchy is an error naming its row
    data = read_image_table(table, **reading)
    splits = metadata.get("splits", {"test_fraction": 0.3, "valid_fraction": 0.0, "seed": 0})
    parts = image_splits(data, splits["test_fraction"], splits["valid_fraction"], splits["seed"])
    if split == "all":
        chosen, train_Y = data, None
    elif split in parts:
        chosen, train_Y = parts[split], parts["train"].Y
    else:
        raise HMLError(f"{table}: no {split!r} split; choose from {', '.join([*parts, 'all'])}")
    if len(chosen) == 0:
        raise HMLError(f"{table}: no images in the {split!r} split")
    return chosen, load_pixels(chosen.paths, model.config.image_size, progress=progress and sys.stderr.isatty()), train_Y
