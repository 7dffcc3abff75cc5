"""Stage 1 as a training task: an encoder trained with an objective (CE, DuoRec, CL4SRec) on the
training instances, scored against the tied item embeddings."""
from __future__ import annotations

import numpy as np
import torch

from rasekit.data import Instances, SplitData


def to_device(instances: Instances, device) -> dict[str, torch.Tensor]:
    return {"seqs": torch.as_tensor(instances.seqs, device=device),
            "lengths": torch.as_tensor(instances.lengths, device=device),
            "targets": torch.as_tensor(instances.targets, device=device)}


class PretrainTask:
    def __init__(self, encoder, objective, data: SplitData, device):
        self.model = encoder.to(device)
        self.objective = objective
        self.data = data
        self.n_train = len(data.train)
        self.parts = {part: to_device(getattr(data, part), device) for part in ("train", "valid", "test")}

    def train_loss(self, index: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        train = self.parts["train"]
        rows = torch.as_tensor(index, device=train["seqs"].device)
        batch = {name: tensor[rows] for name, tensor in train.items()}
        if self.objective.needs_positives:
            partner = self.data.same_target.sample(index, self.data.train.targets[index], rng)
            rows = torch.as_tensor(partner, device=rows.device)
            batch["pos_seqs"], batch["pos_lengths"] = train["seqs"][rows], train["lengths"][rows]
        return self.objective.loss(self.model, batch)

    def scores(self, part: str, index: np.ndarray) -> torch.Tensor:
        tensors = self.parts[part]
        rows = torch.as_tensor(index, device=tensors["seqs"].device)
        h = self.model(tensors["seqs"][rows], tensors["lengths"][rows])
        return h @ self.model.item_weights().T

    def targets(self, part: str) -> np.ndarray:
        return getattr(self.data, part).targets

    def before_test(self) -> None:
        pass
