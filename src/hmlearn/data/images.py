"""Image tables (one row per image file, hierarchical labels) read into an :class:`ImageDataset`.

Seafloor photographs come with a CSV or Parquet table, in one of three layouts:

- paths: a ``labels`` column of hierarchy paths, several per image joined by ``;``
  (``sand/rippled;biota/echinoderms``); the path separator is guessed (``' > '``, ``'/'``,
  ``'|'``, ``'.'``: the one in the most paths) or given.
- levels: one column per level (``level1, level2, level3``); a path ends at its first empty cell.
- BenthicNet: label cells are Python-style lists of node indices (``[3, 17, 18]``) into a
  hierarchy table of paths (``[BIOTA] > Biota > Echinoderms > Sea urchins``), the image at
  ``dataset/site/image``, a ``partition`` column (METHOD.md section 11).

In every layout a table may list an image on several rows (one per annotation: the way to give
several paths in the levels layout); their labels are merged. Images are only checked for
existence here, so a table of a million rows reads in seconds; :func:`load_pixels` decodes them,
resized to one square size, and names every file it cannot read. Errors name the table, the row
(counted from 1 at the first row below the header) and the column, and say what to pass.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm.auto import tqdm

from hmlearn.data.splitting import stratified_split
from hmlearn.data.store import cache_dir
from hmlearn.data.table import (
    encode_labels,
    hierarchy_from_labels,
    listing,
    read_frame,
    read_hierarchy,
    read_label_sets,
)
from hmlearn.errors import DataFormatError, HierarchyError, HMLError
from hmlearn.fileio import atomic_write, read_text
from hmlearn.hierarchy import Hierarchy

IMAGE_COLUMNS = ("image", "file", "filename", "file_name", "path", "image_path", "filepath")  # auto-detected
LABEL_COLUMNS = ("labels", "label")
SPLIT_COLUMNS = ("partition", "split")
BENTHICNET_IMAGE = ("dataset", "site", "image")  # the image is dataset/site/image
PATH_SEPARATORS = (" > ", " / ", " | ", ">", "/", "|", ".")  # guessed: the one in the most paths; ties: first
INDEX_TABLE_HEADERS = ("catami", "path", "paths", "node", "nodes", "label", "labels", "name", "hierarchy")
PARTITIONS = {"train": ("train", "training"), "valid": ("valid", "validation", "val", "dev"),
              "test": ("test", "testing")}
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"})
_TRIED_SUFFIXES = tuple(s for suffix in sorted(IMAGE_SUFFIXES) for s in (suffix, suffix.upper()))  # a cell without one
_LEVEL = re.compile(r"level[ _-]?(\d+)", re.IGNORECASE)
_CATAMI = re.compile(r"catami[ _]", re.IGNORECASE)
_INDEX_LIST = re.compile(r"\[\s*(?:\d+\s*(?:,\s*\d+\s*)*,?)?\s*\]")
_LISTED = 10  # files named in an error before "... and N more"
PIXEL_CACHE_FORMAT = 1  # bump when load_pixels' output changes


class _EveryColumn(frozenset):
    """read_frame's ``text_columns`` for an image table: every cell is text (``0001.jpg`` keeps its zeros)."""

    def __contains__(self, name: object) -> bool:
        return True


