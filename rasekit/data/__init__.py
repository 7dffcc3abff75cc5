"""Datasets: registry and download, readers, preprocessing and the leave-one-out protocol."""
from pathlib import Path

import numpy as np

from rasekit.data.protocol import Instances, SameTargetIndex, SplitData, split
from rasekit.data.readers import DataFormatError, read_inter, read_item_attributes, read_ratings_csv, read_sequences
from rasekit.data.registry import DATASETS, ChecksumError, DataUnavailableError, UnknownDatasetError, fetch


def load(name: str, max_len: int = 50, download: bool = True, users: int | None = None,
         held_out=None) -> SplitData:
    """A registered dataset, verified, read and split by the protocol. `users` keeps a seeded random
    sample of that many users (the smoke profile); item ids and the item count stay those of the full set.
    `held_out` (`data.held_out.HeldOut`): the older data, cut after the sample and before the split."""
    from rasekit.data.registry import get
    spec = get(name)
    files = fetch(spec.name, download=download, files=("sequences",))  # attributes: not read
    return _split(spec.name, read_sequences(files["sequences"]), max_len, users, held_out)


def _split(name: str, sequences: dict[int, list[int]], max_len: int, users: int | None,
           held_out=None) -> SplitData:
    """The protocol's split, on a seeded sample of `users` users if given (item ids and count unchanged),
    of the older data if `held_out` says so."""
    n_items = max(max(items) for items in sequences.values())
    if users is not None:
        if not 0 < users <= len(sequences):
            raise ValueError(f"users must be in 1..{len(sequences)} for {name}, got {users}")
        keep = np.random.default_rng(0).choice(sorted(sequences), users, replace=False)
        sequences = {int(u): sequences[int(u)] for u in sorted(keep)}
    if held_out is not None and held_out.config:
        sequences, name = held_out.apply(sequences), f"{name}:{held_out.label()}"
    return split(name, sequences, max_len=max_len, n_items=n_items)


def load_file(path: str | Path, max_len: int = 50, k: int = 5, name: str | None = None,
              duplicates: str = "keep", users: int | None = None) -> SplitData:
    """A dataset from a local file: S3-Rec `.txt`, RecBole `.inter` or ratings `.csv` (the last two are
    k-core filtered and re-indexed; `duplicates`: see `preprocess.to_sequences`)."""
    from rasekit.data.preprocess import to_sequences
    path = Path(path)
    name = name or path.stem
    suffix = path.suffix.lower()
    if suffix == ".txt":
        return _split(name, read_sequences(path), max_len, users)
    reader = {".inter": read_inter, ".csv": read_ratings_csv}.get(suffix)
    if reader is None:
        raise ValueError(f"{path}: unknown format {path.suffix!r} (expected .txt, .inter or .csv)")
    return _split(name, to_sequences(reader(path), k=k, duplicates=duplicates, path=path), max_len, users)


__all__ = ["DATASETS", "ChecksumError", "DataFormatError", "DataUnavailableError", "Instances",
           "SameTargetIndex", "SplitData", "UnknownDatasetError", "fetch", "load", "load_file", "read_inter",
           "read_item_attributes", "read_ratings_csv", "read_sequences", "split"]
