"""Partitions of the memory bank, as JSON-able specs that a run's configuration names: by prefix length,
target popularity, user activity, a seeded sample of memories or of users, each optionally inverted (the
bank without that part). The paper's memory-partition ablation (its Fig. 5) removes one at a time."""
from __future__ import annotations

import numpy as np

from rasekit import settings
from rasekit.data import SplitData

PARTITIONS = {"length": ("lower", "upper", "invert"), "popularity": ("lower", "upper", "invert"),
              "activity": ("lower", "upper", "invert"), "sample": ("fraction", "seed"),
              "users": ("fraction", "seed", "invert")}


def check(partition: dict | None) -> dict | None:
    """A memory-bank partition spec checked by name, type and range (see `bank_filter`)."""
    if partition is None:
        return None
    if not isinstance(partition, dict):
        raise settings.SettingsError(f"partition must be a mapping such as {{'by': 'length', 'upper': 5}}, "
                                     f"got {partition!r}")
    spec = dict(partition)
    by = settings.choice("partition 'by'", spec.pop("by", None), tuple(PARTITIONS))
    spec = settings.known(f"{by} partition", spec, PARTITIONS[by])
    for name, value in spec.items():
        if name == "invert":
            settings.boolean(name, value)
        elif name == "seed":
            settings.seed(value)
        elif name == "fraction":
            settings.real("fraction", value, 0, 1, low_open=True)
        elif value is not None and by == "length":
            settings.integer(name, value, 0)
        elif value is not None:  # popularity and activity bounds are quantiles (items, users)
            settings.real(name, value, 0, 1)
    if spec.get("lower") is not None and spec.get("upper") is not None and spec["lower"] > spec["upper"]:
        raise settings.SettingsError(f"partition={partition!r} is not allowed: expected lower <= upper")
    return partition


def bank_filter(partition: dict | None, data: SplitData):
    """A memory-bank partition from a JSON-able spec, for ablations, e.g.
    {"by": "length", "lower": None, "upper": 5, "invert": False},
    {"by": "popularity", "lower": 0.8, "upper": 1.0} (quantiles of item counts), {"by": "activity",
    "lower": 0.0, "upper": 0.5} (users whose sequence length lies between those quantiles over users),
    {"by": "sample", "fraction": 0.5}, {"by": "users", "fraction": 0.5} (a seeded sample of users).
    "invert" keeps everything else: the bank without that partition."""
    if check(partition) is None:
        return None
    spec = dict(partition)
    by = spec.pop("by")
    if by == "length":
        return lambda bank: bank.by_length(**spec)
    if by == "popularity":
        return lambda bank: bank.by_popularity(data.item_counts(), quantiles=True, **spec)
    if by == "sample":
        return lambda bank: bank.sample(**spec)
    if by == "activity":
        return lambda bank: bank.by_users(active_users(data, spec.get("lower"), spec.get("upper")),
                                          invert=spec.get("invert", False))
    users = np.unique(data.train.users)
    chosen = np.random.default_rng(spec.get("seed", 0)).choice(
        users, round(spec["fraction"] * len(users)), replace=False)
    return lambda bank: bank.by_users(chosen, invert=spec.get("invert", False))


def active_users(data: SplitData, lower: float | None, upper: float | None) -> np.ndarray:
    """Users whose activity (their number of training instances, which grows with the length of their
    sequence) lies at quantiles [lower, upper) over users; upper = 1 includes the most active."""
    users, activity = np.unique(data.train.users, return_counts=True)
    lo = -np.inf if not lower else np.quantile(activity, lower)
    hi = np.inf if upper is None or upper >= 1 else np.quantile(activity, upper)
    return users[(activity >= lo) & (activity < hi)]