@dataclass
class ImageDataset:
    """Images and their hierarchical labels, one row per image file.

    paths: (S,) absolute image file paths. Y: (S, N) bool labels, closed upwards; column order =
    ``hierarchy.nodes``. ids: (S,) the image as the table names it (default: the path).
    partition: (S,) str from the table's split column (``train``, ``test``, ...) or None.
    """

    paths: list[Path]
    Y: np.ndarray
    hierarchy: Hierarchy
    ids: list[str] = field(default_factory=list)
    partition: np.ndarray | None = None
    name: str = ""

    def __post_init__(self) -> None:
        self.paths = [Path(p) for p in self.paths]
        self.Y = np.asarray(self.Y, dtype=bool)
        label = self.name or "image dataset"
        if self.Y.ndim != 2 or len(self.Y) != len(self.paths):
            raise ValueError(f"{label}: {len(self.paths)} paths and labels of shape {self.Y.shape} do not match")
        if self.Y.shape[1] != len(self.hierarchy):
            raise ValueError(f"{label}: Y has {self.Y.shape[1]} columns, the hierarchy has {len(self.hierarchy)} nodes")
        self.ids = [str(p) for p in self.paths] if not self.ids else list(self.ids)
        if len(self.ids) != len(self.paths):
            raise ValueError(f"{label}: {len(self.ids)} ids for {len(self.paths)} images")
        if self.partition is not None:
            self.partition = np.asarray(self.partition, dtype=str)
            if self.partition.shape != (len(self.paths),):
                raise ValueError(f"{label}: partition of shape {self.partition.shape} for {len(self.paths)} images")

    def __len__(self) -> int:
        return len(self.paths)

    def __repr__(self) -> str:
        split = ""
        if self.partition is not None:
            values, counts = np.unique(self.partition, return_counts=True)
            split = ", partition " + " / ".join(f"{v or '(empty)'} {c}" for v, c in zip(values, counts))
        return f"ImageDataset({self.name}: {len(self)} images{split}, {self.hierarchy!r})"

    def subset(self, rows: np.ndarray | Sequence[int]) -> ImageDataset:
        """The images at ``rows`` (indices or an (S,) bool mask), in that order."""
        rows = np.asarray(rows)
        rows = np.flatnonzero(rows) if rows.dtype == bool else rows.astype(np.int64)
        return ImageDataset([self.paths[i] for i in rows], self.Y[rows], self.hierarchy,
                            [self.ids[i] for i in rows],
                            None if self.partition is None else self.partition[rows], self.name)


# ---------------------------------------------------------------------------------- reading
def read_image_table(
    table: str | Path,
    images_dir: str | Path | None = None,
    *,
    image_column: str | Sequence[str] | None = None,
    labels_column: str | Sequence[str] | None = None,
    level_columns: Sequence[str] | None = None,
    separator: str | None = None,
    hierarchy: Hierarchy | str | Path | None = None,
    split_column: str | None = None,
    strict: bool = False,
) -> ImageDataset:
    """A CSV or Parquet table of images -> :class:`ImageDataset` (files checked, not opened).

    ``images_dir``: the folder the image cells are relative to (default: the table's folder);
    absolute cells stand as they are. A cell without its file's extension, or with another one
    (BenthicNet's archives store every image as ``.jpg``), matches ``name.jpg`` / ``.png`` / ...

    Columns, when not given, are found by name (any case):
    - ``image_column``: ``dataset, site, image`` together (BenthicNet), else one of
      ``IMAGE_COLUMNS`` (``image``, ``file``, ``path``, ...); a list of columns is joined as folders.
    - labels: ``labels_column`` (``labels``, else the one ``catami_*`` column; a list is
      merged) holding paths or index lists, or ``level_columns`` (``level1``, ``level2``, ...).
    - ``split_column``: ``partition`` or ``split``; None when absent.
    BenthicNet's mask columns (``biota_mask``, ...) are ignored: a masked node is read as absent.

    ``hierarchy``: None builds it from the label paths (every prefix is a node); a
    :class:`Hierarchy` or a hierarchy file (:func:`hmlearn.data.table.read_hierarchy`) fixes it,
    and a label outside it is an error naming the row. Index lists need the hierarchy file:
    index ``i`` is its ``i``-th path, counting from 0 (Python's lists), blank and ``#`` lines
    skipped, a first line such as ``catami`` or ``path`` read as a header. A path listed without
    its ancestors (possible with a DAG) is closed with a warning, or refused with ``strict``.
    """
    table = Path(table)
    frame = read_frame(table, text_columns=_EveryColumn())
    directory = Path(images_dir) if images_dir is not None else table.parent
    image_columns = _image_columns(frame, table, image_column)
    layout, label_columns = _label_layout(frame, table, labels_column, level_columns)
    split = _split_column(frame, table, split_column)
    shown = label_columns[0] if len(label_columns) == 1 else f"{label_columns[0]}..{label_columns[-1]}"
    if layout == "levels":
        label_sets, hierarchy, source = _levels(frame, table, label_columns, hierarchy, separator)
    elif layout == "indices":
        label_sets, hierarchy, source = _indexed(frame, table, label_columns, hierarchy, separator)
    else:
        label_sets, hierarchy, source = _paths(frame, table, label_columns, hierarchy, separator)
    Y = encode_labels(label_sets, hierarchy, table, shown, source, strict)
    ids = _image_ids(frame, table, image_columns)
    paths = _image_files(ids, directory, table, image_columns)
    partition = None if split is None else np.array([_text(cell) for cell in frame[split]], dtype=str)
    return _merged(paths, Y, hierarchy, ids, partition, table, split)




