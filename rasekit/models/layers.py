"""Building blocks shared by the encoder and the Retrieval-Augmented Module."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class FeedForward(nn.Module):
    """Post-LN position-wise feed-forward block: LN(x + Dropout(W2 GELU(W1 x + b1) + b2)), erf GELU."""

    def __init__(self, hidden: int, inner: int, dropout: float, eps: float = 1e-12):
        super().__init__()
        self.dense_1 = nn.Linear(hidden, inner)
        self.dense_2 = nn.Linear(inner, hidden)
        self.dropout = nn.Dropout(dropout)
        self.layer_norm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer_norm(x + self.dropout(self.dense_2(F.gelu(self.dense_1(x)))))
