"""Where datasets live: find them, download what is missing, cache what was parsed.

Files are looked for, in order, in: an explicit ``data_dir``, ``$HMLEARN_DATA``, the user
cache (``$HMLEARN_CACHE`` or the platform's cache folder, under ``hmc_data``), and
``../shared/hmc_data`` beside a checkout of this repository. A missing file is downloaded
from the dataset's public home with a progress bar to a temporary name, its SHA-256 checked,
then moved into place. Parsed splits are cached as ``.npz`` keyed by the file's SHA-256, so
a second load skips parsing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import urllib.error
import urllib.request
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import platformdirs
from tqdm.auto import tqdm

from hmlearn.data.arff import read_arff
from hmlearn.data.dataset import HMCDataset
from hmlearn.data.registry import DATASETS, DatasetSpec, get_spec
from hmlearn.errors import ChecksumError, DatasetNotFoundError
from hmlearn.fileio import atomic_write, sha256_file
from hmlearn.hierarchy import Hierarchy

CACHE_FORMAT = 3  # bump when the reader's output changes, to invalidate parsed caches
_CHECKOUT_SHARED = Path(__file__).resolve().parents[3].parent / "shared" / "hmc_data"


def cache_dir() -> Path:
    """Root of hmlearn's user cache (``$HMLEARN_CACHE`` overrides the platform default)."""
    return Path(os.environ.get("HMLEARN_CACHE") or platformdirs.user_cache_dir("hmlearn"))


def data_roots(data_dir: str | Path | None = None) -> list[Path]:
    """The folders searched for dataset files, in priority order."""
    roots: list[Path] = []
    if data_dir:
        roots.append(Path(data_dir))
    if os.environ.get("HMLEARN_DATA"):
        given = Path(os.environ["HMLEARN_DATA"])
        if given.exists() and not given.is_dir():
            raise DatasetNotFoundError(f"HMLEARN_DATA={given} is a file; point it at the folder that holds the "
                                       "datasets")
        roots.append(given)
    roots.append(cache_dir() / "hmc_data")
    for shared in (_CHECKOUT_SHARED, Path.cwd().parent / "shared" / "hmc_data"):
        if shared not in roots:
            roots.append(shared)
    return roots


def locate(spec: DatasetSpec, split: str, data_dir: str | Path | None = None) -> Path | None:
    """The first existing copy of one split's file (public layout or flat in a root)."""
    relative = Path(spec.files[split])
    for root in data_roots(data_dir):
        for candidate in (root / relative, root / relative.name):
            if candidate.is_file():
                return candidate
    return None


def download_root(data_dir: str | Path | None = None) -> Path:
    if data_dir:
        return Path(data_dir)
    if os.environ.get("HMLEARN_DATA"):
        return Path(os.environ["HMLEARN_DATA"])
    return cache_dir() / "hmc_data"