def list_images(
    source: str | Path, images_dir: str | Path | None = None, image_column: str | Sequence[str] | None = None
) -> tuple[list[Path], list[str]]:
    """(paths, ids) of the images to predict on: every image file under a folder (ids relative to
    it, sorted), or the image column(s) of a table (labels not needed; ids as the table names them)."""
    source = Path(source)
    if source.is_dir():
        paths = sorted(p for p in source.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not paths:
            raise DataFormatError(f"{source}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in this folder")
        return paths, [p.relative_to(source).as_posix() for p in paths]
    if not source.is_file():
        raise HMLError(f"{source}: no such file or folder")
    frame = read_frame(source, text_columns=_EveryColumn())
    if frame.empty:
        raise DataFormatError(f"{source}: no rows to predict")
    columns = _image_columns(frame, source, image_column)
    ids = _image_ids(frame, source, columns)
    directory = Path(images_dir) if images_dir is not None else source.parent
    return _image_files(ids, directory, source, columns), ids


def _text(cell: object) -> str:
    """A cell as stripped text; '' for a missing one."""
    if isinstance(cell, str):
        return cell.strip()
    if cell is None or (not isinstance(cell, (list, tuple, np.ndarray)) and pd.isna(cell)):
        return ""
    return str(cell).strip()


def _column(frame: pd.DataFrame, table: Path, name: str, role: str, hint: str) -> str:
    if name not in frame.columns:
        raise DataFormatError(f"{table}: no {role} column {name!r}; the columns are {listing(list(frame.columns))}; "
                              f"{hint}")
    return name


def _named(frame: pd.DataFrame, names: Sequence[str]) -> list[str]:
    """Columns whose name is one of ``names`` (any case), in the order of ``names``."""
    lower = {str(c).lower(): c for c in frame.columns}
    return [lower[n] for n in names if n in lower]


def _image_columns(frame: pd.DataFrame, table: Path, given: str | Sequence[str] | None) -> list[str]:
    hint = "name the column of image files with image_column="
    if given is not None:
        names = [given] if isinstance(given, str) else list(given)
        return [_column(frame, table, name, "image", hint) for name in names]
    benthicnet = _named(frame, BENTHICNET_IMAGE)
    if len(benthicnet) == len(BENTHICNET_IMAGE):
        return benthicnet
    found = _named(frame, IMAGE_COLUMNS)
    if len(found) == 1:
        return found
    if not found:
        raise DataFormatError(f"{table}: no image column (named one of {', '.join(IMAGE_COLUMNS)}); the columns "
                              f"are {listing(list(frame.columns))}; {hint}")
    raise DataFormatError(f"{table}: columns {', '.join(map(repr, found))} could each name the image files; "
                          "pass image_column= to choose")


def _label_layout(
    frame: pd.DataFrame, table: Path, labels_column: str | Sequence[str] | None, level_columns: Sequence[str] | None
) -> tuple[str, list[str]]:
    """('paths' | 'indices' | 'levels', the label columns)."""
    hint = "name the labels with labels_column= (paths or index lists) or level_columns= (one column per level)"
    if labels_column is not None and level_columns is not None:
        raise DataFormatError(f"{table}: pass labels_column= or level_columns=, not both")
    if level_columns is not None:
        names = [level_columns] if isinstance(level_columns, str) else list(level_columns)
        if not names:
            raise DataFormatError(f"{table}: level_columns= is empty; list the columns of levels 1, 2, ...")
        return "levels", [_column(frame, table, name, "level", hint) for name in names]
    if labels_column is not None:
        names = [labels_column] if isinstance(labels_column, str) else list(labels_column)
        names = [_column(frame, table, name, "labels", hint) for name in names]
        return ("indices" if _holds_indices(frame, names) else "paths"), names
    labels = _named(frame, LABEL_COLUMNS)[:1]
    catami = [str(c) for c in frame.columns if _CATAMI.match(str(c))]
    levels = sorted((str(c) for c in frame.columns if _LEVEL.fullmatch(str(c))),
                    key=lambda c: int(_LEVEL.fullmatch(c).group(1)))
    if labels and levels:
        raise DataFormatError(f"{table}: the labels could be column {labels[0]!r} or the level columns "
                              f"{', '.join(levels)}; pass labels_column= or level_columns= to choose")
    if not labels and len(catami) > 1:
        raise DataFormatError(f"{table}: several label columns ({', '.join(catami)}); pass labels_column= one of "
                              "them (the paper's echinoderm runs use the biota one) or a list to merge")
    labels = labels or catami
    if labels:
        return ("indices" if _holds_indices(frame, labels) else "paths"), labels
    if levels:
        return "levels", levels
    raise DataFormatError(f"{table}: no labels column (labels, catami_*, or level1, level2, ...); the columns are "
                          f"{listing(list(frame.columns))}; {hint}")


def _split_column(frame: pd.DataFrame, table: Path, given: str | None) -> str | None:
    if given is not None:
        return _column(frame, table, given, "split", "name the column of train / test with split_column=")
    found = _named(frame, SPLIT_COLUMNS)
    return found[0] if found else None


# ---------------------------------------------------------------------------------- labels
def _holds_indices(frame: pd.DataFrame, columns: list[str]) -> bool:
    """True when every non-empty label cell is a list of node indices (``[3, 17]``, or a Parquet list of ints)."""
    seen = False
    for column in columns:
        for cell in frame[column]:
            if isinstance(cell, (list, tuple, np.ndarray)):
                if len(cell) and not all(isinstance(v, (int, np.integer)) for v in cell):
                    return False
                seen = True
            elif text := _text(cell):
                if not _INDEX_LIST.fullmatch(text):
                    return False
                seen = True
    return seen


def guess_path_separator(paths: Sequence[str]) -> str:
    """The separator of ``PATH_SEPARATORS`` found in the most paths (ties: the earlier); ``/`` for flat labels.

    Counting, not the first found, because names hold separators too: CATAMI's
    ``[BIOTA] > ... > Prawns / shrimps / mysids`` splits on ``' > '``, not ``'/'``.
    """
    counts = [sum(separator in path for path in paths) for separator in PATH_SEPARATORS]
    best = int(np.argmax(counts))
    return PATH_SEPARATORS[best] if counts[best] else "/"


def _normalised(label: str, split_on: str, join_with: str) -> str:
    return join_with.join(part.strip() for part in label.split(split_on))


def _paths(
    frame: pd.DataFrame, table: Path, columns: list[str], hierarchy: Hierarchy | str | Path | None,
    separator: str | None,
) -> tuple[list[list[str]], Hierarchy, str]:
    per_column = [read_label_sets(frame, column, table, ";") for column in columns]
    label_sets = [[label for sets in per_column for label in sets[row]] for row in range(len(frame))]
    if hierarchy is None:
        distinct = list(dict.fromkeys(label for labels in label_sets for label in labels))
        if not distinct:
            raise HierarchyError(f"{table}: column {columns[0]!r} holds no labels; write each image's label paths "
                                 "there, joined by ';'")
        separator = separator or guess_path_separator(distinct)
        label_sets = [[_normalised(label, separator, separator) for label in labels] for labels in label_sets]
        return label_sets, hierarchy_from_labels([label_sets], [table], columns[0], separator), ""
    hierarchy, source = _given_hierarchy(hierarchy, separator)
    index, split_on = hierarchy.index, separator or hierarchy.separator
    label_sets = [[label if label in index else _normalised(label, split_on, hierarchy.separator) for label in labels]
                  for labels in label_sets]
    return label_sets, hierarchy, source


def _given_hierarchy(hierarchy: Hierarchy | str | Path, separator: str | None) -> tuple[Hierarchy, str]:
    """(the hierarchy, ' in FILE' for errors); a file's path separator is guessed from its lines."""
    if isinstance(hierarchy, Hierarchy):
        return hierarchy, ""
    path = Path(hierarchy)
    if separator is None:
        try:
            lines = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines()]
            separator = guess_path_separator([line for line in lines if line and not line.startswith("#")])
        except (OSError, UnicodeDecodeError):
            pass  # read_hierarchy names the problem
    return read_hierarchy(path, separator), f" in {path}"


