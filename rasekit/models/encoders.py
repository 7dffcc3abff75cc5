"""Sequence encoders f_theta: a batch of item sequences -> one user representation per sequence; SASRec
here, GRU4Rec and BERT4Rec in rasekit.models.backbones (with `make_encoder`).

Every encoder has the same interface:

* ``forward(seqs [B, L], lengths [B]) -> h [B, d]``: the output at the last real position (len - 1);
* ``all_positions(seqs, lengths) -> [B, L, d]``: the output at every position. Sequences are left-aligned
  and the encoders are causal, so position t - 1 is the representation of the prefix of length t
  (positions >= len are padding and are left at 0);
* ``item_embedding`` (tied scoring), ``item_weights()`` -> [n_items + 1, d] scoring matrix (row 0 is
  padding, scored too, as in the official code), ``hidden_size``.

Fast path (``fast = True``, the default). Padding every prefix to 50 makes about 6 times the needed work
on Beauty. Inside a batch, sequences are sorted by length and encoded in a few length groups, each padded
only to its own maximum rounded up to a multiple of 4 (few distinct shapes keep CPU kernel caches warm);
outputs are put back in batch order. This is exact: with left-aligned sequences and a causal encoder,
padding never reaches a real position. The Transformer also uses fused causal attention when attention
dropout is off, cheap dropout masks (rasekit.models.dropout), and computes its last layer for the one output row.
``fast = False`` is the reference computation (padded to the full width, attention written out with an
additive -10000 mask, nn.Dropout); in eval mode both give the same outputs.

Kernels (``kernels``, a training setting): "exact", the length groups encoded one by one as above, is what
every committed run was trained with. With "fast", SASRec's `forward` lays the same groups out as one
token array (rasekit.models.tokens), so that each position-wise layer runs once per batch instead of once
per group: the same values from the same random draws, only weight gradients sum their terms in another
order. (`all_positions`, used to build stage 2's memory bank, keeps the exact kernels.)
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from rasekit.models.dropout import dropout as fast_dropout
from rasekit.models.dropout import add_kept, dropout_add, has_fast_mask
from rasekit.models.layers import FeedForward
from rasekit.models.tokens import GroupedMasks, NoDropout, TokenLayout

# Rounding widths to a multiple of 4 rather than 8 pads less (Beauty's median prefix has 4 items) and was
# about 5% faster per DuoRec step here; a group's fixed cost (tens of small kernels) is about the work of
# 512 padded positions (256..1024 measured the same within noise).
GROUP_MULTIPLE = 4
GROUP_OVERHEAD = 512
# "exact": each length group encoded on its own (the kernels of every committed run); "fast": SASRec's
# length groups laid out as one token array (rasekit.models.tokens), the same values but for the order
# of float sums.
KERNELS = ("exact", "fast")


# ----------------------------------------------------------------------------------------------------
# Length groups


def length_groups(lengths: torch.Tensor, max_width: int, multiple: int = GROUP_MULTIPLE,
                  overhead: int = GROUP_OVERHEAD) -> list[tuple[torch.Tensor, int]]:
    """Split a batch into groups of similar length: [(batch indices, padded width), ...].

    Widths are lengths rounded up to `multiple` (at most `max_width`); adjacent widths are merged when
    that costs fewer padded positions than `overhead`, the fixed cost of running one more group.
    """
    cpu_lengths = lengths.cpu()
    order = torch.argsort(cpu_lengths, stable=True)
    widths = (cpu_lengths[order] + multiple - 1).div(multiple, rounding_mode="floor").mul(multiple)
    values, counts = torch.unique_consecutive(widths.clamp(max=max_width), return_counts=True)
    starts = [0] + torch.cumsum(counts, 0).tolist()
    order = order.to(lengths.device)
    return [(order[starts[i]:starts[j]], int(values[j - 1]))
            for i, j in _merge_buckets(values.tolist(), counts.tolist(), overhead)]


def _merge_buckets(widths: list[int], counts: list[int], overhead: int) -> list[tuple[int, int]]:
    """Cheapest split of sorted width buckets into runs [i, j): a run costs overhead plus its sequence
    count times its widest width. Dynamic programming over the (few) buckets."""
    best, cut = [0.0] + [math.inf] * len(widths), [0] * (len(widths) + 1)
    for j in range(1, len(widths) + 1):
        n = 0
        for i in range(j - 1, -1, -1):
            n += counts[i]
            cost = best[i] + overhead + n * widths[j - 1]
            if cost < best[j]:
                best[j], cut[j] = cost, i
    runs, j = [], len(widths)
    while j > 0:
        runs.append((cut[j], j))
        j = cut[j]
    return runs[::-1]


def append_at_length(seqs: torch.Tensor, lengths: torch.Tensor, values) -> torch.Tensor:
    """[B, W] left-aligned sequences -> [B, W + 1] with `values` (one per row, or one for all) placed right
    after each sequence's last item (position len)."""
    out = torch.cat([seqs, seqs.new_zeros(seqs.shape[0], 1)], 1)
    out[torch.arange(seqs.shape[0], device=seqs.device), lengths] = values
    return out


