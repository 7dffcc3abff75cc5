"""Named run profiles. `smoke` is for CI (seconds per notebook, on a user subsample); `default` is the
paper's Beauty result for seed 1 with the expensive part reused: the stage-1 runs and the training-free
baselines are taken from the reference (its full-profile runs, checked and marked as such), and stage 2
is trained with the official settings on them; `full` is the paper's whole protocol from scratch
(official settings, early stopping, three seeds, Beauty and Sports).

A profile contributes only its settings (users, training overrides) to a run's configuration, never its
name: `default` trains as `full` does, so its runs have the keys of the full runs of Beauty seed 1."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

PROFILE_ORDER = ("smoke", "default", "full")
ALL_DATASETS = ("Beauty", "Sports_and_Outdoors", "Toys_and_Games", "Yelp")
# The notebooks of the paper's tables and figures. The others train dozens of runs (08, 09, 11), time this
# machine with banks of millions of memories (10) or evaluate every seed of three datasets again (13), so
# the default profile runs them when named.
PAPER_NOTEBOOKS = ("00_datasets", "01_main_results", "02_pretraining", "03_long_tail", "04_memory_partitions",
                   "05_noise_robustness", "06_comparison", "07_backbones", "12_case_study", "99_report")


@dataclass(frozen=True)
class Profile:
    name: str
    datasets: tuple[str, ...]        # datasets of the main experiments
    seeds: tuple[int, ...]
    users: int | None                # keep only this many users (seeded sample); None = all
    pretrain: dict = field(default_factory=dict)   # overrides of the stage-1 training settings
    finetune: dict = field(default_factory=dict)   # overrides of the stage-2 training settings
    stats_datasets: tuple[str, ...] = ALL_DATASETS
    # datasets of the comparison tables (notebooks 06 and 07): Toys stands in for the paper's probable
    # third dataset, Amazon Clothing, which has no offline copy (docs/method.md §2.1 and §11.1)
    comparison_datasets: tuple[str, ...] = ("Beauty",)
    # Stage-1 runs and training-free baselines are taken from the reference when it holds them (with their
    # weights, where a notebook loads the model again), not trained (`experiments.from_reference`).
    from_reference: bool = False
    # The notebooks `batch` runs when none is named; None: every notebook of the kit.
    notebooks: tuple[str, ...] | None = None


PROFILES = {p.name: p for p in [
    Profile("smoke", ("Beauty",), (1,), users=1500,
            pretrain={"epochs": 2}, finetune={"epochs": 2}),
    Profile("default", ("Beauty",), (1,), users=None, from_reference=True, notebooks=PAPER_NOTEBOOKS),
    Profile("full", ("Beauty", "Sports_and_Outdoors"), (1, 2, 3), users=None,
            pretrain={"epochs": 100}, finetune={"epochs": 100},
            comparison_datasets=("Beauty", "Sports_and_Outdoors", "Toys_and_Games")),
]}


class UnknownProfileError(ValueError):
    pass


def get(name: str | None = None) -> Profile:
    """A profile by name; None reads RASEKIT_PROFILE (default: "default"; test.sh sets smoke)."""
    name = from_environment() if name is None else name
    if name not in PROFILES:
        raise UnknownProfileError(f"unknown profile {name!r}; known profiles: {', '.join(PROFILE_ORDER)}")
    return PROFILES[name]


def from_environment() -> str:
    """The profile RASEKIT_PROFILE names ("default" when it is unset or empty), checked."""
    name = os.environ.get("RASEKIT_PROFILE") or "default"
    if name not in PROFILES:
        raise UnknownProfileError(f"RASEKIT_PROFILE={name!r} is not allowed: expected one of "
                                  f"{', '.join(PROFILE_ORDER)}")
    return name