def _levels(
    frame: pd.DataFrame, table: Path, columns: list[str], hierarchy: Hierarchy | str | Path | None,
    separator: str | None,
) -> tuple[list[list[str]], Hierarchy, str]:
    cells = [[_text(cell) for cell in frame[column]] for column in columns]
    paths: list[tuple[str, ...]] = []
    for row in range(len(frame)):
        parts = [cells[level][row] for level in range(len(columns))]
        depth = parts.index("") if "" in parts else len(parts)
        after = next((level for level in range(depth, len(parts)) if parts[level]), None)
        if after is not None:
            raise DataFormatError(f"{table}: row {row + 1}: column {columns[after]!r} holds {parts[after]!r} but "
                                  f"{columns[depth]!r} is empty; a path ends at its first empty level")
        paths.append(tuple(parts[:depth]))
    source = ""
    if hierarchy is None:
        flat = [part for column in cells for part in column]
        separator = separator or next((s for s in ("/", " > ", " | ") if not any(s in part for part in flat)), "/")
        try:
            hierarchy = Hierarchy.from_paths([p for p in dict.fromkeys(paths) if p], separator)
        except HierarchyError as error:
            raise HierarchyError(f"{table}: columns {', '.join(columns)}: {error}") from None
    else:
        hierarchy, source = _given_hierarchy(hierarchy, separator)
    return [[hierarchy.separator.join(p)] if p else [] for p in paths], hierarchy, source