def download(url: str, dest: Path, sha256: str | None, progress: bool = True, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` atomically; a checksum mismatch leaves nothing behind."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with atomic_write(dest) as out, tqdm(
                total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress, leave=False
            ) as bar:
                digest = hashlib.sha256()
                while chunk := response.read(1 << 16):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
                actual = digest.hexdigest()
                if sha256 is not None and actual != sha256:
                    raise ChecksumError(
                        f"{url}: SHA-256 mismatch (expected {sha256}, got {actual}); nothing was saved"
                    )
    except (urllib.error.URLError, OSError, TimeoutError) as error:
        raise DatasetNotFoundError(f"could not download {url}: {getattr(error, 'reason', error)}") from None
    if sha256 is None:
        warnings.warn(f"{dest.name}: no published SHA-256 to check against; recorded {actual} beside it", stacklevel=2)
        with atomic_write(dest.with_name(dest.name + ".sha256"), "w") as out:
            out.write(f"{actual}  {dest.name}\n")
    return dest


def fetch(
    name: str,
    splits: Sequence[str] | None = None,
    data_dir: str | Path | None = None,
    progress: bool = True,
    allow_download: bool = True,
) -> dict[str, Path]:
    """Paths of a dataset's files, downloading the missing ones."""
    spec = get_spec(name)
    paths: dict[str, Path] = {}
    for split in splits or spec.splits:
        found = locate(spec, split, data_dir)
        if found is None:
            if not allow_download or os.environ.get("HMLEARN_OFFLINE"):
                looked = ", ".join(str(r) for r in data_roots(data_dir))
                advice = ("unset HMLEARN_OFFLINE to download it, or copy the file into one of those folders"
                          if os.environ.get("HMLEARN_OFFLINE") else
                          f"run `hmlearn datasets fetch {spec.name}` or set HMLEARN_DATA")
                raise DatasetNotFoundError(
                    f"{spec.name}: {Path(spec.files[split]).name} not found (looked in {looked}); {advice}"
                )
            found = download(spec.url(split), download_root(data_dir) / spec.files[split], spec.sha256(split), progress)
        paths[split] = found
    return paths


def read_cached(
    path: str | Path,
    convention: str = "auto",
    not_evaluated: Sequence[str] | None = None,
    name: str = "",
    split: str = "",
    expected_sha256: str | None = None,
) -> HMCDataset:
    """Read an ARFF file through the parsed-dataset cache (keyed by the file's SHA-256)."""
    path = Path(path)
    digest = sha256_file(path)
    if expected_sha256 is not None and digest != expected_sha256:
        warnings.warn(f"{path}: SHA-256 differs from the published file's; using it as it is", stacklevel=2)
    options = f"{CACHE_FORMAT}|{convention}|{','.join(not_evaluated or [])}"
    key = f"{digest[:32]}-{hashlib.sha256(options.encode()).hexdigest()[:12]}"
    cached = cache_dir() / "parsed" / f"{key}.npz"
    if cached.is_file():
        try:
            return _load_npz(cached, name, split)
        except Exception:  # noqa: BLE001 - a truncated or altered cache entry (BadZipFile, zlib, ...): parse again
            with contextlib.suppress(OSError):
                cached.unlink()
    dataset = read_arff(path, convention=convention, not_evaluated=list(not_evaluated) if not_evaluated else None,
                        name=name, split=split)
    try:
        _save_npz(cached, dataset)
    except OSError as error:  # the cache is an optimisation: a read-only or misplaced cache must not block work
        _warn_cache_once(cached.parent, error)
    return dataset


_CACHE_WARNED: set[str] = set()


def _warn_cache_once(folder: Path, error: OSError) -> None:
    if str(folder) not in _CACHE_WARNED:
        _CACHE_WARNED.add(str(folder))
        warnings.warn(f"{folder}: cannot cache parsed datasets there ({error.strerror or error}); going on without "
                      "the cache (set HMLEARN_CACHE to a writable folder to keep it)", stacklevel=3)


def _save_npz(target: Path, dataset: HMCDataset) -> None:
    with atomic_write(target) as handle:
        np.savez(
            handle,
            X=dataset.X,
            Y=np.packbits(dataset.Y, axis=1),
            n_nodes=np.int64(dataset.Y.shape[1]),
            feature_names=np.array(dataset.feature_names, dtype=str),
            hierarchy=np.array(json.dumps(dataset.hierarchy.to_dict())),
        )


def _load_npz(source: Path, name: str, split: str) -> HMCDataset:
    with np.load(source, allow_pickle=False) as data:
        n_nodes = int(data["n_nodes"])
        Y = np.unpackbits(data["Y"], axis=1, count=n_nodes).astype(bool)
        hierarchy = Hierarchy.from_dict(json.loads(str(data["hierarchy"])))
        return HMCDataset(data["X"], Y, hierarchy, data["feature_names"].tolist(), name, split)


def load_dataset(
    name: str | Path,
    splits: Sequence[str] | str = ("trainvalid", "test"),
    data_dir: str | Path | None = None,
    download: bool = True,
) -> HMCDataset | tuple[HMCDataset, ...]:
    """Load a standard dataset by name (or one ARFF file by path), raw: NaN where missing.

    ``splits`` names files (``train``, ``valid``, ``test``) or ``trainvalid``, the benchmark's
    training set: train + valid where the dataset has a valid file, else train. One split name
    returns one dataset; a sequence returns a tuple. All splits share one ``Hierarchy`` object.
    """
    if Path(name).suffix == ".arff" or Path(name).is_file():
        path = Path(name)
        if not path.is_file():
            raise DatasetNotFoundError(f"{path}: no such file")
        return read_cached(path, name=path.stem, split="")
    spec = get_spec(str(name))
    wanted = [splits] if isinstance(splits, str) else list(splits)
    files = set()
    for split in wanted:
        if split == "trainvalid":
            files.update(spec.training_splits)
        elif split in spec.files:
            files.add(split)
        else:
            raise DatasetNotFoundError(f"{spec.name} has no split {split!r}; it has {', '.join(spec.splits)}, trainvalid")
    paths = fetch(spec.name, sorted(files), data_dir, allow_download=download)
    parts: dict[str, HMCDataset] = {}
    hierarchy: Hierarchy | None = None
    for split in sorted(files):
        part = read_cached(paths[split], spec.convention, spec.not_evaluated, spec.name, split, spec.sha256(split))
        if hierarchy is None:
            hierarchy = part.hierarchy
        elif part.hierarchy != hierarchy:
            raise DatasetNotFoundError(f"{paths[split]}: its hierarchy differs from the other splits' of {spec.name}")
        part.hierarchy = hierarchy
        parts[split] = part
    result = []
    for split in wanted:
        if split == "trainvalid":
            result.append(HMCDataset.concatenate([parts[s] for s in spec.training_splits], "trainvalid"))
        else:
            result.append(parts[split])
    return result[0] if isinstance(splits, str) else tuple(result)


def local_datasets(family: str | None = None, data_dir: str | Path | None = None) -> list[str]:
    """Registry datasets (of ``family``: FUN, GO or others) whose files are all found locally, in registry order."""
    return [name for name, spec in DATASETS.items()
            if (family is None or spec.family == family) and all(locate(spec, split, data_dir) for split in spec.splits)]
