"""A sweep spec: a YAML file validated into a typed object, and its expansion into cells.

::

    name: demo                      # the runs go to runs/<name> by default
    preset: fast                    # paper | medium (default) | fast  (hmlearn.training.presets.PRESETS)
    datasets: [derisi_FUN]          # registry names; FUN / GO / others: the ones found locally;
                                    # or the path of a *train*.arff file with a *test*.arff beside it
    seeds: [0, 1, 2]
    threads_per_cell: 1             # torch threads per cell (1: identical results everywhere)
    methods:                        # label -> TrainConfig overrides
      C-HMCNN: {}
      weights:
        node_weights: class-wise
        omega: [0.25, 0.5]          # a list is a grid: "weights (omega=0.25)", "weights (omega=0.5)"

An image dataset (METHOD.md section 11) is a mapping in ``datasets``: a table of images and their
labels (data/images.py), read and split as ``hmlearn train-images`` does::

    datasets:
      - name: seafloor              # its name in tables and keys
        table: seafloor/labels.csv  # relative paths: from the spec's folder
        images: seafloor            # the folder the image cells are relative to [the table's]
        hierarchy: seafloor/hierarchy.txt
        image_size: 32
    methods:
      plain: {encoder: small-cnn}
      weights: {encoder: small-cnn, node_weights: class-wise, train_fraction: [0.1, 1.0]}

Image cells start from the paper's image settings (train.IMAGE_SETTINGS, encoder resnet50) and
ignore the preset; the methods set the encoder, its weights, alpha, fine-tuning, the training
fraction and the rest.

A cell is one (dataset, method label, seed); its key is the SHA-256 of the canonical JSON of
its dataset, method label and full resolved TrainConfig (seed included, plus the preset), which
is what the results store is keyed by (experiments/store.py). Every mistake is one
:class:`SpecError` naming the file and the key path: ``x.yaml: methods.weights.omga: unknown
option; did you mean omega?``.
"""

from __future__ import annotations

import itertools
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from hmlearn.data.sources import IMAGE_LOCATION, is_path, published_settings
from hmlearn.data.store import local_datasets
from hmlearn.errors import HMLError
from hmlearn.fileio import read_text
from hmlearn.training.config import OPTIONS, OptionError, check_option, suggest
from hmlearn.training.presets import PRESET_NAMES

FAMILIES = ("FUN", "GO", "others")
MAX_SEEDS = 10_000
"""Seeds one sweep may list: more is a typing mistake (``0-99999999``), not an experiment."""
MAX_SPEC_BYTES = 200_000
# Set by the spec itself, not per method: the seed comes from `seeds`, threads from `threads_per_cell`.
RESERVED = {"seed": "set seeds with the top-level 'seeds' key", "threads": "set 'threads_per_cell' instead"}


class SpecError(HMLError):
    """A sweep spec that cannot be used; the message names the file and the key path."""


def _fail(path: str, message: str):
    raise SpecError(f"{path}: {message}")


def _check_value(path: str, name: str, value: Any) -> Any:
    """One option value checked against its declaration (training/config.py); returns it normalised."""
    try:
        return check_option(name, value)
    except OptionError as error:
        _fail(path, str(error))


def check_methods(methods: dict) -> dict[str, dict[str, Any]]:
    """Validate ``methods`` (label -> TrainConfig overrides, lists as grids); returns them normalised."""
    normalised: dict[str, dict[str, Any]] = {}
    for label, options in methods.items():
        where = f"methods.{label}"
        if not isinstance(label, str) or not label.strip():
            _fail("methods", f"method names must be non-empty strings, got {label!r}")
        if options is None:
            options = {}
        if not isinstance(options, dict):
            _fail(where, f"expected a mapping of training options (or {{}} for the defaults), got {options!r}")
        checked: dict[str, Any] = {}
        for name, value in options.items():
            path = f"{where}.{name}"
            if name in RESERVED:
                _fail(path, f"not a method option; {RESERVED[name]}")
            if name not in OPTIONS:
                _fail(path, f"unknown option{suggest(str(name), [t for t in OPTIONS if t not in RESERVED])}")
            if isinstance(value, (list, tuple)):
                if not value:
                    _fail(path, "an empty list gives no runs; give at least one value")
                values = [_check_value(f"{path}[{i}]", name, v) for i, v in enumerate(value)]
                if len(set(map(repr, values))) != len(values):
                    _fail(path, f"the list repeats a value: {values}")
                checked[name] = values
            else:
                checked[name] = _check_value(path, name, value)
        normalised[label] = checked
    labels: dict[str, str] = {}
    for label, options in normalised.items():
        for variant in method_grid(label, options):
            if variant[0] in labels:
                _fail(f"methods.{label}", f"makes the label {variant[0]!r}, which methods.{labels[variant[0]]} makes too")
            labels[variant[0]] = label
    return normalised


