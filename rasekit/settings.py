"""Validation of every setting a user can pass, before any work starts: one message that names the
setting, the value given and what is allowed. Typed settings (`TrainConfig`, `RamConfig`) call these
checks when they are built, so an impossible value never reaches the data, the model or FAISS."""
from __future__ import annotations

import math
import numbers
import os
import re
from dataclasses import dataclass, fields

SEED_MAX = 2**32 - 1  # numpy's and torch's seeds both accept 0..2**32 - 1


class SettingsError(ValueError):
    """A setting has the wrong type or is out of range."""


def _fail(name: str, value, allowed: str):
    raise SettingsError(f"{name}={value!r} is not allowed: expected {allowed}")


def integer(name: str, value, low: int | None = None, high: int | None = None) -> int:
    """An int (not a bool, not a float such as 2.5 or 2.0) in [low, high]."""
    allowed = "an integer" + (f" >= {low}" if high is None and low is not None else "") + (
        f" in {low}..{high}" if low is not None and high is not None else "")
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        _fail(name, value, allowed)
    if (low is not None and value < low) or (high is not None and value > high):
        _fail(name, value, allowed)
    return int(value)


def real(name: str, value, low: float = -math.inf, high: float = math.inf, *, low_open: bool = False,
         high_open: bool = False) -> float:
    """A finite number (int or float, not a bool or a string) in the interval given."""
    interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    allowed = f"a finite number in {interval}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        _fail(name, value, allowed)
    if value < low or value > high or (low_open and value == low) or (high_open and value == high):
        _fail(name, value, allowed)
    return float(value)


def choice(name: str, value, options) -> str:
    if value not in tuple(options):
        _fail(name, value, "one of " + ", ".join(map(repr, options)))
    return value


def boolean(name: str, value) -> bool:
    if not isinstance(value, bool):
        _fail(name, value, "true or false")
    return value


def seed(value) -> int:
    return integer("seed", value, 0, SEED_MAX)


def instance(name: str, value, kind: type, allowed: str):
    """A value of `kind` (for a str: `allowed` = "a string")."""
    if not isinstance(value, kind):
        _fail(name, value, allowed)
    return value


def distinct_list(name: str, value, fits, allowed: str, empty: bool = False) -> list:
    """A list (or tuple) of distinct items that each `fits`; `allowed` describes one item. Refused when
    empty unless `empty`: None, not [], stands for "the profile's own"."""
    if not isinstance(value, (list, tuple)) or (not value and not empty) or not all(map(fits, value)) \
            or any(item in value[:i] for i, item in enumerate(value)):
        _fail(name, value, f"a {'' if empty else 'non-empty '}list of distinct {allowed}")
    return list(value)


def environment_integer(name: str, low: int, high: int) -> int | None:
    """An integer environment variable in low..high; None when it is unset or empty."""
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    if not re.fullmatch(r"-?[0-9]+", text) or not low <= int(text) <= high:
        _fail(name, text, f"an integer in {low}..{high}")
    return int(text)


def known(kind: str, given: dict | None, fields) -> dict:
    """`given` as a dict, refused by name if it is not a mapping or holds a setting `fields` lacks."""
    if given is None:
        return {}
    if not isinstance(given, dict):
        raise SettingsError(f"{kind} settings must be a mapping of names to values, got {given!r}")
    unknown = sorted(set(given) - set(fields))
    if unknown:
        raise SettingsError(f"unknown {kind} setting(s) {unknown}; known: {', '.join(sorted(fields))}")
    return dict(given)


METRIC_NAMES = ("HR", "NDCG", "MRR")
METRIC_DEPTHS = (5, 10, 20, 50)  # the depths evaluate.metrics reports
METRICS = tuple(f"{m}@{k}" for k in METRIC_DEPTHS for m in METRIC_NAMES)
INDEX_KINDS = ("ivf", "exact", "hnsw")
MEMORY_CHOICES = ("nearest", "random")
# How items are cut into popularity groups (analysis.long_tail): equal shares of test interactions, or of items
GROUP_RULES = ("interactions", "items")


@dataclass(frozen=True)
class RamConfig:
    """Stage 2: the Retrieval-Augmented Module and its retrieval (docs/method.md §5-6 and §8.2).
    Defaults are the official settings; `experiments.RAM` lists the ones every run's key names."""
    k: int = 20                    # memories retrieved per query
    alpha: float = 0.5             # weight of h in h~ = alpha h + (1 - alpha) u
    beta: float = 1.0              # weight of channel 1 in u
    tau: float = 1.0               # attention temperature
    dropout: float = 0.5
    index: str = "ivf"             # FAISS index: ivf (official), exact or hnsw
    nlist: int = 128
    nprobe: int = 1
    inner: int = 256               # FFN width inside each channel
    n_heads: int = 2
    learn_alpha: bool = False
    learn_beta: bool = False
    residual: bool = False
    layer_norm: bool = False
    fetch: int | None = None       # candidates fetched before the same-user filter (None: the official rule)
    retrain_for_test: bool = True  # retrain the IVF quantiser on the grown test-time bank (official)
    memories: str = "nearest"      # "random": K memories drawn at random, a control no paper reports
    same_user_filter: bool = True  # False: a query may retrieve its own or later prefixes (leakage control)

    K_MAX = 10_000  # beyond this a [queries, K, d] tensor no longer fits a laptop's memory

    def __post_init__(self):
        integer("k", self.k, 1, self.K_MAX)
        real("alpha", self.alpha, 0, 1)
        real("beta", self.beta, 0, 1)
        real("tau", self.tau, 0, low_open=True)
        real("dropout", self.dropout, 0, 1, high_open=True)
        choice("index", self.index, INDEX_KINDS)
        integer("nlist", self.nlist, 1)
        integer("nprobe", self.nprobe, 1)
        integer("inner", self.inner, 1)
        integer("n_heads", self.n_heads, 1)
        choice("memories", self.memories, MEMORY_CHOICES)
        for name in ("learn_alpha", "learn_beta", "residual", "layer_norm", "retrain_for_test",
                     "same_user_filter"):
            boolean(name, getattr(self, name))
        if self.fetch is not None:
            integer("fetch", self.fetch, self.k)

    @classmethod
    def of(cls, given: dict | None, defaults: dict | None = None) -> "RamConfig":
        names = [f.name for f in fields(cls)]
        return cls(**{**(defaults or {}), **known("RAM", given, names)})
