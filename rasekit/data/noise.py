"""Noisy input sequences, for the robustness analysis (notebook 05; the paper's noise study, whose exact
protocol is unknown: docs/method.md §10.5 and §11.9).

A noise setting perturbs exactly round(ratio x real items) positions of a set of instances, chosen
uniformly among all their real items (never the padding), with a generator seeded by the setting alone,
so every model sees the same noisy sequences:

* "replace": the item at each chosen position becomes a uniformly random other item (never itself,
  never the padding id 0);
* "insert": a uniformly random item is inserted before each chosen position; a sequence that grows
  past `max_len` keeps its most recent items, as the protocol's cap does.

Targets, users and steps are unchanged: noise touches what a model reads, not what it must predict.

Noise at training time (`training_noise`) is a run setting: every input of the data (train, valid and
test) is noisy as above, so stage 1 and stage 2 learn, select and are tested on noisy sequences; the
test inputs are the very ones a test-time variant with the same setting gives a clean-trained model.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from rasekit import settings
from rasekit.data import Instances, SplitData

MODES = ("replace", "insert")
BANKS = ("clean", "noisy")
RATIOS = (0.0, 0.05, 0.1, 0.15, 0.2)  # notebook 05's default noise ratios


@dataclass(frozen=True)
class Noise:
    """A noise setting. `bank`: whether stage 2's memory bank is built from clean or from equally noisy
    training (and validation) sequences; the test inputs are noisy either way."""
    ratio: float
    mode: str = "replace"
    seed: int = 0
    bank: str = "clean"

    def __post_init__(self):
        settings.real("noise ratio", self.ratio, 0.0, 1.0)
        settings.choice("noise mode", self.mode, MODES)
        settings.integer("noise seed", self.seed, 0, settings.SEED_MAX)
        settings.choice("noise bank", self.bank, BANKS)

    def as_dict(self) -> dict:
        return asdict(self)


def perturb(instances: Instances, noise: Noise, n_items: int, part: str = "test") -> Instances:
    """`instances` with noisy input sequences (see the module docstring). `part` names the split, so
    that train, valid and test draw from different streams of the same seed."""
    if noise.ratio == 0.0:
        return instances
    if n_items < 2 and noise.mode == "replace":
        raise ValueError("replacement noise needs at least two items to choose from")
    rng = np.random.default_rng([noise.seed, MODES.index(noise.mode), sum(map(ord, part))])
    rows, cols = np.nonzero(np.arange(instances.seqs.shape[1]) < instances.lengths[:, None])
    n_noisy = int(round(noise.ratio * len(rows)))
    chosen = np.sort(rng.choice(len(rows), size=n_noisy, replace=False))
    if noise.mode == "replace":
        return _replace(instances, rows[chosen], cols[chosen], n_items, rng)
    return _insert(instances, rows[chosen], cols[chosen], n_items, rng)


def _replace(instances: Instances, rows: np.ndarray, cols: np.ndarray, n_items: int,
             rng: np.random.Generator) -> Instances:
    seqs = instances.seqs.copy()
    old = seqs[rows, cols]
    # uniform over the n_items - 1 other items: draw from 1..n_items-1 and skip the old one
    new = rng.integers(1, n_items, size=len(rows))
    new = np.where(new >= old, new + 1, new)
    seqs[rows, cols] = new
    return replace(instances, seqs=seqs)


def _insert(instances: Instances, rows: np.ndarray, cols: np.ndarray, n_items: int,
            rng: np.random.Generator) -> Instances:
    seqs, lengths = instances.seqs.copy(), instances.lengths.copy()
    width = seqs.shape[1]
    new_items = rng.integers(1, n_items + 1, size=len(rows))
    for row in np.unique(rows):
        mine = rows == row
        items = list(instances.seqs[row, :instances.lengths[row]])
        # insert from the back so earlier positions keep their meaning
        for col, item in sorted(zip(cols[mine], new_items[mine]), reverse=True):
            items.insert(int(col), int(item))
        items = items[-width:]
        seqs[row] = 0
        seqs[row, :len(items)] = items
        lengths[row] = len(items)
    return replace(instances, seqs=seqs, lengths=lengths)


def noisy_data(data: SplitData, noise: Noise) -> SplitData:
    """`data` with noisy test inputs, and noisy train and valid inputs too when noise.bank == 'noisy'."""
    parts = ("train", "valid", "test") if noise.bank == "noisy" else ("test",)
    changed = {part: perturb(getattr(data, part), noise, data.n_items, part) for part in parts}
    return replace(data, **changed)


TRAINING_NOISE_FIELDS = ("ratio", "mode", "seed")


def training_noise(given: dict | None) -> dict | None:
    """A run's training-data noise, {"ratio", "mode", "seed"} (mode and seed default as in `Noise`),
    checked by name and range; None (and ratio 0) is clean data."""
    spec = settings.known("training noise", given, TRAINING_NOISE_FIELDS)
    if not spec:
        return None
    if "ratio" not in spec:
        raise settings.SettingsError(f"training noise {given!r} is not allowed: expected a 'ratio'")
    noise = Noise(**spec, bank="noisy")
    return None if noise.ratio == 0.0 else {k: getattr(noise, k) for k in TRAINING_NOISE_FIELDS}


def noisy_everywhere(data: SplitData, spec: dict | None) -> SplitData:
    """`data` under a run's training noise (`training_noise`): every input noisy; unchanged for None."""
    return data if spec is None else noisy_data(data, Noise(**spec, bank="noisy"))
