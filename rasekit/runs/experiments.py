"""Cached, configuration-hashed runs that every notebook and the command line share.

A run's configuration (dataset, user sample, encoder, objective, training settings, seed) is hashed;
the hash names its ledger record (metrics and provenance, under results/ledger) and its run folder
(checkpoints and per-instance ranks, under the cache). Asking for a run that is in the ledger returns
the record instead of training again; an interrupted run resumes from its last checkpoint. Under a profile
that takes stage 1 from the reference (`default`), a stage-1 run or training-free baseline that the user's
store lacks is copied from the reference, checked and marked, instead of trained (`from_reference`)."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from rasekit import data as datasets
from rasekit.data import sources
from rasekit.data.noise import noisy_everywhere, training_noise
from rasekit.memory import partitions
from rasekit.runs import ledger, profiles, store, threads
from rasekit.files import paths
from rasekit import settings
from rasekit.runs.defaults import FINETUNE, PRETRAIN, RAM
from rasekit.runs.keys import run_key
from rasekit.runs.provenance import git_commit, record as provenance
from rasekit.evaluate import metrics, target_ranks
from rasekit.stages.loop import TrainConfig, check_shapes, fit, load_checkpoint

# Stage-2 backbones: the stage-1 run (encoder, objective) each one starts from.
BACKBONES = {"duorec": ("sasrec", "duorec"), "sasrec": ("sasrec", "ce"), "cl4srec": ("sasrec", "cl4srec"),
             "gru4rec": ("gru4rec", "ce")}
MODEL_NAMES = {("sasrec", "ce"): "SASRec", ("sasrec", "bpr"): "SASRec (BPR)", ("bert4rec", "cloze"): "BERT4Rec",
               ("sasrec", "duorec"): "DuoRec",
               ("sasrec", "cl4srec"): "CL4SRec", ("gru4rec", "ce"): "GRU4Rec",
               ("gru4rec", "duorec"): "GRU4Rec+DuoRec", ("gru4rec", "cl4srec"): "GRU4Rec+CL4SRec"}


def check_train(train: dict | None, defaults: dict) -> dict:
    """Training overrides, each checked by name, type and range against TrainConfig (over `defaults`)."""
    TrainConfig.of(train, defaults)
    return dict(train or {})


def variant_label(given: dict, defaults: dict) -> str:
    """The settings a run changes, e.g. ' [batch_size=1024]' ('' for none). Tables group runs by model
    name, so the label keeps runs with different settings from being pooled over seeds."""
    changed = [f"{k}={v}" for k, v in sorted(given.items()) if k not in defaults or defaults[k] != v]
    return f" [{', '.join(changed)}]" if changed else ""


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_data(dataset: "str | dict", profile: profiles.Profile) -> datasets.SplitData:
    """A dataset under the profile: by name or file path, or a run's configuration (which names one, and
    the run's training noise if it has one)."""
    if not isinstance(dataset, dict):
        return sources.resolve(dataset).load(users=profile.users)
    return noisy_everywhere(sources.of_config(dataset).load(users=profile.users), dataset.get("noise"))


def noise_label(noise: dict | None) -> dict:
    """A run's training noise for its name (see `variant_label`): {} when clean."""
    if noise is None:
        return {}
    return {"trained on noise": noise["ratio"], **({"noise mode": noise["mode"]} if noise["mode"] != "replace" else {}),
            **({"noise seed": noise["seed"]} if noise["seed"] else {})}


def pretrain_config(dataset: str, encoder: str, objective: str, seed: int, profile: profiles.Profile,
                    encoder_params: dict | None = None, objective_params: dict | None = None,
                    train: dict | None = None, noise: dict | None = None) -> dict:
    """The configuration (hashed into the run's key) of a stage-1 run; `noise`: its training noise as
    `training_noise` returns it (absent when clean, so clean runs keep their keys)."""
    encoder_params = dict(encoder_params or {})
    if objective == "cl4srec":  # its item masking needs a mask-token row after the items
        encoder_params.setdefault("mask_token", True)
    return {"stage": "pretrain", **sources.resolve(dataset).config, "users": profile.users,
            "max_len": 50, "encoder": encoder, "encoder_params": encoder_params,
            "objective": objective, "objective_params": dict(objective_params or {}),
            "train": {**PRETRAIN, **profile.pretrain, **(train or {})}, "seed": seed,
            **({"noise": noise} if noise else {})}


