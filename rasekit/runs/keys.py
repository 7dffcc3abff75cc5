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
import shutil
from pathlib import Path

import torch

from rasekit.runs import ledger, paths
from rasekit.runs.provenance import config_hash

SCHEMA = 2


def defaults(stage: str) -> dict:
    """The default settings of a stage's configuration (settings absent from a key take these values)."""
    from rasekit.runs.experiments import FINETUNE, PRETRAIN, RAM
    return {"pretrain": {"users": None, "max_len": 50, "encoder_params": {}, "objective_params": {},
                         "train": PRETRAIN},
            "finetune": {"users": None, "ram": RAM, "partition": None, "train": FINETUNE},
            "baseline": {"users": None}}.get(stage, {})


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
    run's new key, a variant its parent's. Idempotent; returns {old key: new key}."""
    root = root or paths.output_dir()
    cache = (cache or paths.runs_dir()) if checkpoints else None
    renamed: dict[str, str] = {}
    records = sorted(ledger.records(root), key=lambda r: STAGE_ORDER.get(r.get("stage"), 3))
    for record in records:
        config = _stopping_rule(_follow(record["config"], renamed), record)
        new = run_key(config)
        old = record["key"]
        if new == old:
            if config != record["config"]:  # the rule written down; same key, same files
                ledger.put({**record, "config": config}, root)
            continue
        renamed[old] = new
        record = {**record, "key": new, "config": config,
                  "previous_keys": record.get("previous_keys", []) + [old]}
        if "parent" in record:
            record["parent"] = config["parent"]
        if config.get("train", {}).get("valid_decimals", 4) is None and "valid_decimals" not in record["model"]:
            record["model"] += " [valid_decimals=None]"  # as a run started with that setting is named
        _move_files(root, cache, old, new, record)
        ledger.put(record, root)
        (paths.ledger_dir(root) / f"{old}.json").unlink()
        log(f"{old} -> {new}  {record['model']} on {record['dataset']}, seed {record['seed']} ({record['profile']})")
    if cache is not None:
        _move_unfinished(cache, [root, paths.reference_dir()], log)
    return renamed


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


def _move_files(root: Path, cache: Path, old: str, new: str, record: dict) -> None:
    ranks = paths.ranks_dir(root) / f"{old}.npz"
    if ranks.exists():
        ranks.rename(paths.ranks_dir(root) / f"{new}.npz")
    if record.get("weights"):
        from rasekit.runs import store
        source = root / record["weights"]["file"]
        state = torch.load(source, map_location="cpu", weights_only=True)
        record["weights"] = store.export_weights(new, {**state["meta"], "key": new}, state["model"], root)
        source.unlink()
    if cache is not None:
        _move_checkpoints(cache, old, new)


def _move_checkpoints(cache: Path, old: str, new: str) -> bool:
    """Move a run's checkpoint folder to its new key, the key inside each checkpoint too; False if there
    is none to move (or the new one exists)."""
    from rasekit.stages.loop import save_atomic
    if not (cache / old).is_dir() or (cache / new).exists():
        return False
    shutil.move(str(cache / old), str(cache / new))
    for path in (cache / new).glob("*.pt"):
        state = torch.load(path, map_location="cpu", weights_only=True)
        save_atomic({**state, "meta": {**state["meta"], "key": new}}, path)
    return True
