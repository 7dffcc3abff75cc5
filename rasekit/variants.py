"""Test-time variants of a trained stage-2 run: the same frozen encoder and trained RAM, evaluated under a
change (K, the index and its nprobe, the memory bank restricted to a partition) without training again.

A variant is an evaluation, not a training run: seconds, cached as its own ledger record (stage
"variant") that names its parent run, with its per-instance ranks beside it. The variant that changes
nothing gives exactly the parent's test ranks (tests/test_variants.py)."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from . import experiments, ledger, paths, profiles, settings, store
from .evaluate import metrics
from .provenance import config_hash, git_commit, record as provenance
from .train import CheckpointError, check_shapes, evaluate_part, load_checkpoint

SCHEMA = 1  # bump when the meaning of a field changes, so old variant records are not reused


@dataclass(frozen=True)
class TestVariant:
    """What differs from the parent run at test time; None keeps the parent's setting."""
    k: int | None = None
    index: str | None = None
    nprobe: int | None = None
    partition: dict | None = None  # the train bank restricted as `experiments.partition_filter` says

    def __post_init__(self):
        if self.k is not None:
            settings.integer("k", self.k, 1, settings.RamConfig.K_MAX)
        if self.index is not None:
            settings.choice("index", self.index, settings.INDEX_KINDS)
        if self.nprobe is not None:
            settings.integer("nprobe", self.nprobe, 1)
        experiments.check_partition(self.partition)

    def changes(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


def _load_module(task, parent: dict) -> None:
    """The parent's trained RAM into `task.model` (stored weights, else this machine's checkpoint)."""
    path = store.weights_path(parent) or experiments.run_dir(parent["key"]) / "best.pt"
    if not path.exists():
        raise FileNotFoundError(f"no trained weights of {parent['model']} ({parent['key']}) here: "
                                f"{path}; rerun it with experiments.finetune to evaluate variants of it")
    state = load_checkpoint(path, {"key": parent["key"], "dataset": parent["dataset"]})
    check_shapes(path, state["model"], task.model)
    task.model.load_state_dict(state["model"])


def evaluate(parent: dict, variant: TestVariant, device=None, log=print) -> dict:
    """The ledger record of `variant` of the stage-2 run `parent` (its ledger record): reused if the
    ledger holds it, else evaluated now."""
    from .finetune import RaSeRecTask

    if parent.get("stage") != "finetune":
        raise ValueError(f"run {parent['key']} is a {parent.get('stage')} run; variants are of stage-2 runs")
    config = {"stage": "variant", "schema": SCHEMA, "parent": parent["key"], "variant": variant.changes()}
    key = config_hash(config)
    cached = ledger.get(key)
    if cached:
        log(f"reusing {cached['model']} ({key})")
        return cached
    prof = profiles.get(parent["profile"])
    base = ledger.get(parent["config"]["backbone_key"])
    if base is None:
        raise CheckpointError(f"the stage-1 run {parent['config']['backbone_key']} of {parent['key']} is "
                              f"not in the ledger")
    device = device or experiments.default_device()
    data = experiments.load_data(parent["dataset"], prof)
    ram = {**parent["config"]["ram"], **{k: v for k, v in variant.changes().items() if k != "partition"}}
    partition = variant.partition if variant.partition is not None else parent["config"]["partition"]
    start, commit = time.perf_counter(), git_commit()
    task = RaSeRecTask(experiments.load_pretrained(base, device), data, **ram, device=device,
                       seed=parent["seed"], bank_filter=experiments.partition_filter(partition, data))
    _load_module(task, parent)
    task.before_test()
    ranks = evaluate_part(task, "test", chunk=1024)
    name = parent["model"] + " @test " + ", ".join(f"{k}={v}" for k, v in sorted(variant.changes().items()))
    log(f"evaluated {name} in {time.perf_counter() - start:.1f} s")
    paths.ranks_dir().mkdir(parents=True, exist_ok=True)
    np.savez_compressed(paths.ranks_dir() / f"{key}.npz", test=ranks.astype(np.int32))
    rec = {"key": key, "stage": "variant", "dataset": parent["dataset"], "model": name, "seed": parent["seed"],
           "profile": parent["profile"], "parent": parent["key"], "config": config, "metrics": metrics(ranks),
           "bank_size": len(task.bank),
           "provenance": provenance([parent["dataset"]], device=device, commit=commit,
                                    wall_time_s=time.perf_counter() - start)}
    ledger.put(rec)
    return rec