def build_encoder(config: dict, n_items: int):
    from rasekit.models.backbones import make_encoder
    return make_encoder(config["encoder"], n_items, **config["encoder_params"])


def run_dir(key: str) -> Path:
    return paths.runs_dir() / key


def pretrain(dataset: str = "Beauty", encoder: str = "sasrec", objective: str = "duorec", seed: int = 1,
             profile: str | None = None, encoder_params: dict | None = None,
             objective_params: dict | None = None, train: dict | None = None, noise: dict | None = None,
             need_checkpoint: bool = False, reuse_only: bool = False, device=None, log=print) -> dict | None:
    """Stage 1: train (or reuse) an encoder; returns its ledger record. `noise`: train (and validate and
    test) on noisy input sequences, {"ratio", "mode", "seed"} (`rasekit.data.noise.training_noise`).
    With `reuse_only`, never trains: returns the ledger record or None."""
    from rasekit.models.objectives import make_objective
    from rasekit.stages.pretraining import PretrainTask

    from rasekit.models.backbones import ENCODERS
    from rasekit.models.objectives import OBJECTIVES

    prof = profiles.get(profile)
    settings.seed(seed)
    settings.choice("encoder", encoder, tuple(ENCODERS))
    settings.choice("objective", objective, tuple(OBJECTIVES))
    if (encoder == "bert4rec") != (objective == "cloze"):
        raise settings.SettingsError(f"encoder={encoder!r} with objective={objective!r} is not allowed: "
                                     "the cloze objective and the bidirectional BERT4Rec go together")
    train = check_train(train, {**PRETRAIN, **prof.pretrain})
    noise = training_noise(noise)
    config = pretrain_config(dataset, encoder, objective, seed, prof, encoder_params, objective_params, train,
                             noise)
    key = run_key(config)
    _take_from_reference(config, key, prof, need_checkpoint and loaded_again(config), reuse_only, log)
    done, cached = _reusable(key, prof, need_checkpoint, reuse_only, log)
    if done:
        return cached
    data = load_data(config, prof)
    device = device or default_device()
    torch.manual_seed(seed)  # the encoder's initial weights depend on the seed
    model = build_encoder(config, data.n_items)
    task = PretrainTask(model, make_objective(objective, **config["objective_params"]), data, device)
    meta = {"key": key, "dataset": config["dataset"], "n_items": data.n_items}
    commit, start = git_commit(), time.perf_counter()
    name = MODEL_NAMES.get((encoder, objective), f"{encoder}+{objective}") + variant_label(
        {**(encoder_params or {}), **(objective_params or {}), **train, **noise_label(noise)},
        {**PRETRAIN, **prof.pretrain})
    result = fit(task, TrainConfig(**config["train"]), run_dir(key), meta, seed, log=log,
                 threads=threads.Claim(), name=f"{name} (stage 1) on {config['dataset']}, seed {seed}")
    return _finish(key, config, name, prof, result, device, time.perf_counter() - start, commit, task, meta)


def held(key: str, prof: profiles.Profile) -> dict | None:
    """The user's record of run `key` that a run of `prof` may reuse. A profile that trains everything
    itself (`full`) does not reuse a run taken from the reference, nor one trained under a profile that
    takes stage 1 from there (a stage-2 run of it sits on the reference's encoder): it trains its own,
    which replaces that record."""
    record = ledger.get(key)
    if record is None or prof.from_reference:
        return record
    made_of_reference = record.get("adopted") or getattr(profiles.PROFILES.get(record["profile"]),
                                                         "from_reference", False)
    return None if made_of_reference else record