def _indexed(
    frame: pd.DataFrame, table: Path, columns: list[str], hierarchy: Hierarchy | str | Path | None,
    separator: str | None,
) -> tuple[list[list[str]], Hierarchy, str]:
    """Label sets from index lists: index i is the i-th path of the hierarchy table (from 0)."""
    if hierarchy is None or isinstance(hierarchy, Hierarchy):
        raise DataFormatError(f"{table}: column {columns[0]!r} holds node indices (e.g. [3, 17, 18]); pass "
                              "hierarchy= the file of paths they number (index 0 is its first path)")
    hierarchy_file = Path(hierarchy)
    names, hierarchy = _index_table(hierarchy_file, separator)
    label_sets: list[list[str]] = [[] for _ in range(len(frame))]
    for column in columns:
        for row, cell in enumerate(frame[column]):
            indices = ([int(v) for v in cell] if isinstance(cell, (list, tuple, np.ndarray))
                       else [int(v) for v in re.findall(r"\d+", _text(cell))])
            for i in indices:
                if i >= len(names):
                    raise HierarchyError(f"{table}: row {row + 1}, column {column!r}: node index {i} is beyond the "
                                         f"{len(names)} paths of {hierarchy_file} (indices count from 0)")
                label_sets[row].append(names[i])
    return label_sets, hierarchy, f" in {hierarchy_file}"


