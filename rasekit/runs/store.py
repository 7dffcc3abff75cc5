"""The run store: what a finished run leaves under a root (its ledger record, per-instance ranks and, for
runs that are loaded again, its trained weights), and the two roots a user deals with.

* The reference: the committed results (`paths.reference_dir()`), what the kit's authors ran.
* The user's own: `paths.output_dir()` (runs/own/, ignored by git), where every run of this machine lands.
  A rerun reuses the user's own finished runs, never the reference's, so a table never passes the kit's
  numbers off as the user's; `promote` copies finished runs into the reference before they are committed.
  The one exception is explicit: a profile that takes stage 1 from the reference (`default`) copies
  those runs into the user's store with `adopt`, checked, their records marked "adopted", and tables
  name them as the reference's.

Weights are kept weights only (no optimizer state), one file per run, with their sha256 in the record;
loading checks the hash, the run, the dataset and the shapes. Ranks carry their sha256 too, checked at
every read. Every file is written whole (`rasekit.files.atomic`); `verify` checks a store against its
records."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from rasekit.evaluate import metrics
from rasekit.runs import ledger
from rasekit.files import atomic, paths
from rasekit.data.registry import sha256_of
from rasekit.stages.loop import CheckpointError, save_atomic

KEEP_WEIGHTS = ("default", "full")  # profiles whose models notebooks load again (smoke runs are CI's)
# Profiles whose weights the committed reference keeps: a default run retrains in minutes, and its
# test-time variants are recorded, so a rebuild of the reference needs no weights of it (README).
REFERENCE_WEIGHTS = ("full",)


class IntegrityError(ValueError):
    """A stored file does not match its ledger record: changed, cut, or another run's."""


def file_entry(path: Path, root: Path | None = None) -> dict:
    """A record's entry for a stored file ("ranks", "weights"): its path under `root`, sha256 and size."""
    return {"file": str(path.relative_to(root or paths.output_dir())), "sha256": sha256_of(path),
            "bytes": path.stat().st_size}


def export_weights(key: str, meta: dict, state: dict, root: Path | None = None) -> dict:
    """Write a run's weights beside its record; returns the record's "weights" entry."""
    path = paths.weights_dir(root) / f"{key}.pt"
    save_atomic({"meta": meta, "model": state}, path)
    return file_entry(path, root)


def save_ranks(key: str, ranks: dict, root: Path | None = None) -> dict:
    """Write a run's per-instance ranks ({part: ranks}, as int32); returns the record's "ranks" entry."""
    buffer = io.BytesIO()  # numpy writes in place: made in memory, then written whole
    np.savez_compressed(buffer, **{part: values.astype(np.int32) for part, values in ranks.items()})
    return file_entry(atomic.write_bytes(paths.ranks_dir(root) / f"{key}.npz", buffer.getvalue()), root)


def _check_hash(path: Path, entry: dict, record: dict, error=IntegrityError) -> None:
    digest = sha256_of(path)
    if digest != entry["sha256"]:
        raise error(f"{path}: sha256 {digest} does not match its ledger record's {entry['sha256']} "
                    f"(run {record['key']}); the file was changed or belongs to another run")


def weights_path(record: dict, root: Path | None = None) -> Path | None:
    """The verified weights file of a record under `root` (default: the user's own); None if the record
    names none or the file is not there. A file whose sha256 differs from the record's is refused."""
    entry = record.get("weights")
    if not entry:
        return None
    path = (root or paths.output_dir()) / entry["file"]
    if not path.exists():
        return None
    _check_hash(path, entry, record, CheckpointError)
    return path


def ranks_path(record: dict, root: Path | None = None) -> Path:
    """The verified per-instance ranks file of a record under `root` (default: the user's own): its
    sha256 against the record's, or for a record written before ranks were hashed, its test ranks against
    the record's metrics. FileNotFoundError if it is missing, IntegrityError if it does not match."""
    path = _ranks_file(record, root or paths.output_dir())
    if not path.exists():
        raise FileNotFoundError(f"{path}: per-instance ranks of run {record['key']} are missing; rerun it")
    if record.get("ranks"):
        _check_hash(path, record["ranks"], record)
    else:
        _check_metrics(path, record)
    return path


def _ranks_file(record: dict, root: Path) -> Path:
    entry = record.get("ranks")
    return root / entry["file"] if entry else paths.ranks_dir(root) / f"{record['key']}.npz"


def ranks_entry(record: dict, root: Path | None = None) -> dict:
    """A record's verified "ranks" entry: its own, or for an older record one made from its file."""
    path = ranks_path(record, root)
    return record.get("ranks") or file_entry(path, root)


