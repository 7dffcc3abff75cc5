"""One training loop for both stages (being written; see the Task protocol below)."""
from __future__ import annotations

from typing import Protocol

import numpy as np
import torch
from torch import nn


class Task(Protocol):
    """What the training loop needs from a stage.

    model: the nn.Module whose state_dict is checkpointed; its parameters with requires_grad are trained.
    n_train: number of training instances; batches are arrays of their indices.
    train_loss(index, rng): mean loss over a batch; rng is the loop's numpy Generator (checkpointed with it),
        used for any sampling such as DuoRec's same-target positives.
    scores(part, index): scores [b, n_items + 1] of instances `index` of part 'valid' or 'test'
        (called under torch.no_grad with model.eval()).
    targets(part): the target item of every instance of that part.
    before_test(): called once after the best checkpoint is restored, before the test scores
        (stage 2 grows its memory bank with the validation pairs here).
    """
    model: nn.Module
    n_train: int

    def train_loss(self, index: np.ndarray, rng: np.random.Generator) -> torch.Tensor: ...
    def scores(self, part: str, index: np.ndarray) -> torch.Tensor: ...
    def targets(self, part: str) -> np.ndarray: ...
    def before_test(self) -> None: ...