def gather_last(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """[B, L, d] -> [B, d]: the output at position len - 1 of every sequence."""
    return x[torch.arange(x.shape[0], device=x.device), lengths - 1]


class SequenceEncoder(nn.Module):
    """The shared interface and the length-grouped fast path.

    Subclasses implement the reference path `encode_plain(seqs)` -> [B, L, d] and the fast path
    `encode(items)`: item embeddings [B, W, d] -> outputs at every position; they may override
    `encode_last(items, lengths)` -> outputs at position len - 1 only, [B, d]. The item embeddings of
    all groups are looked up in one call, so that the backward pass builds one dense gradient of the
    item table per batch instead of one per group.
    """

    item_embedding: nn.Embedding
    hidden_size: int

    def __init__(self, n_items: int, mask_token: bool):
        super().__init__()
        self.n_items = n_items
        # CL4SRec's item-mask augmentation needs a token of its own, one row after the items (as in the
        # official code); it is never scored.
        self.mask_id = n_items + 1 if mask_token else None
        self.n_rows = n_items + 1 + int(mask_token)
        self.fast = True
        self.kernels = "exact"
        self.group_multiple, self.group_overhead = GROUP_MULTIPLE, GROUP_OVERHEAD

    def item_weights(self) -> torch.Tensor:
        weight = self.item_embedding.weight
        return weight if self.mask_id is None else weight[: self.n_items + 1]  # a slice costs a backward copy

    def encode_plain(self, seqs: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def encode(self, items: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def encode_last(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return gather_last(self.encode(items), lengths)

    def _grouped_items(self, seqs: torch.Tensor, lengths: torch.Tensor):
        """Yield (batch indices, item embeddings [n, width, d]) for each length group."""
        groups = length_groups(lengths, seqs.shape[1], self.group_multiple, self.group_overhead)
        ids = [seqs[index, :width] for index, width in groups]
        items = self.item_embedding(torch.cat([i.flatten() for i in ids]))
        for (index, _), part, emb in zip(groups, ids, items.split([i.numel() for i in ids])):
            yield index, emb.view(*part.shape, -1)

    def forward(self, seqs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if not self.fast:
            return gather_last(self.encode_plain(seqs), lengths)
        parts, order = [], []
        for index, items in self._grouped_items(seqs, lengths):
            parts.append(self.encode_last(items, lengths[index]))
            order.append(index)
        inverse = torch.argsort(torch.cat(order))  # put the groups back in batch order
        return torch.cat(parts)[inverse]

    def all_positions(self, seqs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        real = (seqs > 0).unsqueeze(-1)
        if not self.fast:
            return self.encode_plain(seqs) * real
        out = seqs.new_zeros(*seqs.shape, self.hidden_size, dtype=self.item_embedding.weight.dtype)
        for index, items in self._grouped_items(seqs, lengths):
            width = items.shape[1]
            out[index, :width] = self.encode(items) * real[index, :width]
        return out


# ----------------------------------------------------------------------------------------------------
# SASRec


class SelfAttention(nn.Module):
    """Post-LN multi-head self-attention block: LN(x + Dropout(MHA(x) W_O)).

    Query, key and value projections are one Linear(d, 3d): the same parameters and init as three.
    `forward` is the reference computation; `forward_causal` (every position) and `forward_last` (one
    position per sequence) are the fast paths, where a causal mask alone keeps padding away from every
    real position of a left-aligned sequence.
    """

    def __init__(self, hidden: int, n_heads: int, attn_dropout: float, hidden_dropout: float, eps: float):
        super().__init__()
        if hidden % n_heads:
            raise ValueError(f"hidden size {hidden} is not a multiple of n_heads {n_heads}")
        self.n_heads = n_heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.out = nn.Linear(hidden, hidden)
        self.layer_norm = nn.LayerNorm(hidden, eps=eps)
        self.attn_dropout = nn.Dropout(attn_dropout)
        self.dropout = nn.Dropout(hidden_dropout)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (self.n_heads, -1)).transpose(1, 2)  # [B, L, d] -> [B, heads, L, dh]

    def _residual(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """LN(x + Dropout(context W_O)) with the cheap dropout fused into the add."""
        return self.layer_norm(dropout_add(x, self.out(context), self.dropout.p, self.training))

    def forward(self, x: torch.Tensor, additive_mask: torch.Tensor) -> torch.Tensor:
        """Reference path; `additive_mask` [B, 1, L, L] holds 0 or -10000."""
        q, k, v = (self._heads(t) for t in self.qkv(x).chunk(3, dim=-1))
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]) + additive_mask
        context = (self.attn_dropout(scores.softmax(-1)) @ v).transpose(1, 2).flatten(2)
        return self.layer_norm(x + self.dropout(self.out(context)))

    def _drop_probabilities(self):
        """The exact kernels' attention dropout: drawn when applied (None when there is none)."""
        p = self.attn_dropout.p if self.training else 0.0
        return None if p == 0.0 else lambda probs: fast_dropout(probs, p, True)

    @staticmethod
    def _causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, drop) -> torch.Tensor:
        """Every position attends to itself and the ones before; `drop` acts on the probabilities."""
        if drop is None:
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)
        # dropout acts on the probabilities, which the fused kernel does not expose
        width = q.shape[-2]
        future = torch.ones(width, width, dtype=torch.bool, device=q.device).triu(1)
        scores = (q @ k.transpose(-1, -2)).masked_fill(future, float("-inf"))
        return drop((scores / math.sqrt(q.shape[-1])).softmax(-1)) @ v

    @staticmethod
    def _last_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, last: torch.Tensor, drop):
        """One query per sequence [B, heads, 1, dh], attending to positions 0..last -> [B, d]."""
        future = torch.arange(k.shape[-2], device=k.device) > last[:, None]          # [B, W]
        scores = (q @ k.transpose(-1, -2)).masked_fill(future[:, None, None, :], float("-inf"))
        probs = (scores / math.sqrt(q.shape[-1])).softmax(-1)
        return (probs if drop is None else drop(probs)) @ v

    def _project_last(self, x: torch.Tensor, x_last: torch.Tensor):
        """Queries [B, heads, 1, dh] of the output rows only; keys and values [.., d] of every position."""
        d = x.shape[-1]
        q = F.linear(x_last, self.qkv.weight[:d], self.qkv.bias[:d]).unflatten(-1, (self.n_heads, 1, -1))
        return q, F.linear(x, self.qkv.weight[d:], self.qkv.bias[d:])

    def forward_causal(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = (self._heads(t) for t in self.qkv(x).chunk(3, dim=-1))
        context = self._causal_attention(q, k, v, self._drop_probabilities())
        return self._residual(x, context.transpose(1, 2).flatten(2))

    def forward_last(self, x: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        """[B, W, d] -> [B, d], the output at position `last` only: keys and values are needed at every
        position, but the query and everything after attention only for the one row that is used."""
        x_last = x[torch.arange(x.shape[0], device=x.device), last]
        q, kv = self._project_last(x, x_last)
        k, v = (self._heads(t) for t in kv.chunk(2, -1))
        context = self._last_attention(q, k, v, last, self._drop_probabilities())
        return self._residual(x_last, context.flatten(1))

    def forward_tokens(self, x: torch.Tensor, layout: TokenLayout, masks: GroupedMasks,
                       layer: int) -> torch.Tensor:
        """forward_causal on a token array [T, d]: one projection for all groups, attention per group."""
        contexts = []
        for g, qkv in enumerate(layout.views(self.qkv(x))):
            q, k, v = (self._heads(t) for t in qkv.chunk(3, dim=-1))
            drop = _kept_probabilities(masks, layer, g, (*q.shape[:-1], q.shape[-2]))
            contexts.append(self._causal_attention(q, k, v, drop).transpose(1, 2).reshape(-1, x.shape[-1]))
        keep = masks.positionwise("residual", layer)
        return self.layer_norm(add_kept(x, self.out(torch.cat(contexts)), keep))

    def forward_tokens_last(self, x: torch.Tensor, layout: TokenLayout, masks: GroupedMasks,
                            layer: int) -> torch.Tensor:
        """forward_last on a token array: [T, d] -> [B, d] in layout order."""
        x_last = x[layout.last()]
        q, kv = self._project_last(x, x_last)
        parts = zip(layout.rows(q), layout.views(kv), layout.rows(layout.lengths - 1))
        contexts = []
        for g, (q_g, kv_g, last) in enumerate(parts):
            k, v = (self._heads(t) for t in kv_g.chunk(2, -1))
            drop = _kept_probabilities(masks, layer, g, (*q_g.shape[:-1], k.shape[-2]))
            contexts.append(self._last_attention(q_g, k, v, last, drop).flatten(1))
        keep = masks.positionwise("residual", layer)
        return self.layer_norm(add_kept(x_last, self.out(torch.cat(contexts)), keep))


def _kept_probabilities(masks: GroupedMasks, layer: int, group: int, shape):
    """Attention dropout with a mask drawn beforehand (None when there is none)."""
    keep = masks.attention(layer, group, shape)
    return None if keep is None else keep.mul


def _position_wise(ff: FeedForward, x: torch.Tensor) -> torch.Tensor:
    """FeedForward's two dense layers with GELU between, before dropout and the residual."""
    return ff.dense_2(F.gelu(ff.dense_1(x)))


def feed_forward_fast(ff: FeedForward, x: torch.Tensor) -> torch.Tensor:
    """FeedForward's computation with the cheap dropout fused into the residual add."""
    return ff.layer_norm(dropout_add(x, _position_wise(ff, x), ff.dropout.p, ff.training))


def feed_forward_kept(ff: FeedForward, x: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
    """The same with a dropout mask drawn beforehand (None: no dropout)."""
    return ff.layer_norm(add_kept(x, _position_wise(ff, x), keep))


class TransformerLayer(nn.Module):
    """One SASRec layer: SelfAttention then FeedForward, both post-LN."""

    def __init__(self, hidden: int, n_heads: int, inner: int, attn_dropout: float, hidden_dropout: float,
                 eps: float):
        super().__init__()
        self.attention = SelfAttention(hidden, n_heads, attn_dropout, hidden_dropout, eps)
        self.feed_forward = FeedForward(hidden, inner, hidden_dropout, eps)

    def forward(self, x: torch.Tensor, additive_mask: torch.Tensor) -> torch.Tensor:
        return self.feed_forward(self.attention(x, additive_mask))

    def forward_causal(self, x: torch.Tensor) -> torch.Tensor:
        return feed_forward_fast(self.feed_forward, self.attention.forward_causal(x))

    def forward_last(self, x: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        return feed_forward_fast(self.feed_forward, self.attention.forward_last(x, last))

    def forward_tokens(self, x: torch.Tensor, layout: TokenLayout, masks: GroupedMasks, layer: int,
                       last: bool = False) -> torch.Tensor:
        """On a token array [T, d]: every token, or (`last`) each sequence's last one, [B, d]."""
        attend = self.attention.forward_tokens_last if last else self.attention.forward_tokens
        x = attend(x, layout, masks, layer)
        return feed_forward_kept(self.feed_forward, x, masks.positionwise("feed_forward", layer))


class SASRec(SequenceEncoder):
    """SASRec as in the DuoRec/RaSeRec code: X0 = Dropout(LN(E[s] + P)), post-LN layers, erf GELU,
    output at position len - 1. Defaults are the official pre-training settings (877,824 parameters on
    Beauty)."""

    def __init__(self, n_items: int, hidden_size: int = 64, n_layers: int = 2, n_heads: int = 2,
                 inner_size: int = 256, hidden_dropout: float = 0.5, attn_dropout: float = 0.5,
                 max_len: int = 50, layer_norm_eps: float = 1e-12, init_std: float = 0.02,
                 mask_token: bool = False):
        super().__init__(n_items, mask_token)
        self.hidden_size = hidden_size
        self.item_embedding = nn.Embedding(self.n_rows, hidden_size, padding_idx=0)
        self.position_embedding = nn.Embedding(max_len, hidden_size)
        self.layer_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.dropout = nn.Dropout(hidden_dropout)
        self.layers = nn.ModuleList(
            TransformerLayer(hidden_size, n_heads, inner_size, attn_dropout, hidden_dropout, layer_norm_eps)
            for _ in range(n_layers))
        self.init_std = init_std
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        # official init: N(0, std) for every Linear/Embedding weight, padding row included
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(0.0, self.init_std)
        if isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.data.zero_()
        if isinstance(module, nn.LayerNorm):
            module.weight.data.fill_(1.0)
            module.bias.data.zero_()

    def _input(self, items: torch.Tensor) -> torch.Tensor:
        """LN(E[s] + P), before the input dropout."""
        return self.layer_norm(items + self.position_embedding.weight[: items.shape[1]])

    def encode_plain(self, seqs: torch.Tensor) -> torch.Tensor:
        x = self.dropout(self._input(self.item_embedding(seqs)))
        mask = attention_mask(seqs)
        for layer in self.layers:
            x = layer(x, mask)
        return x

    def encode(self, items: torch.Tensor) -> torch.Tensor:
        x = fast_dropout(self._input(items), self.dropout.p, self.training)
        for layer in self.layers:
            x = layer.forward_causal(x)
        return x

    def encode_last(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = fast_dropout(self._input(items), self.dropout.p, self.training)
        for layer in self.layers[:-1]:
            x = layer.forward_causal(x)
        return self.layers[-1].forward_last(x, lengths - 1)

    def forward(self, seqs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if self.fast and self.kernels == "fast" and self._cheap_masks():
            return self._forward_tokens(seqs, lengths)
        return super().forward(seqs, lengths)

    def _dropout_rates(self) -> tuple[float, float]:
        """(hidden, attention) dropout probabilities."""
        return self.dropout.p, self.layers[0].attention.attn_dropout.p

    def _cheap_masks(self) -> bool:
        """Whether every dropout draws the cheap masks (or none), which the token layout draws ahead."""
        return not self.training or all(p == 0 or has_fast_mask(p) for p in self._dropout_rates())

    def _forward_tokens(self, seqs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """`forward` with the length groups laid out as one token array (kernels="fast")."""
        layout = TokenLayout(length_groups(lengths, seqs.shape[1], self.group_multiple, self.group_overhead),
                             lengths)
        masks = NoDropout()
        if self.training:
            masks = GroupedMasks(layout, len(self.layers), self.layers[0].attention.n_heads, self.hidden_size,
                                 *self._dropout_rates(), self.item_embedding.weight.dtype, seqs.device)
        items = self.item_embedding(layout.tokens(seqs))
        x = self.layer_norm(items + self.position_embedding(layout.positions(seqs.device)))
        keep = masks.positionwise("input", -1)
        x = x if keep is None else x * keep
        for i, layer in enumerate(self.layers):
            x = layer.forward_tokens(x, layout, masks, i, last=i == len(self.layers) - 1)
        return layout.restore(x)


def attention_mask(seqs: torch.Tensor) -> torch.Tensor:
    """Reference additive mask [B, 1, L, L]: -10000 where the key is in the future or is padding."""
    width = seqs.shape[1]
    allowed = torch.ones(width, width, dtype=torch.bool, device=seqs.device).tril()
    allowed = allowed & (seqs > 0)[:, None, None, :]
    return (~allowed).float() * -10000.0
