"""A run spec: one training run (stage 1, stage 2 or a training-free baseline) named by its settings, its
configuration and key as the ledger has them, its name in tables, and its execution (reused or trained)."""
from __future__ import annotations

from dataclasses import dataclass

from rasekit import settings
from rasekit.data import sources
from rasekit.data.noise import training_noise
from rasekit.runs import experiments, profiles
from rasekit.runs.keys import run_key
from rasekit.runs.record import ModelId


BASELINE_NAMES = {"popularity": "Popularity", "transition": "ItemTransition"}  # as rasekit.models.baselines names them


@dataclass(frozen=True)
class Run:
    """One run: stage 1 (`encoder` trained with `objective`), stage 2 (RaSeRec on the stage-1 run of
    `backbone`) or a training-free `baseline` (seconds, no seed). Settings not named here are the profile's."""
    stage: str                        # "pretrain", "finetune" or "baseline"
    dataset: str
    seed: int
    profile: str
    encoder: str = "sasrec"           # stage 1
    objective: str = "duorec"         # stage 1
    backbone: str | None = None       # stage 2
    train: tuple = ()                 # training settings that differ, as sorted (name, value) pairs
    noise: tuple = ()                 # training-data noise, as sorted (name, value) pairs (both stages)
    base_train: tuple = ()            # stage 2: the training settings of the stage-1 run that differ
    ram: tuple = ()                   # stage 2: the RAM settings that differ from the official ones
    baseline: str | None = None       # "popularity" or "transition"
    transition: tuple = ()            # the item-transition heuristic's settings that differ

    def __post_init__(self):
        settings.choice("stage", self.stage, ("pretrain", "finetune", "baseline"))
        if self.stage == "finetune":
            settings.choice("backbone", self.backbone, tuple(experiments.BACKBONES))
        if self.stage == "baseline":
            settings.choice("baseline", self.baseline, experiments.BASELINES)

    @property
    def base(self) -> "Run | None":
        """The stage-1 run a stage-2 run builds on."""
        if self.stage != "finetune":
            return None
        encoder, objective = experiments.BACKBONES[self.backbone]
        return Run("pretrain", self.dataset, self.seed, self.profile, encoder, objective,
                   train=self.base_train, noise=self.noise)

    @property
    def config(self) -> dict:
        """The run's configuration, as `experiments` hashes it into its key."""
        prof = profiles.get(self.profile)
        if self.stage == "baseline":
            return experiments.baseline_config(self.dataset, self.baseline, prof, dict(self.transition) or None)
        if self.stage == "pretrain":
            return experiments.pretrain_config(self.dataset, self.encoder, self.objective, self.seed, prof,
                                               train=dict(self.train), noise=self.noise_spec)
        base = {"key": self.base.key, **sources.resolve(self.dataset).config,
                **({"noise": self.noise_spec} if self.noise_spec else {})}
        return experiments.finetune_config(base, self.backbone, self.seed, prof, ram=dict(self.ram),
                                           train=dict(self.train))

    @property
    def key(self) -> str:
        return run_key(self.config)

    @property
    def noise_spec(self) -> dict | None:
        return training_noise(dict(self.noise))

    @property
    def model(self) -> str:
        if self.stage == "baseline":
            return BASELINE_NAMES[self.baseline]
        if self.stage == "finetune":
            changed = experiments.variant_label(dict(self.base_train), {})
            return f"RaSeRec({self.base.model}{changed})"
        return experiments.MODEL_NAMES.get((self.encoder, self.objective), f"{self.encoder}+{self.objective}")

    @property
    def identity(self) -> ModelId:
        """The model it trains, as a value (`record.ModelId`): runs of one identity train alike."""
        if self.stage == "baseline":
            return ModelId("baseline", self.baseline)
        if self.stage == "finetune":
            return ModelId("finetune", self.backbone)
        return ModelId("pretrain", f"{self.encoder}+{self.objective}")

    def label(self) -> str:
        changed = experiments.variant_label({**dict(self.ram), **dict(self.train), **dict(self.transition),
                                             **experiments.noise_label(self.noise_spec)},
                                            {})  # e.g. " [valid_metric=NDCG@10]"
        seed = "" if self.stage == "baseline" else f", seed {self.seed}"
        return f"{self.model}{changed} on {self.dataset}{seed} ({self.profile})"

    def execute(self, reuse_only: bool = False, log=print, need_weights: bool = False) -> dict | None:
        """The run's ledger record: reused, or trained now (None with `reuse_only` if not in the ledger).
        `need_weights`: the trained model must be loadable here (stored weights or a checkpoint); a run
        without them is trained again with its recorded settings, or, with `reuse_only`, left out (None)."""
        if self.stage == "baseline":
            return experiments.baseline(self.dataset, self.baseline, self.profile, dict(self.transition) or None,
                                        reuse_only, log)
        common = dict(train=dict(self.train) or None, noise=self.noise_spec, reuse_only=reuse_only,
                      need_checkpoint=need_weights, log=log)
        if self.stage == "pretrain":
            record = experiments.pretrain(self.dataset, self.encoder, self.objective, self.seed, self.profile,
                                          **common)
        else:
            record = experiments.finetune(self.dataset, self.backbone, self.seed, self.profile,
                                          ram=dict(self.ram) or None, pretrain_train=dict(self.base_train) or None,
                                          **common)
        if record is not None and need_weights and not experiments.loadable(record):  # only with reuse_only
            return None
        return record


def records_of(runs: list[Run], reuse_only: bool = False, log=print) -> list[dict]:
    """The ledger records of `runs` (trained now unless `reuse_only`); the runs the ledger lacks are
    named and left out."""
    found = []
    for run in runs:
        record = run.execute(reuse_only)
        if record is None:
            log(f"not in the ledger, left out: {run.label()}")
        else:
            found.append(record)
    return found
