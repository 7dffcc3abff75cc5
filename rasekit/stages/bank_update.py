"""Testing a run trained on older data on the full data, with or without a bank update.

A run trained on an older version of a dataset (`rasekit.data.held_out`: "Beauty:last=2" holds each
user's last two interactions out, "Beauty:users=0.1" leaves a share of users out) is tested on the full
data's test items, reading the full inputs, and no weight ever changes. A **bank update** first enters
the instances the older bank lacks (the newer interactions' prefixes and next items) as memories keyed by
the frozen encoder, as the test-time bank grows by the validation pairs (docs/method.md §7.1). Used by
the test-time variants `full_data` and `bank_update` (`rasekit.runs.variants`, notebook 11).
"""
from __future__ import annotations

import numpy as np
import torch

from rasekit.data.protocol import Instances, SplitData
from rasekit.evaluate import target_ranks
from rasekit.memory.bank import Retrieved, encode_instances


def _joined(parts: list[Instances]) -> Instances:
    return Instances(*(np.concatenate([getattr(p, f) for p in parts])
                       for f in ("seqs", "lengths", "targets", "users", "steps")))


def new_instances(full: SplitData, older: SplitData) -> Instances:
    """The full data's training and validation instances (prefix -> next item) whose (user, target
    position) the older data's bank does not hold: what a bank update adds."""
    width = int(max(full.train.steps.max(), full.valid.steps.max())) + 1
    held = _joined([older.train, older.valid])
    pool = _joined([full.train, full.valid])
    fresh = ~np.isin(pool.users * width + pool.steps, held.users * width + held.steps)
    return pool.subset(np.flatnonzero(fresh))


def update_bank(task, instances: Instances) -> None:
    """Enter `instances` into `task`'s test-time bank as new memories (keys from the frozen encoder,
    values the targets' item embeddings), as the test-time bank grows by the validation pairs."""
    if not len(instances):
        return
    keys, = encode_instances(task.encoder, [instances], task.batch_size, task.device)
    task.grow(keys, instances, "update")


@torch.no_grad()
def test_ranks(task, full: SplitData, chunk: int = 1024) -> np.ndarray:
    """Ranks of the full data's test targets by RaSeRec `task` (trained on older data), its bank as it
    is now, reading the full inputs."""
    test = full.test
    h, = encode_instances(task.encoder, [test], task.batch_size, task.device)
    found = task.search(h, test.users, test.lengths, stream=3)

    def scores(index: np.ndarray) -> torch.Tensor:
        part = Retrieved(found.ids[index], found.sims[index], found.mask[index])
        return task.augment(h[torch.as_tensor(index)], part) @ task.items.T
    return target_ranks(scores, test.targets, chunk)


@torch.no_grad()
def backbone_ranks(encoder, full: SplitData, chunk: int = 1024) -> np.ndarray:
    """Ranks of the full data's test targets by a stage-1 encoder alone, reading the full inputs."""
    test = full.test
    h, = encode_instances(encoder, [test], 1024)
    items = encoder.item_weights().detach().float().cpu()
    return target_ranks(lambda index: h[torch.as_tensor(index)] @ items.T, test.targets, chunk)