def from_reference(config: dict, key: str, prof: profiles.Profile) -> dict | None:
    """The reference's record that `prof` takes instead of training run `key` (configuration `config`):
    under a profile that takes stage 1 from the reference, a stage-1 run or training-free baseline the
    reference holds, with its weights where the run is loaded again (stage 2 loads a backbone). None
    otherwise, and when the output root is the reference itself."""
    if not prof.from_reference or config["stage"] not in ("pretrain", "baseline") or paths.is_reference():
        return None
    record = ledger.get(key, paths.reference_dir())
    if record is None or (config["stage"] == "pretrain" and loaded_again(config) and not record.get("weights")):
        return None
    return record


def _take_from_reference(config: dict, key: str, prof: profiles.Profile, need_weights: bool, reuse_only: bool,
                         log) -> None:
    """Copy run `key` from the reference into the user's store, if `prof` takes it from there
    (`from_reference`) and the store lacks it, or holds it taken from the reference without the weights
    that are needed now. Its files are checked against their sha256 first: a changed one is refused by
    name (`store.adopt`). A run the reference lacks is trained here, and said so."""
    if not prof.from_reference or paths.is_reference():
        return
    mine = ledger.get(key)
    if mine is not None and not (mine.get("adopted") and need_weights and not has_weights(mine)):
        return
    record = from_reference(config, key, prof)
    if record is None:
        if not reuse_only:
            log(f"the reference does not hold run {key} (or not with the weights stage 2 loads): training it here")
        return
    record = store.adopt(record)
    seed = "" if config["stage"] == "baseline" else f" seed {record['seed']}"
    log(f"taken from the reference, not trained here: {record['model']} on {record['dataset']}{seed} ({key}, its "
        f"{record['profile']} run of commit {record['adopted']['commit'][:8]}), ranks"
        f"{' and weights' if record.get('weights') else ''} checked against their sha256")


def _reusable(key: str, prof: profiles.Profile, need_checkpoint: bool, reuse_only: bool,
              log) -> tuple[bool, dict | None]:
    """(whether to stop here, the ledger record to return). A run in the ledger is reused (`held`); one
    whose weights are needed but not here is trained again with its recorded settings (and says so),
    unless `reuse_only`, which never trains."""
    cached = held(key, prof)
    if cached and (not need_checkpoint or has_weights(cached)):
        log(f"reusing {cached['model']} on {cached['dataset']} seed {cached['seed']} ({key})")
        return True, cached
    if cached and not reuse_only:
        log(f"no weights of {cached['model']} on {cached['dataset']} seed {cached['seed']} ({key}) here: "
            f"training it again with its recorded settings; the new run replaces its record")
    return reuse_only, cached if reuse_only else None


def loaded_again(config: dict) -> bool:
    """Whether the analyses load this run's model again: every stage-2 module and every stage-1 backbone
    a stage 2 can start from. The others (SASRec with BPR, BERT4Rec) only feed a table: ranks suffice."""
    return config["stage"] == "finetune" or (config["encoder"], config["objective"]) in BACKBONES.values()


def _finish(key, config, name, prof, result, device, wall, commit, task, meta) -> dict:
    """Store a finished run: ranks, weights (for profiles whose models are loaded again), then the record."""
    ranks_file = store.save_ranks(key, {"test": result["test_ranks"], "valid": result["valid_ranks"]})
    kept = None
    if task is not None and prof.name in store.KEEP_WEIGHTS and loaded_again(config):  # best epoch's weights
        kept = store.export_weights(key, meta, {k: v.cpu() for k, v in task.model.state_dict().items()})
    rec = {"key": key, "stage": config["stage"], "dataset": config["dataset"], "model": name,
           "seed": config["seed"], "profile": prof.name, "config": config,
           "metrics": result["metrics"], "valid_metrics": result["valid_metrics"],
           "best_epoch": result["best_epoch"], "epochs_run": result["epochs_run"],
           "history": result["history"], "ranks": ranks_file, **({"weights": kept} if kept else {}),
           "provenance": provenance([sources.of_config(config)], device=device, wall_time_s=wall, commit=commit,
                                    train_seconds=round(result["train_seconds"], 1), **_cpu(result, device),
                                    **_resumed(result))}
    ledger.put(rec)
    return rec


