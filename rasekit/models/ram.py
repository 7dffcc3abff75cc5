"""The Retrieval-Augmented Module (RAM): dual-channel multi-head cross-attention over K retrieved
memories (docs/method.md §6).

    CA(q, K, V)  = Dropout(concat_i[ Dropout(softmax((q Wq_i + bq_i)(K Wk_i + bk_i)^T / (sqrt(d_h) tau)))
                                      (V Wv_i + bv_i) ] Wo + bo)
    u1 = CA_1b(FFN_1(CA_1a(h, H_R, V_R)), H_R, V_R)     channel 1: keys = memories' representations
    u2 = CA_2b(FFN_2(CA_2a(h, V_R, H_R)), V_R, H_R)     channel 2: keys = memories' target embeddings
    h~ = alpha h + (1 - alpha) (beta u1 + (1 - beta) u2)

As the official code: no residual and no LayerNorm inside CA (options here), PyTorch default init, the
same retrieved set for both channels. Unlike it: masked memories are excluded from the softmax, a query
with no valid memory keeps h~ = h, and a batch of one works.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from rasekit.models.layers import FeedForward
from rasekit.settings import RamConfig

OFFICIAL = RamConfig()  # the official settings, defined once in rasekit.settings


class CrossAttention(nn.Module):
    """Multi-head attention of one query vector over K memories.

    `fast` uses linearity instead of projecting every memory: the score (Wk k + bk)·q_i equals
    k·(Wk_i^T q_i) + bk_i·q_i, where the last term is the same for all memories and cancels in the
    softmax; and sum_k a_k (Wv v_k + bv) = Wv (sum_k a_k v_k) + bv sum_k a_k (the weights need not sum
    to one after dropout). Cost per query O(K d + d^2) instead of O(K d^2).
    """

    def __init__(self, hidden: int, n_heads: int = 2, dropout: float = 0.5, tau: float = 1.0,
                 residual: bool = False, layer_norm: bool = False, eps: float = 1e-12, fast: bool = True):
        super().__init__()
        if hidden % n_heads:
            raise ValueError(f"hidden size {hidden} is not a multiple of {n_heads} heads")
        self.n_heads, self.head_dim, self.tau = n_heads, hidden // n_heads, tau
        self.scale = 1.0 / (math.sqrt(self.head_dim) * tau)  # tau applied after the sqrt(d_h) scaling
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, hidden)
        self.attn_dropout = nn.Dropout(dropout)
        self.out_dropout = nn.Dropout(dropout)
        self.residual = residual
        self.layer_norm = nn.LayerNorm(hidden, eps=eps) if layer_norm else None
        self.fast = fast

    def forward(self, q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q [B, d], keys/values [B, K, d], mask [B, K] (True = real memory, at least one per row).
        Returns the output [B, d] and the attention probabilities [B, n_heads, K] (before dropout)."""
        b = q.shape[0]
        qh = self.query(q).view(b, self.n_heads, self.head_dim)                # [B, h, dh]
        if self.fast:
            wk = self.key.weight.view(self.n_heads, self.head_dim, -1)           # [h, dh, d]
            qk = torch.bmm(qh.transpose(0, 1), wk).transpose(0, 1)              # Wk_i^T q_i: [B, h, d]
            scores = torch.bmm(qk, keys.transpose(1, 2))                         # [B, h, K]
        else:
            kh = self.key(keys).view(b, -1, self.n_heads, self.head_dim)
            scores = torch.einsum("bhj,bkhj->bhk", qh, kh)
        probs = torch.softmax((scores * self.scale).masked_fill(~mask[:, None, :], float("-inf")), -1)
        weights = self.attn_dropout(probs)
        if self.fast:
            pooled = torch.bmm(weights, values)                                  # sum_k a_k v_k: [B, h, d]
            wv = self.value.weight.view(self.n_heads, self.head_dim, -1)
            bv = self.value.bias.view(self.n_heads, self.head_dim)
            heads = torch.bmm(pooled.transpose(0, 1), wv.transpose(1, 2)).transpose(0, 1)  # [B, h, dh]
            heads = heads + weights.sum(-1, keepdim=True) * bv
        else:
            vh = self.value(values).view(b, -1, self.n_heads, self.head_dim)
            heads = torch.einsum("bhk,bkhj->bhj", weights, vh)
        x = self.out_dropout(self.out(heads.reshape(b, -1)))
        if self.residual:
            x = x + q
        if self.layer_norm is not None:
            x = self.layer_norm(x)
        return x, probs