def load_ranks(record: dict, part: str = "test", root: Path | None = None) -> np.ndarray:
    """Per-instance ranks of `part` of a finished run, from its verified file under `root`."""
    path = ranks_path(record, root)
    saved = _arrays(path)
    if part not in saved:
        raise KeyError(f"{path}: run {record['key']} has no {part!r} ranks, only {sorted(saved)}")
    return saved[part].astype(np.int64)


def _arrays(path: Path) -> dict:
    try:
        with np.load(path) as saved:
            return {part: saved[part] for part in saved.files}
    except Exception as err:  # numpy and zipfile raise many types for a cut or foreign file
        raise IntegrityError(f"{path}: not a readable ranks file ({type(err).__name__}: {err})") from None


def _check_metrics(path: Path, record: dict) -> None:
    """A record without the sha256 of its ranks: its test ranks must give its test metrics (the kit
    computes one from the other, so they agree exactly), and another run's file is refused."""
    saved = _arrays(path)
    if "test" not in saved:
        raise IntegrityError(f"{path}: holds no test ranks (run {record['key']})")
    given, held = metrics(saved["test"].astype(np.int64)), record["metrics"]
    wrong = [m for m in held if m in given and given[m] != held[m]]
    if wrong:
        raise IntegrityError(f"{path}: its test ranks give {wrong[0]} = {given[wrong[0]]:.6f}, the ledger "
                             f"record of run {record['key']} says {held[wrong[0]]:.6f}; the file belongs to "
                             f"another run or was changed")


def promote(keys=None, profile: str | None = None, log=print, weights: bool = True) -> list[str]:
    """Copy the user's finished runs (all, those of `profile`, or `keys`) into the reference: record,
    ranks and weights. Everything is checked before anything is copied, so a run whose files are missing
    or do not match their sha256 stops the promotion with the reference unchanged; a kill at any point
    leaves a reference that the same promotion, run again, completes. A run the reference
    holds from a larger profile is left as it is (a training-free baseline computes the same thing in
    every profile), and said so. Weights go only with runs of REFERENCE_WEIGHTS, and not at all without
    `weights`; the record of another run goes without its "weights" entry, so that no record names a
    file that is not there, and the weights a replaced record named are removed; a reference record that
    keeps weights is therefore never replaced by one without them (it is kept, and said so). A run taken
    from the reference (`adopt`) is left alone, and said so. Returns the keys promoted."""
    own, reference = paths.output_dir(), paths.reference_dir()
    if own == reference:
        raise ValueError("the output root is the reference itself: nothing to promote")
    chosen = [r for r in ledger.records(own)
              if (keys is None or r["key"] in keys) and (profile is None or r["profile"] == profile)]
    missing = sorted(set(keys or ()) - {r["key"] for r in chosen})
    if missing:
        raise ValueError(f"not among your finished runs ({paths.ledger_dir(own)}): {missing}")
    copies = []
    for record in chosen:
        if record.get("adopted"):
            log(f"left {record['model']} ({record['key']}) alone: it was taken from the reference, not trained here")
            continue
        held = ledger.get(record["key"], reference)
        if ledger.outranks(held, record):
            log(f"kept the reference's {held['profile']} record of run {record['key']} ({record['model']}); "
                f"your {record['profile']} run does not replace it")
            continue
        keeps = weights and record["profile"] in REFERENCE_WEIGHTS
        if held and held.get("weights") and not keeps:
            log(f"kept the reference's record of run {record['key']} ({record['model']}): it keeps the trained "
                f"weights that notebooks load, which a record without weights would remove")
            continue
        record = _checked(record, own)
        if not keeps and record.get("weights"):
            record = {k: v for k, v in record.items() if k != "weights"}
        copies.append(record)
    _refuse_orphans(copies, reference)
    sweep(reference)
    for record in copies:
        _install(record, own, reference)
    return [record["key"] for record in copies]


def _refuse_orphans(copies: list[dict], reference: Path) -> None:
    """A stage-2 run needs its stage-1 run in the reference, and a variant its parent: either there
    already or promoted with it. Else nothing is copied and the missing runs are named."""
    coming = {record["key"] for record in copies}
    orphans = [f"{record['model']} on {record['dataset']}, {record['profile']} ({record['key']}) needs {parent}"
               for record in copies if (parent := built_on(record))
               and parent not in coming and ledger.get(parent, reference) is None]
    if orphans:
        raise ValueError(f"the reference would hold runs without the run they are built on: {'; '.join(orphans)}. "
                         f"Promote those too (their keys with these), or leave these out; nothing was copied")


def adopt(record: dict) -> dict:
    """Copy a reference run (its record `record`) into the user's own store: its ranks and weights are
    checked against their sha256 first (a missing or changed file is refused by name, and nothing is
    copied), then copied, then its record, marked as taken from the reference at the commit that made it.
    Returns the user's record."""
    own, reference = paths.output_dir(), paths.reference_dir()
    marked = {**_checked(record, reference),
              "adopted": {"from": "reference", "commit": record["provenance"].get("git_commit", "")}}
    _install(marked, reference, own)
    return marked