def _cpu(result: dict, device) -> dict:
    """The CPU time a training on the CPU took (all threads; time paused or waiting not counted), where
    known."""
    cpu = result.get("cpu_seconds")
    return {} if cpu is None or torch.device(device).type != "cpu" else {"train_cpu_seconds": round(cpu, 1)}


def _resumed(result: dict) -> dict:
    """A resumed run says after which epochs it resumed: its commit and wall time are the last process's,
    its train_seconds the sum over all of them."""
    after = result.get("resumed_after")
    return {"resumed_after_epochs": after} if after else {}


def finetune(dataset: str = "Beauty", backbone: str = "duorec", seed: int = 1, profile: str | None = None,
             ram: dict | None = None, train: dict | None = None, partition: dict | None = None,
             pretrain_seed: int | None = None, pretrain_train: dict | None = None, noise: dict | None = None,
             reuse_only: bool = False, need_checkpoint: bool = False, device=None, log=print) -> dict | None:
    """Stage 2: RaSeRec on a frozen stage-1 encoder (trained first if the ledger lacks it); returns the
    ledger record. The stage-1 run uses the same seed unless `pretrain_seed` is given, and the official
    training settings changed by `pretrain_train`. With `reuse_only`, never trains: returns the ledger
    record or None. With `need_checkpoint`, a run whose trained module is not here is trained again with
    its recorded settings (and says so). `noise`: both stages train on noisy data (see `pretrain`). Every
    setting of both stages is checked before any work starts."""
    from rasekit.stages.finetuning import RaSeRecTask

    settings.choice("backbone", backbone, tuple(BACKBONES))
    prof = profiles.get(profile)
    settings.seed(seed)
    if pretrain_seed is not None:
        settings.integer("pretrain_seed", pretrain_seed, 0, settings.SEED_MAX)
    ram_config = settings.RamConfig.of(ram, RAM)
    train = check_train(train, {**FINETUNE, **prof.finetune})
    pretrain_train = check_train(pretrain_train, {**PRETRAIN, **prof.pretrain})
    partitions.check(partition)
    noise = training_noise(noise)
    device = device or default_device()
    encoder_name, objective = BACKBONES[backbone]
    stage1 = dict(dataset=dataset, encoder=encoder_name, objective=objective, seed=pretrain_seed or seed,
                  profile=prof.name, train=pretrain_train, noise=noise, device=device, log=log)
    base = pretrain(**{**stage1, "log": lambda *_: None}, reuse_only=True)  # quiet: logged below
    if base is None:
        if reuse_only:
            return None
        # the bank must hold at least K memories: the data is cheap to check, stage 1 is not
        _check_k(ram_config.k, load_data(dataset, prof))  # noise keeps the number of instances
        base = pretrain(**stage1)
    config = finetune_config(base, backbone, seed, prof, ram, train, partition)
    key = run_key(config)
    done, cached = _reusable(key, prof, need_checkpoint, reuse_only, log)
    if done:
        return cached
    base = pretrain(**stage1, need_checkpoint=True)  # the weights, retrained if this cache lacks them
    data = load_data(config, prof)
    commit, start = git_commit(), time.perf_counter()
    task = RaSeRecTask(load_pretrained(base, device), data, ram_config, device=device, seed=seed,
                       bank_filter=partitions.bank_filter(partition, data))
    meta = {"key": key, "dataset": config["dataset"], "n_items": data.n_items}
    name = f"RaSeRec({base['model']})" + variant_label(
        {**(ram or {}), **train, **({"partition": partition} if partition else {}), **noise_label(noise),
         **({"stage-1 seed": base["seed"]} if base["seed"] != seed else {})},
        {**RAM, **FINETUNE, **prof.finetune})
    result = fit(task, TrainConfig(**config["train"]), run_dir(key), meta, seed, log=log,
                 threads=threads.Claim(), name=f"{name} (stage 2) on {config['dataset']}, seed {seed}")
    return _finish(key, config, name, prof, result, device, time.perf_counter() - start, commit, task, meta)