class Channel(nn.Module):
    """CA_b(FFN(CA_a(h, K, V)), K, V): one channel of the RAM (no FFN after the second CA)."""

    def __init__(self, hidden: int, inner: int, dropout: float, eps: float, **ca):
        super().__init__()
        self.attn_1 = CrossAttention(hidden, dropout=dropout, eps=eps, **ca)
        self.ffn = FeedForward(hidden, inner, dropout, eps)
        self.attn_2 = CrossAttention(hidden, dropout=dropout, eps=eps, **ca)

    def forward(self, h, keys, values, mask):
        x, a1 = self.attn_1(h, keys, values, mask)
        x, a2 = self.attn_2(self.ffn(x), keys, values, mask)
        return x, (a1, a2)


def _logit(p: float) -> float:
    p = min(max(p, 1e-4), 1 - 1e-4)  # keep a learned weight trainable at the ends
    return math.log(p / (1 - p))


class RetrievalAugmentedModule(nn.Module):
    """h, retrieved keys H_R and values V_R -> augmented representation h~ (see the module docstring).

    alpha weighs h, beta weighs channel 1; each is fixed (official) or learned as the sigmoid of a
    parameter initialised at its value. Channel 2 is always created (same parameters and state dict
    whatever beta), but it is not evaluated while beta == 1 is fixed, where it has no effect.
    """

    def __init__(self, hidden: int = 64, inner: int = OFFICIAL.inner, n_heads: int = OFFICIAL.n_heads,
                 dropout: float = OFFICIAL.dropout, tau: float = OFFICIAL.tau, alpha: float = OFFICIAL.alpha,
                 beta: float = OFFICIAL.beta, learn_alpha: bool = False, learn_beta: bool = False,
                 residual: bool = False, layer_norm: bool = False, eps: float = 1e-12, fast: bool = True):
        super().__init__()
        ca = dict(n_heads=n_heads, tau=tau, residual=residual, layer_norm=layer_norm, fast=fast)
        self.seq_tar = Channel(hidden, inner, dropout, eps, **ca)  # channel 1 ("seq->tar")
        self.tar_seq = Channel(hidden, inner, dropout, eps, **ca)  # channel 2 ("tar->seq")
        self.alpha_logit = nn.Parameter(torch.tensor(_logit(alpha))) if learn_alpha else None
        self.beta_logit = nn.Parameter(torch.tensor(_logit(beta))) if learn_beta else None
        self.register_buffer("_alpha", torch.tensor(float(alpha)), persistent=False)
        self.register_buffer("_beta", torch.tensor(float(beta)), persistent=False)
        self.skip_unused_channel = True  # False evaluates channel 2 even when it has no effect

    @property
    def alpha(self) -> torch.Tensor:
        return torch.sigmoid(self.alpha_logit) if self.alpha_logit is not None else self._alpha

    @property
    def beta(self) -> torch.Tensor:
        return torch.sigmoid(self.beta_logit) if self.beta_logit is not None else self._beta

    @property
    def uses_channel_2(self) -> bool:
        fixed_one = self.beta_logit is None and float(self._beta) == 1.0
        return not (fixed_one and self.skip_unused_channel)

    def forward(self, h: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                mask: torch.Tensor | None = None, return_attention: bool = False):
        """h [B, d]; keys, values [B, K, d]; mask [B, K] bool (True = real memory; None = all real).
        Returns h~ [B, d], and with `return_attention` also a dict of attention probabilities
        [B, n_heads, K] per CA block ('1a', '1b', '2a', '2b'; channel 2 only when evaluated)."""
        if mask is None:
            mask = torch.ones(keys.shape[:2], dtype=torch.bool, device=keys.device)
        has_memory = mask.any(1)
        # rows without any memory attend to all (finite) slots; their result is discarded below
        mask = mask | ~has_memory[:, None]
        if not bool(mask.all()):  # zero masked slots so that whatever they hold cannot leak (even NaN)
            keys = keys.masked_fill(~mask[..., None], 0.0)
            values = values.masked_fill(~mask[..., None], 0.0)
        u, attn = self.seq_tar(h, keys, values, mask)
        attention = {"1a": attn[0], "1b": attn[1]}
        if self.uses_channel_2:
            u2, attn2 = self.tar_seq(h, values, keys, mask)  # keys and values swapped
            u = self.beta * u + (1 - self.beta) * u2
            attention.update({"2a": attn2[0], "2b": attn2[1]})
        h_tilde = self.alpha * h + (1 - self.alpha) * u
        h_tilde = torch.where(has_memory[:, None], h_tilde, h)  # nothing retrieved: keep h
        return (h_tilde, attention) if return_attention else h_tilde
