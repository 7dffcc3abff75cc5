"""The run store: what a finished run leaves under a root (its ledger record, per-instance ranks and, for
runs that are loaded again, its trained weights), and the two roots a user deals with.

* The reference: the committed results (`paths.reference_dir()`), what the kit's authors ran.
* The user's own: `paths.output_dir()` (runs/own/, ignored by git), where every run of this machine lands.
  A rerun reuses the user's own finished runs, never the reference's, so a table never passes the kit's
  numbers off as the user's; `promote` copies finished runs into the reference before they are committed.

Weights are kept weights only (no optimizer state), one file per run, with their sha256 in the record;
loading checks the hash, the run, the dataset and the shapes."""
from __future__ import annotations

import shutil
from pathlib import Path

from rasekit.runs import ledger, paths
from rasekit.data.registry import sha256_of
from rasekit.stages.loop import CheckpointError, save_atomic

KEEP_WEIGHTS = ("default", "full")  # profiles whose models notebooks load again (smoke runs are CI's)
# Profiles whose weights the committed reference keeps: a default run retrains in minutes, and its
# test-time variants are recorded, so a rebuild of the reference needs no weights of it (README).
REFERENCE_WEIGHTS = ("full",)


def export_weights(key: str, meta: dict, state: dict, root: Path | None = None) -> dict:
    """Write a run's weights beside its record; returns the record's "weights" entry."""
    path = paths.weights_dir(root) / f"{key}.pt"
    save_atomic({"meta": meta, "model": state}, path)
    return {"file": str(path.relative_to(root or paths.output_dir())), "sha256": sha256_of(path),
            "bytes": path.stat().st_size}


def weights_path(record: dict, root: Path | None = None) -> Path | None:
    """The verified weights file of a record under `root` (default: the user's own); None if the record
    names none or the file is not there. A file whose sha256 differs from the record's is refused."""
    entry = record.get("weights")
    if not entry:
        return None
    path = (root or paths.output_dir()) / entry["file"]
    if not path.exists():
        return None
    digest = sha256_of(path)
    if digest != entry["sha256"]:
        raise CheckpointError(f"{path}: sha256 {digest} does not match its ledger record's {entry['sha256']} "
                              f"(run {record['key']}); the file was changed or belongs to another run")
    return path


def promote(keys=None, profile: str | None = None, log=print, weights: bool = True) -> list[str]:
    """Copy the user's finished runs (all, those of `profile`, or `keys`) into the reference: record,
    ranks and weights. Everything is checked before anything is copied, so a run whose files are missing
    or whose weights do not match stops the promotion with the reference unchanged. A run the reference
    holds from a larger profile is left as it is (a training-free baseline computes the same thing in
    every profile), and said so. Weights go only with runs of REFERENCE_WEIGHTS, and not at all without
    `weights`; the record of another run goes without its "weights" entry, so that no record names a
    file that is not there, and the weights a replaced record named are removed. Returns the keys
    promoted."""
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
        held = ledger.get(record["key"], reference)
        if ledger.outranks(held, record):
            log(f"kept the reference's {held['profile']} record of run {record['key']} ({record['model']}); "
                f"your {record['profile']} run does not replace it")
            continue
        files = _files_of(record, own)
        if (not weights or record["profile"] not in REFERENCE_WEIGHTS) and record.get("weights"):
            files = [f for f in files if f != own / record["weights"]["file"]]
            record = {k: v for k, v in record.items() if k != "weights"}
        copies.append((record, files, held))
    for record, files, held in copies:
        for source in files:
            target = reference / source.relative_to(own)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        ledger.put(record, reference)  # last: the record appears once its files are in place
        if held and held.get("weights") and not record.get("weights"):  # no file without its record
            (reference / held["weights"]["file"]).unlink(missing_ok=True)
    return [record["key"] for record, _, _ in copies]


def _files_of(record: dict, root: Path) -> list[Path]:
    """A finished run's files under `root` (ranks, and weights if it keeps them), verified."""
    files = [paths.ranks_dir(root) / f"{record['key']}.npz"]
    if record.get("weights"):
        if weights_path(record, root) is None:
            raise FileNotFoundError(f"weights of run {record['key']} are missing: {root / record['weights']['file']}")
        files.append(root / record["weights"]["file"])
    if not files[0].exists():
        raise FileNotFoundError(f"ranks of run {record['key']} are missing: {files[0]}")
    return files
