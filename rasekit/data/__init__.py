"""Datasets: registry and download, readers, preprocessing and the leave-one-out protocol."""
from pathlib import Path

from .protocol import Instances, SameTargetIndex, SplitData, split
from .readers import DataFormatError, read_inter, read_item_attributes, read_ratings_csv, read_sequences
from .registry import DATASETS, ChecksumError, UnknownDatasetError, fetch


def load(name: str, max_len: int = 50, download: bool = True) -> SplitData:
    """A registered dataset, verified, read and split by the protocol."""
    from .registry import get
    spec = get(name)
    files = fetch(spec.name, download=download)
    return split(spec.name, read_sequences(files["sequences"]), max_len=max_len)


def load_file(path: str | Path, max_len: int = 50, k: int = 5, name: str | None = None) -> SplitData:
    """A dataset from a local file: S3-Rec `.txt`, RecBole `.inter` or ratings `.csv` (the last two are
    k-core filtered and re-indexed)."""
    from .preprocess import to_sequences
    path = Path(path)
    name = name or path.stem
    if path.suffix == ".txt":
        return split(name, read_sequences(path), max_len=max_len)
    reader = {".inter": read_inter, ".csv": read_ratings_csv}.get(path.suffix)
    if reader is None:
        raise ValueError(f"{path}: unknown format {path.suffix!r} (expected .txt, .inter or .csv)")
    return split(name, to_sequences(reader(path), k=k), max_len=max_len)


__all__ = ["DATASETS", "ChecksumError", "DataFormatError", "Instances", "SameTargetIndex", "SplitData",
           "UnknownDatasetError", "fetch", "load", "load_file", "read_inter", "read_item_attributes",
           "read_ratings_csv", "read_sequences", "split"]