def _index_table(path: Path, separator: str | None) -> tuple[list[str], Hierarchy]:
    """(node name of each data row, the hierarchy) of a one-column table of paths.

    The first cell of each line counts (BenthicNet's file ends some lines with a comma); a path
    listed twice names one node, so both rows' indices mean it.
    """
    if path.suffix.lower() in (".parquet", ".pq"):
        rows = [_text(cell) for cell in read_frame(path).iloc[:, 0]]
    else:
        text = read_text(path, "hierarchy file", DataFormatError)
        rows = [line.strip() for line in text.splitlines()]
        rows = [line for line in rows if line and not line.startswith("#")]
        rows = [_first_cell(line) for line in rows]
        if rows and rows[0].lower() in INDEX_TABLE_HEADERS:
            rows = rows[1:]
    if not rows:
        raise HierarchyError(f"{path}: the hierarchy table has no paths; write one path per line")
    separator = separator or guess_path_separator(rows)
    names = [_normalised(row, separator, separator) for row in rows]
    try:
        return names, Hierarchy.from_paths(dict.fromkeys(names), separator)
    except HierarchyError:
        pass
    for lineno, name in enumerate(names):  # errors only: name the first bad path
        try:
            Hierarchy.from_paths([name], separator)
        except HierarchyError as error:
            raise HierarchyError(f"{path}: path {lineno} (from 0): {error}") from None
    raise AssertionError("unreachable: the paths built no hierarchy but each one builds alone")


def _first_cell(line: str) -> str:
    if line.startswith('"'):
        end = line.find('"', 1)
        while end != -1 and line[end + 1 : end + 2] == '"':  # doubled quote inside the cell
            end = line.find('"', end + 2)
        if end != -1:
            return line[1:end].replace('""', '"').strip()
    return line.split(",", 1)[0].strip()


# ---------------------------------------------------------------------------------- files
def _image_ids(frame: pd.DataFrame, table: Path, columns: list[str]) -> list[str]:
    """Per row, the image as the table names it: the image columns joined as folders."""
    parts = [[_text(cell) for cell in frame[column]] for column in columns]
    for column, cells in zip(columns, parts):
        if "" in cells:
            raise DataFormatError(f"{table}: row {cells.index('') + 1}, column {column!r} is empty; every row needs "
                                  "its image file")
    return ["/".join(row) for row in zip(*parts)]


def _image_files(ids: list[str], directory: Path, table: Path, columns: list[str]) -> list[Path]:
    """Absolute paths of existing files; every missing one is reported at once, the first ten named."""
    paths: list[Path] = []
    missing: list[str] = []
    base = os.path.abspath(directory)
    found: dict[str, str | None] = {}  # several rows per image is common: look each file up once
    for row, name in enumerate(ids, start=1):
        if name not in found:
            path = os.path.join(base, name)
            found[name] = path if os.path.isfile(path) else _with_other_suffix(path)
        if found[name] is None:
            missing.append(f"row {row}: {name}")
        paths.append(Path(found[name] or os.path.join(base, name)))
    if missing:
        where = "under " + str(directory)
        shown = "; ".join(missing[:_LISTED]) + (f"; ... and {len(missing) - _LISTED} more" if len(missing) > _LISTED
                                                else "")
        what = (f"none of the {len(ids)} image files exists {where}" if len(missing) == len(ids)
                else f"{len(missing)} of {len(ids)} image files do not exist {where}")
        raise DataFormatError(f"{table}: {what} ({shown}); pass images_dir= the folder that column(s) "
                              f"{', '.join(columns)} are relative to, or drop the rows of missing images")
    return paths


def _with_other_suffix(path: str) -> str | None:
    stem, suffix = os.path.splitext(path)
    candidates = [path + s for s in _TRIED_SUFFIXES] + ([stem + s for s in _TRIED_SUFFIXES] if suffix else [])
    return next((c for c in candidates if os.path.isfile(c)), None)


