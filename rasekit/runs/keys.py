"""Run keys: the name of a run in the ledger, in the run store and in the cache.

A key is the hash of a schema version and of the run's settings that differ from their defaults, plus
the fields that say what the run is (stage, dataset, model, seed, the run it builds on). Adding a setting
later, with a default that keeps today's behaviour, therefore keeps every existing key. Keys of schema 1
hashed the whole configuration; `migrate` renames such runs (record, ranks, weights, checkpoints) to
their schema-2 keys and keeps the old key in the record's "previous_keys".

Runs recorded before the stopping rule was a setting (`valid_decimals`, official: 4) compared exact
validation scores. `migrate` replays each one's validation curve under the official rule: where it keeps
the same best epoch and stops at the same epoch, the run is the official rule's run and keeps its key;
otherwise it is marked as an exact-rule run (valid_decimals None), which gives it a key of its own.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from rasekit.runs import ledger, store
from rasekit.files import atomic, paths
from rasekit.runs.defaults import FINETUNE, PRETRAIN, RAM
from rasekit.runs.provenance import config_hash

SCHEMA = 2
# Settings of the item-transition heuristic added after its first runs: at these values, its key is unchanged.
TRANSITION_ADDED = {"normalise": True, "valid_at_test": False}


def defaults(stage: str) -> dict:
    """The default settings of a stage's configuration (settings absent from a key take these values)."""
    return {"pretrain": {"users": None, "max_len": 50, "encoder_params": {}, "objective_params": {},
                         "train": PRETRAIN},
            "finetune": {"users": None, "ram": RAM, "partition": None, "train": FINETUNE},
            "baseline": {"users": None, "transition": TRANSITION_ADDED}}.get(stage, {})


def changed(config: dict, default: dict) -> dict:
    """The entries of `config` that differ from `default` (nested dicts compared entry by entry);
    entries without a default are always kept."""
    out = {}
    for name, value in config.items():
        if name not in default:
            out[name] = value
        elif isinstance(value, dict) and isinstance(default[name], dict):
            inner = {k: v for k, v in value.items() if k not in default[name] or default[name][k] != v}
            if inner:
                out[name] = inner
        elif value != default[name]:
            out[name] = value
    return out


def run_key(config: dict) -> str:
    """The key of a run with this configuration (a variant's configuration carries its own schema)."""
    if config.get("stage") == "variant":
        return config_hash(config)
    placed = {k: v for k, v in config.items() if k != "location"}  # where a data file lies is not the run
    return config_hash({"schema": SCHEMA, **changed(placed, defaults(config["stage"]))})


# ---- migration of schema-1 runs -------------------------------------------------------------------------

STAGE_ORDER = {"pretrain": 0, "baseline": 0, "finetune": 1, "variant": 2}


def migrate(root: Path | None = None, cache: Path | None = None, log=print,
            checkpoints: bool = True) -> dict[str, str]:
    """Rename every run under `root` (default: the user's own) whose key is not its schema-2 key, with its
    ranks, weights (their meta rewritten, the record's sha256 updated) and, with `checkpoints`, this
    machine's checkpoints under `cache` (default: paths.runs_dir()). A stage-2 run follows its stage-1
    run's new key, a variant its parent's. A run is never renamed over another run's record: it is left
    as it is, and said so. A record written before ranks were hashed gets the sha256 of its ranks, once
    they give its metrics. Idempotent; a kill at any point leaves a store that the same migration, run
    again, completes. Returns {old key: new key}."""
    root = root or paths.output_dir()
    cache = (cache or paths.runs_dir()) if checkpoints else None
    start = time.time()
    store.sweep(root)
    renamed: dict[str, str] = {}
    hashed = 0
    records = sorted(ledger.records(root), key=lambda r: STAGE_ORDER.get(r.get("stage"), 3))
    before = _renamed_before(records)
    for record in records:
        config = _stopping_rule(_follow(record["config"], {**before, **renamed}), record)
        new = run_key(config)
        if new != record["key"]:
            if _rename(root, cache, record, config, new, log):
                renamed[record["key"]] = new
        elif config != record["config"] or "ranks" not in record:  # the rule, the ranks' sha256 written down
            hashed += "ranks" not in record
            ledger.put({**record, "config": config, "ranks": store.ranks_entry(record, root)}, root)
    _remove_leftovers(root, start)
    if cache is not None:
        _move_unfinished(cache, [root, paths.reference_dir()], log)
    if hashed:
        log(f"{hashed} records under {root} now name the sha256 of their ranks")
    return renamed


def _renamed_before(records: list[dict]) -> dict[str, str]:
    """{old key: new key} of the runs an earlier migration renamed (one killed before it renamed the runs
    that build on them), where no record holds the old key again (a run trained under it since)."""
    held = {record["key"] for record in records}
    return {old: record["key"] for record in records for old in record.get("previous_keys", []) if old not in held}


