"""The official settings as a run's configuration names them: the defaults of the typed configurations
(`TrainConfig`, `RamConfig`) in the form the keys hash, so that a setting left at its default never changes
a run's key."""
from __future__ import annotations

from rasekit import settings
from rasekit.stages.loop import TrainConfig

# Official training settings (docs/method.md §4, §7.1, §8.1 and §8.2), as TrainConfig's defaults hold them;
# `full` uses them as they are. Stage 2 differs in its batch and its validation metric only.
PRETRAIN = {name: getattr(TrainConfig(), name) for name in ("epochs", "batch_size", "lr", "weight_decay",
                                                             "patience", "valid_metric", "valid_decimals")}
FINETUNE = {**PRETRAIN, "batch_size": 1024, "valid_metric": "HR@10"}
# The RAM settings every stage-2 run's configuration names (official values from RamConfig); the others
# enter a configuration only where a run changes them, so that older runs keep their keys.
RAM = {name: getattr(settings.RamConfig(), name) for name in ("k", "alpha", "beta", "tau", "dropout", "index",
                                                               "nlist", "nprobe")}
