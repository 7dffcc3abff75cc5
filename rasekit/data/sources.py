"""Where a run's data comes from: a registered dataset (by name; its files verified against the
registry) or a file of the user's own (S3-Rec `.txt`, RecBole `.inter`, or a ratings `.csv` such as Amazon
Clothing's), known by its sha256, so that a run's key follows the file's content and not where it lies."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rasekit.data import registry
from rasekit.data.held_out import HeldOut

FILE_FORMATS = (".txt", ".inter", ".csv")


@dataclass(frozen=True)
class Source:
    name: str                   # what tables and the ledger call the dataset
    path: Path | None = None    # a user's file; None for a registered dataset
    sha256: str | None = None   # the file's, when it was resolved
    held_out: HeldOut = field(default_factory=HeldOut)  # older data of a registered dataset (name "Beauty:last=2")

    @property
    def base(self) -> str:
        """The registered dataset's name, without the held-out change."""
        return self.name.split(":")[0]

    @property
    def config(self) -> dict:
        """What a run's configuration records. `location` is where the file lies on this machine; it is
        not part of the run's key (keys.run_key leaves it out)."""
        if self.path is None:
            return {"dataset": self.name}
        return {"dataset": self.name, "data_file": {"sha256": self.sha256, "format": self.path.suffix.lower()},
                "location": str(self.path)}

    def load(self, users: int | None = None, max_len: int = 50):
        from rasekit.data import load, load_file
        if self.path is None:
            return load(self.base, max_len=max_len, users=users, held_out=self.held_out)
        found = registry.sha256_of(self.path) if self.path.is_file() else None
        if found != self.sha256:
            raise registry.ChecksumError(
                f"{self.path}: {'missing' if found is None else f'sha256 {found}'}, but the run was made from "
                f"a file with sha256 {self.sha256}; point the run at that file again")
        return load_file(self.path, max_len=max_len, name=self.name, users=users)

    def checksums(self) -> dict[str, str]:
        return registry.checksums(self.base) if self.path is None else {self.path.name: self.sha256}

    def size(self) -> int:
        """Bytes of the interaction file (to scale time estimates between datasets)."""
        return registry.get(self.base).sequences.size if self.path is None else self.path.stat().st_size


def resolve(dataset: str | Path | Source) -> Source:
    """A registered dataset by name or alias, else a data file by its path."""
    if isinstance(dataset, Source):
        return dataset
    if ":" in str(dataset) and not Path(str(dataset)).expanduser().is_file():
        return _held_out(str(dataset))
    try:
        return Source(registry.get(str(dataset)).name)
    except registry.UnknownDatasetError as unknown:
        path = Path(dataset).expanduser()
        if path.suffix.lower() not in FILE_FORMATS or not path.is_file():
            raise registry.UnknownDatasetError(
                f"{unknown}; or the path of a data file ({', '.join(FILE_FORMATS)}), which {dataset!r} is not"
                + _why_not_a_file(str(dataset))) from None
        name = path.stem + (" (own file)" if path.stem in registry.DATASETS else "")
        return Source(name, path.resolve(), registry.sha256_of(path))


def _held_out(given: str) -> Source:
    """"Beauty:last=2": a registered dataset with the held-out change after the colon (`data.held_out`)."""
    name, _, change = given.partition(":")
    base, held = registry.get(name.strip()).name, HeldOut.parse(change)
    return Source(f"{base}:{held.label()}", held_out=held) if held.config else Source(base)


def _why_not_a_file(given: str) -> str:
    """Why `given`, which names no registered dataset, names no data file either (for the message)."""
    path = Path(given).expanduser()
    if not given.strip():
        return " (it is empty)"
    if path.is_dir():
        return " (it is a directory)"
    return " (no such file)" if path.suffix.lower() in FILE_FORMATS else ""


def of_config(config: dict) -> Source:
    """The data of a run from its configuration (a record's "config")."""
    if "data_file" not in config:
        return resolve(config["dataset"])
    return Source(config["dataset"], Path(config["location"]), config["data_file"]["sha256"])
