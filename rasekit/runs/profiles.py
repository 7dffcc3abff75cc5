"""Named run profiles. `smoke` is for CI (seconds per notebook, on a user subsample), `default` finishes
in minutes on a laptop CPU (full Beauty, few epochs, one seed: numbers below the paper's), `full` is
the paper's protocol (official settings, early stopping, three seeds, Beauty and Sports)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

PROFILE_ORDER = ("smoke", "default", "full")
ALL_DATASETS = ("Beauty", "Sports_and_Outdoors", "Toys_and_Games", "Yelp")


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


PROFILES = {p.name: p for p in [
    Profile("smoke", ("Beauty",), (1,), users=1500,
            pretrain={"epochs": 2}, finetune={"epochs": 2}),
    Profile("default", ("Beauty",), (1,), users=None,
            pretrain={"epochs": 5}, finetune={"epochs": 5}),
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
