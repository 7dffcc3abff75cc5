"""Run keys: a key covers what differs from the defaults plus a schema version; every committed record is
found under the key the kit computes for it today; schema-1 runs migrate without losing any file."""
import json

import numpy as np
import pytest
import torch

from rasekit.evaluate import metrics
from rasekit.runs import experiments, keys, ledger, plan, profiles, store
from rasekit.files import paths
from rasekit.runs.provenance import config_hash
from rasekit.stages.loop import load_checkpoint, save_atomic


def test_a_setting_added_later_with_its_default_keeps_every_key(monkeypatch):
    config = experiments.pretrain_config("Beauty", "sasrec", "duorec", 1, profiles.get("full"))
    key = keys.run_key(config)
    monkeypatch.setitem(experiments.PRETRAIN, "new_setting", 0.5)  # a new default ...
    later = experiments.pretrain_config("Beauty", "sasrec", "duorec", 1, profiles.get("full"))
    assert later["train"]["new_setting"] == 0.5 and keys.run_key(later) == key  # ... same key
    later["train"]["new_setting"] = 0.7  # changing it is a different run
    assert keys.run_key(later) != key
    assert keys.run_key({**config, "seed": 2}) != key


def test_every_committed_record_is_found_under_its_key():
    root = paths.REPO_ROOT
    records = ledger.records(root)
    assert len(records) >= 20
    by_key = {r["key"]: r for r in records}
    for record in records:
        assert keys.run_key(record["config"]) == record["key"], record["model"]
        assert ledger.get(record["key"], root) == record
        assert (paths.ranks_dir(root) / f"{record['key']}.npz").exists()
        if record["stage"] == "finetune":
            assert record["config"]["backbone_key"] in by_key  # its stage-1 run is there too
        if record.get("weights"):
            assert store.weights_path(record, root) is not None  # sha256 checked
    # the runs the notebooks ask for are found under the keys `plan` computes today, or, for the runs
    # whose rerun under the official stopping rule is still to come, under the exact rule's key
    from dataclasses import replace
    for key, step in plan.build("full", ["01_main_results"]).items():
        exact = replace(step.run, train=(("valid_decimals", None),)).key
        assert key in by_key or exact in by_key, step.run.label()


RANKS = np.arange(1, 4)  # the ranks of the hand-made runs below; their records' metrics are what these give


def _schema_1(root, cache, record: dict, with_weights: bool) -> dict:
    """Store `record` the way schema 1 did: keyed by the hash of its whole configuration, the ranks
    without their sha256."""
    old = config_hash(record["config"])
    record = {**record, "key": old, "metrics": metrics(RANKS)}
    np.savez_compressed(paths.ranks_dir(root) / f"{old}.npz", test=RANKS, valid=RANKS)
    meta = {"key": old, "dataset": record["dataset"], "n_items": 5}
    if with_weights:
        record["weights"] = store.export_weights(old, meta, {"w": torch.ones(2)}, root)
    save_atomic({"meta": meta, "model": {"w": torch.ones(2)}, "loop": {"epoch": 3}}, cache / old / "last.pt")
    ledger.put(record, root)
    return record


def test_schema_1_runs_migrate_with_their_files_and_a_second_migration_does_nothing(tmp_path):
    root, cache = tmp_path / "store", tmp_path / "cache"
    paths.ranks_dir(root).mkdir(parents=True)
    from .test_ledger import record as make_record
    stage1_config = experiments.pretrain_config("Beauty", "sasrec", "duorec", 1, profiles.get("full"))
    stage1 = _schema_1(root, cache, {**make_record(), "stage": "pretrain", "config": stage1_config,
                                     "profile": "full"}, with_weights=True)
    stage2_config = experiments.finetune_config({"key": stage1["key"], "dataset": "Beauty"}, "duorec", 1,
                                                profiles.get("full"))
    stage2 = _schema_1(root, cache, {**make_record(), "stage": "finetune", "config": stage2_config,
                                     "profile": "full", "model": "RaSeRec(DuoRec)"}, with_weights=False)
    renamed = keys.migrate(root, cache, log=lambda *_: None)
    assert set(renamed) == {stage1["key"], stage2["key"]}
    new1, new2 = ledger.get(renamed[stage1["key"]], root), ledger.get(renamed[stage2["key"]], root)
    assert new1["previous_keys"] == [stage1["key"]] and new2["config"]["backbone_key"] == new1["key"]
    assert new2["key"] == keys.run_key(new2["config"])
    assert {r["key"] for r in ledger.records(root)} == {new1["key"], new2["key"]}  # none lost, none left
    for rec in (new1, new2):
        assert (paths.ranks_dir(root) / f"{rec['key']}.npz").exists()
        checkpoint = load_checkpoint(cache / rec["key"] / "last.pt", {"key": rec["key"]})
        assert checkpoint["loop"] == {"epoch": 3}  # resumable under the new key
    weights = store.weights_path(new1, root)  # new file, new sha256 in the record
    assert weights.name == f"{new1['key']}.pt" and load_checkpoint(weights, {"key": new1["key"]})
    assert not (root / stage1["weights"]["file"]).exists()
    assert keys.migrate(root, cache, log=lambda *_: None) == {}
    assert json.loads(paths.ledger_dir(root).joinpath(f"{new1['key']}.json").read_text()) == new1