def finetune_config(base: dict, backbone: str, seed: int, prof: profiles.Profile, ram: dict | None = None,
                    train: dict | None = None, partition: dict | None = None) -> dict:
    """The configuration (hashed into the run's key) of a stage-2 run on the stage-1 run `base` (its
    ledger record, or a dict with its "key", its data's `Source.config` and its training noise, if any):
    stage 2 trains on the same data as its stage 1, noise included."""
    data = {k: v for k, v in base.get("config", base).items()
            if k in ("dataset", "data_file", "location", "noise")}
    return {"stage": "finetune", **data, "users": prof.users,
            "backbone": backbone, "backbone_key": base["key"], "ram": {**RAM, **(ram or {})},
            "partition": partition, "train": {**FINETUNE, **prof.finetune, **(train or {})}, "seed": seed}


def _check_k(k: int, data: datasets.SplitData) -> None:
    """K may not exceed the memories there are (one per training instance)."""
    if k > len(data.train):
        raise settings.SettingsError(f"k={k} is not allowed: the memory bank of {data.name} holds only "
                                     f"{len(data.train)} memories; expected k <= {len(data.train)}")


def trained_weights(record: dict, root: Path | None = None) -> Path | None:
    """The file of a finished run's trained weights: its stored weights under `root` (default: the user's
    own; sha256 checked), else, in the user's own store, this machine's best checkpoint, but only if that
    checkpoint's run is the one recorded (it ran as many epochs and kept the same best epoch): a run
    trained again is under way under the same key, and its best checkpoint so far is not the recorded model."""
    stored = store.weights_path(record, root)
    if stored is not None or (root is not None and root != paths.output_dir()):
        return stored
    best, last = run_dir(record["key"]) / "best.pt", run_dir(record["key"]) / "last.pt"
    if not (best.exists() and last.exists()):
        return None
    loop = load_checkpoint(last, {"key": record["key"]}).get("loop", {})
    finished = loop.get("epoch", -2) + 1 == record.get("epochs_run") and loop.get("best_epoch") == record.get("best_epoch")
    return best if finished else None


def has_weights(record: dict, root: Path | None = None) -> bool:
    """Whether the trained weights of a finished run are here (see `trained_weights`)."""
    return trained_weights(record, root) is not None


def loadable(record: dict, root: Path | None = None) -> bool:
    """Whether a run's trained model can be loaded here: its weights, and a stage-2 run's backbone's."""
    base = ledger.get(record["config"]["backbone_key"], root) if record["stage"] == "finetune" else None
    return has_weights(record, root) and (base is None or has_weights(base, root))


def load_pretrained(record: dict, device=None, checkpoint: str = "best.pt", root: Path | None = None):
    """The encoder of a stage-1 ledger record, in eval mode: its trained weights (`trained_weights`, under
    `root`), or with checkpoint="last.pt" this machine's last checkpoint; the run, dataset and shapes checked."""
    path = trained_weights(record, root) if checkpoint == "best.pt" else run_dir(record["key"]) / checkpoint
    if path is None or not path.exists():
        raise FileNotFoundError(f"no trained weights of run {record['key']} here, stored or from a finished run "
                                f"of this machine; experiments.pretrain(..., need_checkpoint=True) retrains it")
    weights = load_checkpoint(path, {"key": record["key"], "dataset": record["config"]["dataset"]})
    encoder = build_encoder(record["config"], weights["meta"]["n_items"])
    check_shapes(path, weights["model"], encoder)  # the same check as a resume: one clear error
    encoder.load_state_dict(weights["model"])
    return encoder.to(device or default_device()).eval()