def _format_value(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def method_grid(label: str, options: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(label, overrides) for every combination of the list-valued options, in the order given.

    The label gets the varied values: ``weights (omega=0.5)``, ``focal (focal=gated, heads=4)``.
    """
    varied = [name for name, value in options.items() if isinstance(value, list)]
    if not varied:
        return [(label, dict(options))]
    grid = []
    for combination in itertools.product(*(options[name] for name in varied)):
        overrides = dict(options)
        overrides.update(zip(varied, combination))
        suffix = ", ".join(f"{name}={_format_value(value)}" for name, value in zip(varied, combination))
        grid.append((f"{label} ({suffix})", overrides))
    return grid


class ImageData(BaseModel):
    """An image dataset entry of a spec: what ``hmlearn train-images`` is told on its command line."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    table: str
    images: str | None = None
    hierarchy: str | None = None
    labels_column: str | None = None
    level_columns: list[str] | None = None
    image_column: str | None = None
    split_column: str | None = None
    separator: str | None = None
    image_size: int = Field(default=224, ge=8, strict=True)
    test_fraction: float = Field(default=0.3, gt=0.0, lt=1.0)
    split_seed: int = Field(default=0, ge=0, strict=True)

    def resolved(self, folder: Path) -> ImageData:
        """This entry with its relative paths read from ``folder`` (the spec's)."""
        paths = {key: str(folder / value) for key in ("table", "images", "hierarchy")
                 if (value := getattr(self, key)) is not None}
        return self.model_copy(update=paths)


class SweepSpec(BaseModel):
    """A validated sweep spec. Build one with :func:`load_spec` (a YAML file) or :func:`parse_spec` (a dict)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    preset: Literal["paper", "medium", "fast"] = "medium"
    datasets: list[str | ImageData] = Field(min_length=1)
    seeds: list[typing.Annotated[int, Field(strict=True, ge=0)]] = Field(default=[0], min_length=1,
                                                                          max_length=MAX_SEEDS)
    methods: dict[str, Any] = Field(min_length=1)
    threads_per_cell: int = Field(default=1, ge=1, strict=True)
    _source: str = PrivateAttr(default="<spec>")

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"a seed is listed twice: {seeds}")
        return seeds

    @field_validator("methods", mode="before")
    @classmethod
    def _methods(cls, methods: Any) -> Any:
        if not isinstance(methods, dict):
            return methods  # pydantic says it is not a mapping
        return check_methods(methods)  # SpecError is not a ValueError: it passes through pydantic as it is

    @field_validator("datasets", mode="before")
    @classmethod
    def _image_entries(cls, datasets: Any) -> Any:
        """Mappings become ImageData here, so a mistake in one is named by its own key path."""
        if not isinstance(datasets, list):
            return datasets
        entries = []
        for i, entry in enumerate(datasets):
            if isinstance(entry, dict):
                fields = list(ImageData.model_fields)
                for key in entry:
                    if key not in fields:
                        _fail(f"datasets[{i}].{key}", f"unknown key{suggest(str(key), fields)}; an image dataset "
                              f"has {', '.join(fields)}")
                try:
                    entry = ImageData(**entry)
                except ValidationError as error:
                    first = error.errors()[0]
                    _fail(f"datasets[{i}].{_location(first['loc'])}", _message(first))
            entries.append(entry)
        return entries

    @field_validator("datasets")
    @classmethod
    def _datasets(cls, datasets: list[str | ImageData]) -> list[str | ImageData]:
        from hmlearn.data.registry import DATASETS, get_spec

        checked: list[str | ImageData] = []
        for i, entry in enumerate(datasets):
            if isinstance(entry, ImageData):
                checked.append(entry)
                continue
            if entry in FAMILIES or is_path(entry):
                checked.append(entry)
                continue
            try:
                checked.append(get_spec(entry).name)
            except HMLError:
                hint = suggest(entry, [*DATASETS, *FAMILIES]) or (
                    f"; use a standard dataset's name, {', '.join(FAMILIES)}, or the path of a *train*.arff file"
                )
                _fail(f"datasets[{i}]", f"unknown dataset {entry!r}{hint}")
        names = [entry.name if isinstance(entry, ImageData) else entry for entry in checked]
        if len(set(names)) != len(names):
            raise ValueError(f"a dataset is listed twice: {names}")
        return checked

    @property
    def source(self) -> str:
        """The file the spec was read from (``<spec>`` for one built from a dict)."""
        return self._source

    def with_seeds(self, seeds: list[int]) -> SweepSpec:
        """The same spec with other seeds (the CLI's ``--seeds``)."""
        spec = parse_spec({**self.model_dump(), "seeds": list(seeds)}, self._source)
        return spec

    def method_variants(self) -> list[tuple[str, dict[str, Any]]]:
        """(label, overrides) of every method after grid expansion, in spec order."""
        return [variant for label, options in self.methods.items() for variant in method_grid(label, options)]


def _location(loc: tuple) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(top level)"


_MESSAGES = {
    "missing": "required key missing",
    "too_short": "needs at least one entry",
    "too_long": "has {actual_length} entries, at most {max_length} allowed",
    "dict_type": "expected a mapping, got {input!r}",
    "list_type": "expected a list, got {input!r}",
    "string_type": "expected a string, got {input!r}",
    "int_type": "expected an integer, got {input!r}",
    "int_parsing": "expected an integer, got {input!r}",
    "int_from_float": "expected an integer, got {input!r}",
    "greater_than_equal": "must be at least {ge}, got {input!r}",
    "literal_error": "{input!r} is not one of " + ", ".join(PRESET_NAMES),
    "string_pattern_mismatch": "{input!r}: use letters, digits, '.', '_' and '-' (it names the runs folder)",
}


def _message(error: dict) -> str:
    """A pydantic error as this module words its own."""
    if error["type"] == "value_error":
        return error["msg"].removeprefix("Value error, ")
    template = _MESSAGES.get(error["type"])
    if template is None:
        return error["msg"][0].lower() + error["msg"][1:] + f", got {error['input']!r}"
    return template.format(input=error.get("input"), **error.get("ctx", {}))


def parse_spec(data: Any, source: str | Path = "<spec>") -> SweepSpec:
    """Validate a spec given as a dict; ``source`` (the file it came from) is named in errors, and
    relative dataset paths are read from its folder (from the working directory without one)."""
    source = str(source)
    if not isinstance(data, dict):
        raise SpecError(f"{source}: a sweep spec is a mapping of keys (name, datasets, methods, ...), "
                        f"got {type(data).__name__}")
    known = list(SweepSpec.model_fields)
    for key in data:
        if key not in known:
            raise SpecError(f"{source}: {key}: unknown key{suggest(str(key), known)}")
    data = dict(data)
    if isinstance(data.get("seeds"), int) and not isinstance(data.get("seeds"), bool):
        data["seeds"] = [data["seeds"]]
    if isinstance(data.get("datasets"), str):
        data["datasets"] = [data["datasets"]]
    try:
        spec = SweepSpec(**data)
    except SpecError as error:
        raise SpecError(f"{source}: {error}") from None
    except ValidationError as error:
        first = error.errors()[0]
        raise SpecError(f"{source}: {_location(first['loc'])}: {_message(first)}") from None
    spec._source = source
    return spec


def _unique_key_loader():
    """yaml.SafeLoader that refuses a mapping key given twice (YAML would keep the last silently)."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen: dict = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if not isinstance(key, (str, int, float, bool)) and key is not None:
                    raise SpecError(f"{key_node.start_mark.line + 1}: a key must be a plain name, not "
                                    f"{type(key).__name__} {str(key)[:40]!r}")
                if key in seen:
                    raise SpecError(f"{key_node.start_mark.line + 1}: the key {key!r} is given twice (also at "
                                    f"line {seen[key] + 1}); YAML would keep only the last")
                seen[key] = key_node.start_mark.line
            return super().construct_mapping(node, deep)

    return UniqueKeyLoader


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a YAML sweep spec; every error names the file and the key path."""
    import yaml

    path = Path(path)
    if path.is_file() and path.stat().st_size > MAX_SPEC_BYTES:
        raise SpecError(f"{path}: {path.stat().st_size / 1e6:.1f} MB is too large for a sweep spec (at most "
                        f"{MAX_SPEC_BYTES // 1000} kB); give seeds as a list of at most {MAX_SEEDS} and datasets by name")
    text = read_text(path, "spec file", SpecError)
    try:
        data = yaml.load(text, Loader=_unique_key_loader())
    except SpecError as error:
        raise SpecError(f"{path}:{error}") from None
    except RecursionError:
        raise SpecError(f"{path}: nested too deeply to be a sweep spec") from None
    except ValueError as error:  # e.g. an integer of thousands of digits
        raise SpecError(f"{path}: not a usable YAML value ({str(error)[:120]})") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise SpecError(f"{path}{where}: not valid YAML ({problem})") from None
    if data is None:
        raise SpecError(f"{path}: the file is empty")
    return parse_spec(data, path)


# ---------------------------------------------------------------------------------- expansion
@dataclass(frozen=True)
class Cell:
    """One run of a sweep: a dataset, a method label (with its TrainConfig overrides) and a seed.

    A dataset path stays as the spec wrote it (keys do not change when the project moves);
    ``location`` is the file to read. ``config`` is the full resolved TrainConfig as a dict plus ``preset``; ``key`` identifies
    the cell in the results store (:func:`hmlearn.experiments.store.cell_key`).
    """

    sweep: str
    dataset: str  # as the spec names it (part of the key)
    method: str
    overrides: dict[str, Any]
    seed: int
    preset: str
    threads: int
    config: dict[str, Any] = field(compare=False)
    key: str
    location: str = ""  # where to load it from: the registry name, or the ARFF path resolved from the spec's folder

    def __post_init__(self) -> None:
        if not self.location:
            object.__setattr__(self, "location", self.dataset)

    def describe(self) -> str:
        return f"{self.dataset} / {self.method} / seed {self.seed}"


def resolve_datasets(spec: SweepSpec) -> list[str | ImageData]:
    """The spec's datasets with family keywords replaced by the matching datasets found locally."""
    from hmlearn.data.store import data_roots


    resolved: list[str | ImageData] = []
    for entry in spec.datasets:
        if isinstance(entry, ImageData):
            resolved.append(entry)
            continue
        names = local_datasets(entry) if entry in FAMILIES else [entry]
        if not names:
            looked = ", ".join(str(root) for root in data_roots())
            raise SpecError(f"{spec.source}: datasets: {entry!r} matches no dataset found locally (looked in "
                            f"{looked}); download some with `hmlearn datasets fetch NAME` or set HMLEARN_DATA")
        resolved.extend(name for name in names if name not in resolved)
    return resolved


def cell_config(dataset: str, preset: str, overrides: dict[str, Any], seed: int, threads: int,
                published: tuple[dict, int] | None = None) -> dict[str, Any]:
    """The full TrainConfig of a cell, as a dict, plus ``preset``."""
    from hmlearn.training.config import config_record
    from hmlearn.training.presets import preset_config

    settings, n_outputs = published if published is not None else published_settings(dataset)
    config = preset_config(settings, preset, n_outputs, seed=seed, threads=threads, **overrides)
    return {**config_record(config), "preset": preset}


def expand(spec: SweepSpec) -> list[Cell]:
    """Every cell of the spec: datasets x method variants x seeds, in that order."""
    from hmlearn.experiments.store import cell_key

    folder = Path(spec.source).parent if spec.source != "<spec>" else Path()
    cells = []
    for position, entry in enumerate(resolve_datasets(spec)):
        if isinstance(entry, ImageData):
            dataset, preset = entry.name, "paper"  # image settings are the paper's image runs', whatever the preset
            location = IMAGE_LOCATION + entry.resolved(folder).model_dump_json(exclude_none=True)
            published = image_settings(entry)
        else:
            dataset, preset = entry, spec.preset
            location = str(folder / dataset) if is_path(dataset) else dataset  # an absolute path stays as it is
            if is_path(dataset) and not Path(location).is_file():
                raise SpecError(f"{spec.source}: datasets[{position}]: {dataset}: no such file ({location})")
            published = published_settings(location)
        for method, overrides in spec.method_variants():
            if isinstance(entry, ImageData) and overrides.get("encoder_weights"):
                overrides = {**overrides, "encoder_weights": str(folder / overrides["encoder_weights"])}
            for seed in spec.seeds:
                config = cell_config(location, preset, overrides, seed, spec.threads_per_cell, published)
                cells.append(Cell(spec.name, dataset, method, overrides, seed, preset, spec.threads_per_cell,
                                  config, cell_key(dataset, method, config), location))
    return cells


def image_settings(entry: ImageData) -> tuple[dict, int]:
    """(settings, network outputs) of an image dataset: the paper's image runs, ResNet-50, the entry's size."""
    from hmlearn.training.presets import IMAGE_SETTINGS

    return {**IMAGE_SETTINGS, "image_size": entry.image_size}, 0