def test_changed_compares_nested_settings():
    assert keys.changed({"train": {"lr": 1e-3, "epochs": 5}, "seed": 1}, {"train": {"lr": 1e-3, "epochs": 100}}) \
        == {"train": {"epochs": 5}, "seed": 1}
    assert keys.changed({"partition": None, "users": 300}, {"partition": None, "users": None}) == {"users": 300}


@pytest.mark.parametrize("stage", ["pretrain", "finetune", "baseline"])
def test_each_stage_has_defaults(stage):
    assert "users" in keys.defaults(stage)


def test_checkpoints_of_a_run_under_way_follow_the_record_that_lists_their_key(tmp_path, monkeypatch):
    from .test_ledger import record as make_record
    reference, own, cache = tmp_path / "reference", tmp_path / "own", tmp_path / "cache"
    monkeypatch.setenv("RASEKIT_REFERENCE", str(reference))
    ledger.put({**make_record(key="5" * 16), "previous_keys": ["4" * 16]}, reference)  # migrated there
    save_atomic({"meta": {"key": "4" * 16}, "model": {}, "loop": {"epoch": 5}}, cache / ("4" * 16) / "last.pt")
    assert keys.migrate(own, cache, log=lambda *_: None) == {}  # no record of its own yet
    assert not (cache / ("4" * 16)).exists()
    assert load_checkpoint(cache / ("5" * 16) / "last.pt", {"key": "5" * 16})["loop"] == {"epoch": 5}


def test_runs_recorded_before_the_stopping_rule_was_a_setting_are_marked_by_replaying_their_curve(tmp_path):
    from .test_ledger import record as make_record
    root = tmp_path / "store"
    paths.ranks_dir(root).mkdir(parents=True)
    made = {}
    for seed, scores in ((1, [0.1, 0.12001, 0.12004]), (2, [0.1, 0.12, 0.13])):
        config = experiments.pretrain_config("Beauty", "sasrec", "duorec", seed, profiles.get("full"),
                                             train={"epochs": 3})
        del config["train"]["valid_decimals"]  # as recorded before the setting
        history = [{"epoch": i, "MRR@10": s} for i, s in enumerate(scores)]
        rec = {**make_record(key=keys.run_key(config)), "seed": seed, "stage": "pretrain", "config": config,
               "history": history, "best_epoch": 2, "epochs_run": 3, "metrics": metrics(RANKS)}  # the exact rule's
        ledger.put(rec, root)
        np.savez_compressed(paths.ranks_dir(root) / f"{rec['key']}.npz", test=RANKS)
        made[seed] = rec
    renamed = keys.migrate(root, checkpoints=False, log=lambda *_: None)
    # seed 1: rounded, epoch 2 is no gain over epoch 1, so the official rule kept another epoch
    assert list(renamed) == [made[1]["key"]]
    exact = ledger.get(renamed[made[1]["key"]], root)
    assert exact["config"]["train"]["valid_decimals"] is None and exact["model"] == "DuoRec [valid_decimals=None]"
    assert (paths.ranks_dir(root) / f"{exact['key']}.npz").exists()
    official = experiments.pretrain_config("Beauty", "sasrec", "duorec", 1, profiles.get("full"), train={"epochs": 3})
    assert keys.run_key(official) == made[1]["key"] != exact["key"]  # the official run is still to train
    kept = ledger.get(made[2]["key"], root)  # seed 2: the same epochs either way, so the same key
    assert kept["config"]["train"]["valid_decimals"] == 4 and "previous_keys" not in kept
    assert keys.migrate(root, checkpoints=False, log=lambda *_: None) == {}