def sweep(root: Path) -> None:
    """Remove what killed writes left in the folders of the store under `root`: `promote` and `migrate`
    do this first, so that run again after a kill they leave no temporary file."""
    atomic.sweep(paths.ledger_dir(root), paths.ranks_dir(root), paths.weights_dir(root))


def _checked(record: dict, root: Path) -> dict:
    """A finished run's record, its files under `root` verified (weights if it keeps them, and ranks),
    with a "ranks" entry made for a record written before ranks were hashed."""
    if record.get("weights") and weights_path(record, root) is None:
        raise FileNotFoundError(f"weights of run {record['key']} are missing: {root / record['weights']['file']}")
    return {**record, "ranks": ranks_entry(record, root)}


def _install(record: dict, source: Path, target: Path) -> None:
    """Copy one run's files from the store under `source` into the one under `target` (the reference for
    `promote`, the user's own for `adopt`), then its record. A file that differs from the one there is
    copied only once the target's record of that run is gone, so that no record ever names a file that
    is not its own; weights that no record names any more go last. A kill at any point leaves a store
    that the same command, run again, completes."""
    entries = [record["ranks"], *([record["weights"]] if record.get("weights") else [])]
    changed = [entry for entry in entries if not _holds(target, entry)]
    if changed:
        atomic.remove(paths.ledger_dir(target) / f"{record['key']}.json")
    for entry in changed:
        atomic.copy(source / entry["file"], target / entry["file"])
    ledger.put(record, target)  # last: the record appears once its files are in place
    if not record.get("weights"):
        atomic.remove(paths.weights_dir(target) / f"{record['key']}.pt")


def _holds(root: Path, entry: dict) -> bool:
    """Whether `root` holds the file of a record's entry, with its sha256."""
    path = root / entry["file"]
    return path.exists() and sha256_of(path) == entry["sha256"]


def verify(root: Path | None = None) -> tuple[int, list[str]]:
    """Check every record under `root` (default: the user's own) against its files: the record is
    well-formed, its ranks and weights are there and match their sha256 (the ranks also load), no ranks
    or weights file is named by no record, and no write left a temporary file. Returns the number of
    records and one line per problem, naming the file."""
    root = root or paths.output_dir()
    folder = paths.ledger_dir(root)
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    named, read, problems = set(), {}, []
    for path in files:
        problems += _verify_record(path, root, named, read)
    stored = [p for d in (paths.ranks_dir(root), paths.weights_dir(root)) if d.is_dir() for p in d.iterdir()]
    problems += [f"{p}: no ledger record names it (left by an interrupted promote or migrate, or its record "
                 f"was deleted)" for p in sorted(stored) if p not in named and not p.name.startswith(".")]
    problems += [f"{p}: temporary file left by an interrupted write; delete it"
                 for p in atomic.stray(root / "results", root / "figures", recursive=True)]
    return len(files), problems + _orphaned(read, root)


def built_on(record: dict) -> str | None:
    """The key of the run a record builds on: a stage-2 run's stage-1 run, a variant's parent."""
    return record["config"].get("backbone_key") or record["config"].get("parent")


def _orphaned(read: dict[Path, dict], root: Path) -> list[str]:
    """Records (read from their files) built on a run in no ledger they may use: the reference's needs
    its own; the user's may build on the reference's."""
    held = {record["key"] for record in read.values()}
    return [f"{path}: run {record['key']} ({record['model']}) is built on run {parent}, which no ledger here holds"
            for path, record in read.items() if (parent := built_on(record)) and parent not in held
            and (root == paths.reference_dir() or ledger.get(parent, paths.reference_dir()) is None)]


def _verify_record(path: Path, root: Path, named: set, read: dict) -> list[str]:
    """The problems of one record file and its files (whose paths go into `named`, the record into
    `read`)."""
    try:
        record = read[path] = ledger.read(path)
    except ledger.LedgerError as err:
        return [str(err)]
    problems = [] if path.stem == record["key"] else [f"{path}: holds run {record['key']}, not {path.stem}"]
    if "ranks" not in record:
        problems.append(f"{path}: names no sha256 of its ranks (written before ranks were hashed); "
                        f"`python -m rasekit migrate` (--reference for the reference) adds it")
    named.add(_ranks_file(record, root))
    try:
        _arrays(ranks_path(record, root))
    except (OSError, ValueError) as err:
        problems.append(str(err))
    if record.get("weights"):
        named.add(root / record["weights"]["file"])
        try:
            if weights_path(record, root) is None:
                problems.append(f"{root / record['weights']['file']}: missing (weights of run {record['key']})")
        except CheckpointError as err:
            problems.append(str(err))
    return problems
