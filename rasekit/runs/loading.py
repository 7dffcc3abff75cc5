"""Trained runs back from a store, ready to use: the stage-2 task of a RaSeRec run (its frozen encoder,
its memory bank grown for the test, its trained RAM) or a stage-1 encoder, from the user's own runs or,
when they lack it, the reference. Every file is checked against its sha256 and its shapes first.

Runs are found by their ledger key, or by what a user knows (dataset, backbone, seed, settings), from
which the key is computed as training computes it."""
from __future__ import annotations

import json
from pathlib import Path

from rasekit.memory import partitions
from rasekit.runs import experiments, ledger, profiles
from rasekit.files import paths
from rasekit.runs.keys import run_key
from rasekit.settings import RamConfig
from rasekit.stages.loop import check_shapes, load_checkpoint


class MissingWeights(FileNotFoundError):
    """A run is recorded, but the trained weights needed to load it are not here."""


def _stage1_config(dataset: str, backbone: str, seed: int, profile: str) -> dict:
    """The configuration of the stage-1 run of `backbone` (a stage-2 backbone name, e.g. "duorec")."""
    encoder, objective = experiments.BACKBONES[backbone]
    return experiments.pretrain_config(dataset, encoder, objective, seed, profiles.get(profile))


def stage1_key(dataset: str, backbone: str, seed: int, profile: str = "full") -> str:
    """The ledger key of the stage-1 run of `backbone`."""
    return run_key(_stage1_config(dataset, backbone, seed, profile))


def stage2_key(dataset: str, backbone: str, seed: int, profile: str = "full", ram: dict | None = None) -> str:
    """The ledger key of RaSeRec on `backbone` with the official settings changed by `ram`."""
    base_config = _stage1_config(dataset, backbone, seed, profile)
    base = {"key": run_key(base_config), "config": base_config}
    return run_key(experiments.finetune_config(base, backbone, seed, profiles.get(profile), ram))


def locate(key: str) -> tuple[dict, Path]:
    """(the ledger record of run `key`, the store that holds it): the user's own runs first, then the
    reference. LookupError, naming the key, when neither holds it."""
    for root in dict.fromkeys([paths.output_dir(), paths.reference_dir()]):
        record = ledger.get(key, root)
        if record is not None:
            return record, root
    raise LookupError(f"no run {key} in your runs ({paths.output_dir()}) nor in the reference "
                      f"({paths.reference_dir()}); `python -m rasekit plan` lists the runs the notebooks use")


def train_command(record: dict) -> str:
    """The command line that trains a stage-2 run again (and keeps its weights)."""
    config = record["config"]
    ram = {k: v for k, v in config["ram"].items() if experiments.RAM.get(k, object()) != v}
    return (f"python -m rasekit finetune --dataset {config['dataset']} --backbone {config['backbone']} "
            f"--seed {config['seed']} --profile {record['profile']}"
            + (f" --ram '{json.dumps(ram)}'" if ram else ""))


def backbone_of(record: dict, root: Path) -> dict:
    """The ledger record of a stage-2 run's stage-1 run, from the same store."""
    base = ledger.get(record["config"]["backbone_key"], root)
    if base is None:
        raise LookupError(f"the stage-1 run {record['config']['backbone_key']} of run {record['key']} is not "
                          f"in {root}")
    return base


def check_loadable(record: dict, root: Path) -> None:
    """MissingWeights, naming the command that trains the run with its weights, if they are not here."""
    if not experiments.loadable(record, root):
        raise MissingWeights(
            f"{record['model']} on {record['dataset']}, seed {record['seed']} ({record['key']}) is recorded in "
            f"{root} with its ranks only: its trained weights (or its backbone's) are not kept there. "
            f"Train it with its weights: {train_command(record)}")


def stage2_task(record: dict, root: Path | None = None, device=None, data=None, ram: dict | None = None,
                partition: dict | None = None, keep_partition: bool = True):
    """The `RaSeRecTask` of the stage-2 run `record` (under `root`, default the user's own store) with its
    trained RAM loaded and the test-time bank ready. `ram` changes retrieval settings at test time (K, the
    index, nprobe); `partition` replaces the run's bank partition unless `keep_partition`. `data`: the
    run's data (loaded when None), possibly with noisy test inputs."""
    from rasekit.stages.finetuning import RaSeRecTask

    root = root or paths.output_dir()
    check_loadable(record, root)
    device = device or experiments.default_device()
    if data is None:
        data = experiments.load_data(record["config"], profiles.get(record["profile"]))
    settings = RamConfig.of({**record["config"]["ram"], **(ram or {})})
    partition = record["config"]["partition"] if keep_partition else partition
    encoder = experiments.load_pretrained(backbone_of(record, root), device, root=root)
    task = RaSeRecTask(encoder, data, settings, device=device, seed=record["seed"],
                       bank_filter=partitions.bank_filter(partition, data))
    path = experiments.trained_weights(record, root)
    state = load_checkpoint(path, {"key": record["key"], "dataset": record["dataset"]})
    check_shapes(path, state["model"], task.model)
    task.model.load_state_dict(state["model"])
    task.model.eval()
    task.before_test()
    return task


def stage1_encoder(record: dict, root: Path | None = None, device=None):
    """The trained encoder of the stage-1 run `record` (under `root`), in eval mode."""
    root = root or paths.output_dir()
    if not experiments.has_weights(record, root):
        raise MissingWeights(f"{record['model']} on {record['dataset']}, seed {record['seed']} ({record['key']}) is "
                             f"recorded in {root} without its trained weights")
    return experiments.load_pretrained(record, device, root=root)