def _merged(
    paths: list[Path], Y: np.ndarray, hierarchy: Hierarchy, ids: list[str], partition: np.ndarray | None,
    table: Path, split: str | None,
) -> ImageDataset:
    """One row per image: rows naming the same file are merged (labels united, one partition)."""
    first_row: dict[Path, int] = {}
    image_of_row = np.array([first_row.setdefault(p, row) for row, p in enumerate(paths)])
    if len(first_row) == len(paths):
        return ImageDataset(paths, Y, hierarchy, ids, partition, table.stem)
    rows = np.fromiter(first_row.values(), dtype=np.int64, count=len(first_row))
    image = np.empty(len(paths), dtype=np.int64)
    image[rows] = np.arange(len(rows))
    image = image[image_of_row]
    merged = np.zeros((len(rows), Y.shape[1]), dtype=bool)
    np.logical_or.at(merged, image, Y)
    if partition is not None:
        clash = np.flatnonzero(partition != partition[image_of_row])
        if len(clash):
            row, other = int(clash[0]), int(image_of_row[clash[0]])
            raise DataFormatError(f"{table}: rows {other + 1} and {row + 1} name the same image {ids[row]!r} with "
                                  f"{split!r} {str(partition[other])!r} and {str(partition[row])!r}; give it one partition")
        partition = partition[rows]
    return ImageDataset([paths[i] for i in rows], merged, hierarchy, [ids[i] for i in rows], partition, table.stem)


# ---------------------------------------------------------------------------------- pixels
def load_pixels(
    paths: Sequence[str | Path], size: int, progress: bool = False, cache: bool = False
) -> np.ndarray:
    """(S, 3, size, size) uint8 RGB: each image's shorter side scaled to ``size``, then centre-cropped.

    Grey, RGBA, palette, CMYK and 16-bit images become 8-bit RGB (alpha dropped); JPEGs are
    decoded at a reduced scale where that still leaves ``size`` pixels (Pillow's draft mode), and
    EXIF rotations are applied. Every file that cannot be read is reported in one error (the
    first ten named). ``cache=True`` keeps the array as ``.npy`` in hmlearn's cache folder, keyed
    by the paths, their sizes and modification times, and ``size``: a second load is one read.
    """
    if int(size) != size or size < 1:
        raise ValueError(f"image size must be a positive integer, got {size}")
    size = int(size)
    paths = [Path(p) for p in paths]
    cached = _cache_file(paths, size) if cache else None
    if cached is not None and cached.is_file():
        try:
            pixels = np.load(cached, allow_pickle=False)
            if pixels.shape == (len(paths), 3, size, size) and pixels.dtype == np.uint8:
                return pixels
        except (OSError, ValueError):
            pass
        cached.unlink(missing_ok=True)  # damaged or foreign: decode again
    pixels = np.empty((len(paths), 3, size, size), dtype=np.uint8)
    block = 64

    def decode(start: int) -> list[str]:
        failures = []
        for i in range(start, min(start + block, len(paths))):
            try:
                pixels[i] = _pixels(paths[i], size)
            except Exception as error:  # noqa: BLE001 - any decoder failure is this file's problem, reported below
                failures.append(f"{paths[i]} ({_reason(error)})")
        return failures

    failures: list[str] = []
    starts = range(0, len(paths), block)
    workers = min(8, os.cpu_count() or 1, len(starts)) or 1
    with tqdm(total=len(paths), desc="images", unit="img", disable=not progress, leave=False) as bar, \
            ThreadPoolExecutor(workers) as pool:  # Pillow decodes and resizes without the GIL
        for start, failed in zip(starts, pool.map(decode, starts)):
            failures += failed
            bar.update(min(block, len(paths) - start))
    if failures:
        more = f"; ... and {len(failures) - _LISTED} more" if len(failures) > _LISTED else ""
        raise DataFormatError(f"{len(failures)} of {len(paths)} image files cannot be read: "
                              f"{'; '.join(failures[:_LISTED])}{more}; replace them, or drop their rows from the table")
    if cached is not None:
        with atomic_write(cached) as handle:
            np.save(handle, pixels)
    return pixels


