"""A ledger record read into named fields, and a model's identity as a value.

The ledger keeps records as JSON (`ledger`); code that reasons about runs (which are alike, what one cost)
reads them through `Record` instead of key paths, and tells models apart by `ModelId`, never by parsing
the name a table shows ("RaSeRec(DuoRec) [k=5]")."""
from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class ModelId:
    """Which model a run trains, without the settings it changes: the stage and the family (the stage-1
    encoder and objective, the backbone a stage-2 run builds on, the baseline, or the parent run of a
    test-time variant)."""
    stage: str     # "pretrain", "finetune", "baseline" or "variant"
    family: str    # "sasrec+duorec", "duorec", "transition", or a parent's key

    @classmethod
    def of_config(cls, config: dict) -> "ModelId":
        """The identity of the run whose configuration (as hashed into its key) is `config`."""
        stage = config.get("stage", "")
        family = {"pretrain": lambda: f"{config['encoder']}+{config['objective']}",
                  "finetune": lambda: config["backbone"],
                  "baseline": lambda: config["model"],
                  "variant": lambda: config["parent"]}.get(stage)
        if family is None:
            raise ValueError(f"a run configuration of unknown stage {stage!r}: expected pretrain, finetune, "
                             f"baseline or variant")
        return cls(stage, family())


@dataclass(frozen=True)
class Record:
    """One finished run as the ledger holds it."""
    key: str
    stage: str
    dataset: str
    seed: int
    profile: str
    name: str                 # the model's name in tables, settings that differ included
    model: ModelId
    metrics: dict
    provenance: dict
    adopted: bool = False     # taken from the reference, not trained here
    kernels: str = "exact"    # what trained it (`rasekit.stages.loop.TrainConfig.kernels`)

    @classmethod
    def of(cls, raw: dict) -> "Record":
        """`raw`, a record as `ledger` reads it (its fields already checked there)."""
        config = raw.get("config") or {}
        return cls(key=raw["key"], stage=raw.get("stage") or config.get("stage", ""), dataset=raw["dataset"],
                   seed=raw["seed"], profile=raw["profile"], name=raw["model"], model=ModelId.of_config(config),
                   metrics=raw["metrics"], provenance=raw["provenance"], adopted=bool(raw.get("adopted")),
                   kernels=(config.get("train") or {}).get("kernels", "exact"))

    @property
    def threads(self) -> int:
        """The threads it trained with, as its device line says ("..., 2 threads"; 1 if not said)."""
        found = re.search(r"(\d+) threads", self.provenance.get("device") or "")
        return int(found.group(1)) if found else 1

    @property
    def cpu_measured(self) -> bool:
        """Whether its training's CPU time was measured (runs recorded before that was: only wall time)."""
        return self.provenance.get("train_cpu_seconds") is not None

    @property
    def cpu_seconds(self) -> float | None:
        """What it cost: its training's CPU time where recorded, else its wall time times its threads
        (None if neither is recorded)."""
        if self.provenance.get("train_cpu_seconds") is not None:
            return self.provenance["train_cpu_seconds"]
        seconds = self.provenance.get("train_seconds") or self.provenance.get("wall_time_s")
        return None if seconds is None else seconds * self.threads
