"""The datasets the kit knows: public origin, size and sha256 of every file, and how to obtain them.

Resolution order for a file: the data-directory setting (RASEKIT_DATA_DIR), then the kit's own downloads
(data/ in the repository, or RASEKIT_DOWNLOADS), then a download into it from the public origin (S3-Rec repository, per ../shared/data/README.md). Every file is checked
against its size and sha256 before use; a download is written to a temporary name and only renamed into
place once verified, so a failed or corrupt download leaves nothing behind.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

from rasekit.files import paths

ORIGIN = "https://raw.githubusercontent.com/aHuiWang/CIKM2020-S3Rec/master/data/"


class ChecksumError(ValueError):
    """A data file does not match the registry's size or sha256."""


class UnknownDatasetError(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return self.args[0]


@dataclass(frozen=True)
class DataFile:
    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Dataset:
    name: str
    sequences: DataFile
    attributes: DataFile


def _dataset(name, txt_size, txt_sha, attr_size, attr_sha) -> Dataset:
    return Dataset(name, DataFile(f"{name}.txt", txt_size, txt_sha),
                   DataFile(f"{name}_item2attributes.json", attr_size, attr_sha))


DATASETS: dict[str, Dataset] = {d.name: d for d in [
    _dataset("Beauty", 1090094, "226cce9c3105299ca0db9615d7d3fb32b3175e90da43100ae352599f0f0107b8",
             305674, "129e40f67486f6877eff0f5318cfa8530ee8ac23d8b0d1de04e1bb7a2ba0b2d4"),
    _dataset("Sports_and_Outdoors", 1707483, "2a095e0648872beb9982408958290f5d655db5be2911c3756b5446de9f0b8de2",
             653780, "7fb10733ac4f1811384a52144cdefa7fcc7536fa80a7232c5da9bd789155c34b"),
    _dataset("Toys_and_Games", 922166, "176c680c688d497598c4a89a03b402c0fe78d795e5db335c2e78dd5f2d778a3f",
             327536, "d371acd25101eedac04afc727626464b7acec770c4eda708705d51eb76eb1ad0"),
    _dataset("Yelp", 1814224, "724b219106b81dd2349027da997334ddb6da9fe2f152ad6e0d97a93170f7caed",
             600360, "f25acd5e1e680e0b22fd4e3f4fb6be4b2a7461e9222610616e3e1ee6702dd58d"),
]}

# Short names used in the paper and on the command line.
ALIASES = {"Sports": "Sports_and_Outdoors", "Toys": "Toys_and_Games"}


def get(name: str) -> Dataset:
    key = ALIASES.get(name, name)
    if key not in DATASETS:
        known = ", ".join(sorted(DATASETS) + sorted(ALIASES))
        raise UnknownDatasetError(f"unknown dataset {name!r}; known datasets: {known}")
    return DATASETS[key]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, spec: DataFile) -> None:
    if path.is_dir():
        raise ChecksumError(f"{path}: is a directory, expected the data file {spec.name}")
    size = path.stat().st_size
    if size != spec.size:
        raise ChecksumError(f"{path}: size {size} bytes, expected {spec.size} for {spec.name}")
    digest = sha256_of(path)
    if digest != spec.sha256:
        raise ChecksumError(f"{path}: sha256 {digest}, expected {spec.sha256} for {spec.name}")


class DataUnavailableError(FileNotFoundError):
    """A data file is neither on this machine nor downloadable; the message says how to provide it."""


def _offline_hint(spec: DataFile, dataset: str) -> str:
    setting = paths.data_dir()
    folder = setting / dataset if setting else paths.downloads_dir() / dataset
    return (f"to work offline, download {ORIGIN + spec.name} elsewhere and put it at {folder / spec.name}"
            + ("" if setting else " (or set RASEKIT_DATA_DIR to a folder holding "
                                   f"{dataset}/{spec.name})"))


def _made_dirs(folder: Path) -> list[Path]:
    """Create `folder`; return the folders that did not exist before, deepest first."""
    new = [p for p in [folder, *folder.parents] if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    return new


def _download(url: str, dest: Path, spec: DataFile, dataset: str) -> None:
    from tqdm import tqdm  # text bars: a saved notebook reopens without widget errors

    created = _made_dirs(dest.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response, \
                    tqdm(total=spec.size, unit="B", unit_scale=True, desc=f"download {spec.name}") as bar:
                for block in iter(lambda: response.read(1 << 16), b""):
                    out.write(block)
                    bar.update(len(block))
        except OSError as err:  # URLError, HTTPError, timeouts and lost connections are all OSErrors
            reason = getattr(err, "reason", None) or err
            raise DataUnavailableError(f"{spec.name} of {dataset} is not on this machine and could not be "
                                       f"downloaded from {url} ({reason}); "
                                       f"{_offline_hint(spec, dataset)}") from None
        try:
            verify(Path(tmp), spec)
        except ChecksumError as err:
            raise ChecksumError(f"download of {url} failed verification, nothing kept at {dest}: "
                                f"{err}") from None
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        for folder in created:  # leave no empty folder behind
            if folder.exists() and not any(folder.iterdir()):
                folder.rmdir()
        raise


def locate(spec: DataFile, dataset: str, download: bool = True) -> Path:
    """Path of a verified copy of one data file (see module docstring for the order). A copy among the
    kit's own downloads that fails verification is deleted (the kit wrote it) and fetched again."""
    setting = paths.data_dir()
    if setting is not None and (setting / dataset / spec.name).exists():
        path = setting / dataset / spec.name
        try:
            verify(path, spec)
        except ChecksumError as err:
            raise ChecksumError(f"{err}; replace it with the original from {ORIGIN + spec.name}") from None
        return path
    downloaded = paths.downloads_dir() / dataset / spec.name
    if downloaded.exists():
        try:
            verify(downloaded, spec)
            return downloaded
        except ChecksumError as err:
            downloaded.unlink()
            if not download:
                raise ChecksumError(f"{err}; the corrupt copy was deleted, run again with downloading on "
                                    f"or {_offline_hint(spec, dataset)}") from None
            warnings.warn(f"{err}; deleted the corrupt copy and downloading it again")
    if not download:
        where = f"{setting / dataset} or {downloaded.parent}" if setting else str(downloaded.parent)
        raise DataUnavailableError(f"{spec.name} not found in {where} and downloading is off; "
                                   f"{_offline_hint(spec, dataset)}")
    _download(ORIGIN + spec.name, downloaded, spec, dataset)
    return downloaded


def fetch(name: str, download: bool = True, files=("sequences", "attributes")) -> dict[str, Path]:
    """Verified local paths of a dataset's files (by default both: {'sequences': ..., 'attributes': ...})."""
    ds = get(name)
    return {part: locate(getattr(ds, part), ds.name, download) for part in files}


def checksums(name: str) -> dict[str, str]:
    ds = get(name)
    return {ds.sequences.name: ds.sequences.sha256, ds.attributes.name: ds.attributes.sha256}