def _pixels(path: Path, size: int) -> np.ndarray:
    """(3, size, size) uint8 of one image file."""
    with Image.open(path) as image:
        image.draft("RGB", (size, size))  # JPEG only: decode at 1/2, 1/4 or 1/8 scale, never below size
        if image.getexif().get(0x0112, 1) != 1:  # EXIF orientation
            image = ImageOps.exif_transpose(image)
        image = _rgb(image)
        width, height = image.size
        if (width, height) != (size, size):
            side = min(width, height)
            box = ((width - side) / 2, (height - side) / 2, (width + side) / 2, (height + side) / 2)
            image = image.resize((size, size), Image.Resampling.BILINEAR, box=box)
        return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)


def _rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):  # 16-bit or float grey: scale to 8 bits
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if values.max(initial=0) > 255 else 255.0
        image = Image.fromarray(np.clip(np.rint(values * (255.0 / top)), 0, 255).astype(np.uint8), "L")
    elif image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")  # Pillow warns when a palette with transparency goes straight to RGB
    return image.convert("RGB")


def _reason(error: Exception) -> str:
    if isinstance(error, FileNotFoundError):
        return "no such file"
    if isinstance(error, UnidentifiedImageError):
        return "not an image file Pillow can read"
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _cache_file(paths: list[Path], size: int) -> Path | None:
    """Where ``load_pixels`` caches these files at this size; None when one cannot be stat'ed (it is reported)."""
    digest = hashlib.sha256(f"{PIXEL_CACHE_FORMAT}|{size}|{len(paths)}".encode())
    for path in paths:
        try:
            stat = os.stat(path)
        except OSError:
            return None
        digest.update(f"\n{os.path.abspath(path)}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return cache_dir() / "pixels" / f"{digest.hexdigest()[:40]}.npy"


# ---------------------------------------------------------------------------------- splits
def image_splits(
    data: ImageDataset, test_fraction: float = 0.3, valid_fraction: float = 0.0, seed: int = 0
) -> dict[str, ImageDataset]:
    """``{"train": ..., "valid": ..., "test": ...}`` from the partition column, else stratified by seed.

    With a partition, its values name the splits (``train``/``training``, ``valid``/
    ``validation``/``val``/``dev``, ``test``/``testing``, any case) and the fractions are unused;
    a split the partition lacks is left out, but ``train`` is required. Without one,
    :func:`hmlearn.data.splitting.stratified_split` takes ``test_fraction`` of the images, then
    ``valid_fraction`` (of all images) from the rest; ``valid`` is present only when asked for.
    """
    if data.partition is not None:
        alias = {name.lower(): split for split, names in PARTITIONS.items() for name in names}
        found = np.array([alias.get(value.strip().lower(), "") for value in data.partition])
        unknown = sorted({str(value) for value, split in zip(data.partition, found) if not split})
        if unknown:
            raise HMLError(f"{data.name}: partition value(s) {', '.join(map(repr, unknown[:10]))} are none of "
                           f"{', '.join(name for names in PARTITIONS.values() for name in names)}; rename them")
        if not (found == "train").any():
            raise HMLError(f"{data.name}: no image is in the train partition; mark some 'train'")
        return {split: data.subset(found == split) for split in PARTITIONS if (found == split).any()}
    if not 0.0 <= valid_fraction < 1.0 - test_fraction:
        raise HMLError(f"the valid fraction must be in [0, 1 - test fraction), got {valid_fraction} with test "
                       f"fraction {test_fraction}")
    train, test = stratified_split(data.Y, data.hierarchy, test_fraction, seed)
    splits = {"train": data.subset(train)}
    if valid_fraction > 0:
        rest, valid = stratified_split(data.Y[train], data.hierarchy, valid_fraction / (1.0 - test_fraction), seed)
        splits = {"train": data.subset(train[rest]), "valid": data.subset(train[valid])}
    splits["test"] = data.subset(test)
    return splits