def ranks(record: dict, part: str = "test", root: Path | None = None) -> np.ndarray:
    """Per-instance ranks of a finished run (for group metrics and paired tests), from the store under
    `root` (default: the user's own), checked against the record (`store.ranks_path`)."""
    return store.load_ranks(record, part, root)


def item_attributes(dataset: str) -> dict[int, list[int]] | None:
    """{item id: [attribute ids]} of a registered dataset (verified like its sequences); None for a file
    of the user's own, which has no attributes."""
    from rasekit.data import read_item_attributes, registry

    if sources.resolve(dataset).path:
        return None
    return read_item_attributes(registry.fetch(sources.resolve(dataset).name, files=("attributes",))["attributes"])


BASELINES = ("popularity", "transition")


def transition_settings(transition: dict | None):
    """The item-transition heuristic's settings: its defaults changed by `transition`, checked by name."""
    from rasekit.models import baselines

    return baselines.TransitionSettings(**settings.known(
        "transition", transition, [f for f in baselines.TransitionSettings.__dataclass_fields__]))


def baseline_config(dataset: str, name: str, prof: profiles.Profile, transition: dict | None = None) -> dict:
    """The configuration (hashed into the run's key) of a training-free baseline on `dataset`."""
    from dataclasses import asdict

    settings.choice("baseline", name, BASELINES)
    heuristic = transition_settings(transition)
    return {"stage": "baseline", **sources.resolve(dataset).config, "users": prof.users, "model": name,
            "transition": asdict(heuristic) if name == "transition" else None, "seed": 0}


def baseline(dataset: str = "Beauty", name: str = "transition", profile: str | None = None,
             transition: dict | None = None, reuse_only: bool = False, log=print) -> dict | None:
    """A training-free baseline (`rasekit.models.baselines`) on the test set, as a ledger run like the others:
    reused if the ledger holds it (seconds to compute otherwise). `transition`: settings of the
    item-transition heuristic that differ from its defaults."""
    from dataclasses import asdict

    from rasekit.models import baselines

    prof = profiles.get(profile)
    heuristic = transition_settings(transition)
    config = baseline_config(dataset, name, prof, transition)
    key = run_key(config)
    _take_from_reference(config, key, prof, False, reuse_only, log)
    cached = held(key, prof)
    if cached or reuse_only:
        if cached:
            log(f"reusing {cached['model']} on {cached['dataset']} ({key})")
        return cached
    commit, start = git_commit(), time.perf_counter()
    data = load_data(config, prof)
    if name == "popularity":
        model = baselines.Popularity(data)
    else:
        model = baselines.ItemTransition(data, item_attributes(dataset), heuristic)
    scorers = {"valid": model, "test": model}
    if name == "transition" and heuristic.valid_at_test:  # the test scored from the validation transitions too
        scorers["test"] = baselines.ItemTransition(data, item_attributes(dataset), heuristic, ("train", "valid"))
    ranks = {part: target_ranks(lambda i, inst=getattr(data, part), m=m: m.scores(inst.seqs[i], inst.lengths[i]),
                                getattr(data, part).targets, chunk=512) for part, m in scorers.items()}
    label = model.name + variant_label(transition or {}, asdict(baselines.TransitionSettings()))
    result = {"metrics": metrics(ranks["test"]), "valid_metrics": metrics(ranks["valid"]), "best_epoch": None,
              "epochs_run": 0, "history": [], "train_seconds": 0.0, "test_ranks": ranks["test"],
              "valid_ranks": ranks["valid"]}
    log(f"evaluated {label} on {config['dataset']} in {time.perf_counter() - start:.1f} s")
    return _finish(key, config, label, prof, result, torch.device("cpu"), time.perf_counter() - start, commit,
                   None, None)