def _rename(root: Path, cache: Path | None, record: dict, config: dict, new: str, log) -> bool:
    """Move one run to its new key: its files copied under the new key, the new record, then the old
    record and its files removed. False, and said so, if another run's record holds the new key."""
    old = record["key"]
    held = ledger.get(new, root)
    if held is not None and old not in held.get("previous_keys", []):
        log(f"{old} not renamed: its new key {new} is held by another record ({held['model']} on "
            f"{held['dataset']}, seed {held['seed']}); delete one of the two records and migrate again")
        return False
    if held is None:  # else a migration killed after writing the new record: only removals are left
        held = _renamed(root, record, config, new)
        ledger.put(held, root)
    if cache is not None:
        _move_checkpoints(cache, old, new)
    atomic.remove(paths.ledger_dir(root) / f"{old}.json")
    _remove_files(root, old)
    log(f"{old} -> {new}  {held['model']} on {held['dataset']}, seed {held['seed']} ({held['profile']})")
    return True


def _renamed(root: Path, record: dict, config: dict, new: str) -> dict:
    """The record of a run under its new key, its ranks and weights (checked first) written under it."""
    old = record["key"]
    renamed = {**record, "key": new, "config": config, "previous_keys": record.get("previous_keys", []) + [old]}
    if "parent" in record:
        renamed["parent"] = config["parent"]
    if config.get("train", {}).get("valid_decimals", 4) is None and "valid_decimals" not in record["model"]:
        renamed["model"] += " [valid_decimals=None]"  # as a run started with that setting is named
    ranks = atomic.copy(store.ranks_path(record, root), paths.ranks_dir(root) / f"{new}.npz")
    renamed["ranks"] = store.file_entry(ranks, root)
    if record.get("weights"):
        source = store.weights_path(record, root)
        if source is None:
            raise FileNotFoundError(f"weights of run {old} are missing: {root / record['weights']['file']}")
        state = torch.load(source, map_location="cpu", weights_only=True)
        renamed["weights"] = store.export_weights(new, {**state["meta"], "key": new}, state["model"], root)
    return renamed


def _remove_files(root: Path, key: str) -> None:
    atomic.remove(paths.ranks_dir(root) / f"{key}.npz")
    atomic.remove(paths.weights_dir(root) / f"{key}.pt")


def _remove_leftovers(root: Path, start: float) -> None:
    """Files under a key that a record lists among its previous keys, which no record holds any more: a
    migration killed between removing the old record and its files left them. A file written since this
    migration started (a run under way) is left alone."""
    held = {record["key"]: record for record in ledger.records(root)}
    for old in {old for record in held.values() for old in record.get("previous_keys", [])} - set(held):
        for path in (paths.ranks_dir(root) / f"{old}.npz", paths.weights_dir(root) / f"{old}.pt"):
            if path.exists() and path.stat().st_mtime < start:
                atomic.remove(path)


def _move_unfinished(cache: Path, roots: list[Path], log) -> None:
    """Checkpoints of runs still under way (no record of their own yet) under a key that a migrated record
    lists among its previous keys: moved to that record's key, so that the run resumes."""
    for root in dict.fromkeys(roots):
        for record in ledger.records(root):
            for old in record.get("previous_keys", []):
                if _move_checkpoints(cache, old, record["key"]):
                    log(f"checkpoints {old} -> {record['key']}  ({record['model']}, under way)")


def _stopping_rule(config: dict, record: dict) -> dict:
    """`config` with the stopping rule its run used written down, if it predates the setting."""
    from rasekit.stages.loop import TrainConfig, replay_stopping
    if (config.get("stage") not in ("pretrain", "finetune") or "valid_decimals" in config["train"]
            or not record.get("history")):  # no curve to replay: nothing to tell
        return config
    official = TrainConfig.of(config["train"])  # the default rule
    kept = replay_stopping(record["history"], official) == (record["best_epoch"], record["epochs_run"])
    return {**config, "train": {**config["train"], "valid_decimals": official.valid_decimals if kept else None}}


def _follow(config: dict, renamed: dict[str, str]) -> dict:
    """`config` with the keys of the runs it builds on replaced by their new keys."""
    config = json.loads(json.dumps(config))  # a deep copy
    for field in ("backbone_key", "parent"):
        if config.get(field) in renamed:
            config[field] = renamed[config[field]]
    return config


def _move_checkpoints(cache: Path, old: str, new: str) -> bool:
    """Move a run's checkpoint folder to its new key, the key inside each checkpoint first (a kill between
    the two leaves a folder that the next migration moves); False if there is none to move (or the new
    one exists)."""
    from rasekit.stages.loop import save_atomic
    if not (cache / old).is_dir() or (cache / new).exists():
        return False
    atomic.sweep(cache / old)
    for path in (cache / old).glob("*.pt"):
        state = torch.load(path, map_location="cpu", weights_only=True)
        save_atomic({**state, "meta": {**state["meta"], "key": new}}, path)
    atomic.rename(cache / old, cache / new)
    return True
