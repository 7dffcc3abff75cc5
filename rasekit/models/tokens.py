"""A batch's length groups laid out as one token array: the layout of the encoders' "fast" kernels.

The exact kernels encode each length group on its own, so every position-wise layer (projections,
feed-forward, layer norms, dropout) runs once per group, as many small products and element-wise
kernels. Here the groups lie one after another in one array [T, d], each group's sequences row by row at
the group's width: the position-wise layers run once per batch, attention per group on views of the
array. Groups, widths and dropout masks are those of the exact kernels (the masks drawn in their order,
in one draw), so both compute the same values; only sums over tokens, such as weight gradients, add the
same terms in another order (float sums may differ in their last bits).
"""
from __future__ import annotations

import torch

from rasekit.models.dropout import keep_from_bytes, random_bytes


class TokenLayout:
    """Where each sequence of a batch lies in the token array of its length groups."""

    def __init__(self, groups: list[tuple[torch.Tensor, int]], lengths: torch.Tensor):
        self.groups = groups
        self.sizes = [len(index) * width for index, width in groups]  # tokens per group
        self.counts = [len(index) for index, _ in groups]             # sequences per group
        self.order = torch.cat([index for index, _ in groups])        # batch rows in layout order
        self.lengths = lengths[self.order]
        starts = [sum(self.sizes[:g]) for g in range(len(groups))]
        self.row_start = torch.cat([start + width * torch.arange(len(index), device=lengths.device)
                                    for start, (index, width) in zip(starts, groups)])  # layout order

    def tokens(self, seqs: torch.Tensor) -> torch.Tensor:
        """The item ids [T] of the array."""
        return torch.cat([seqs[index, :width].flatten() for index, width in self.groups])

    def positions(self, device) -> torch.Tensor:
        """The position of every token in its sequence [T]."""
        return torch.cat([torch.arange(width, device=device).repeat(len(index))
                          for index, width in self.groups])

    def last(self) -> torch.Tensor:
        """Where each sequence's last item lies in the array (layout order)."""
        return self.row_start + self.lengths - 1

    def views(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[T, ...] -> per group [n, width, ...] (views; the backward pass joins their gradients once)."""
        return [part.view(len(index), width, *x.shape[1:])
                for part, (index, width) in zip(x.split(self.sizes), self.groups)]

    def rows(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[B, ...] in layout order -> per group [n, ...]."""
        return list(x.split(self.counts))

    def restore(self, x: torch.Tensor) -> torch.Tensor:
        """[B, ...] in layout order -> batch order."""
        return x[torch.argsort(self.order)]


class GroupedMasks:
    """The dropout masks the exact kernels draw for one batch of SASRec's training, drawn at once in
    their order: per group, the input's, then per layer the attention probabilities', the attention
    output's and the feed-forward output's, the last layer's for one row per sequence. A probability
    of 0 draws nothing, as in the exact kernels. All masks are made in one pass per probability."""

    def __init__(self, layout: TokenLayout, n_layers: int, heads: int, hidden: int, p_hidden: float,
                 p_attention: float, dtype: torch.dtype, device):
        self.p = {"input": p_hidden, "attention": p_attention, "residual": p_hidden, "feed_forward": p_hidden}
        plan = []  # (name, layer, group, elements)
        for g, (index, width) in enumerate(layout.groups):
            n = len(index)
            plan.append(("input", -1, g, n * width * hidden))
            for layer in range(n_layers):
                rows = n * width if layer < n_layers - 1 else n  # the last layer: one row per sequence
                plan += [("attention", layer, g, heads * rows * width),
                         ("residual", layer, g, rows * hidden), ("feed_forward", layer, g, rows * hidden)]
        plan = [entry for entry in plan if self.p[entry[0]] > 0]
        drawn, starts = random_bytes([size for *_, size in plan], device)
        self.keep = {p: keep_from_bytes(drawn, p, dtype) for p in {self.p[name] for name, *_ in plan}}
        self.blocks = {(name, layer, g): (start, size) for (name, layer, g, size), start in zip(plan, starts)}
        self.n_groups, self.hidden = len(layout.groups), hidden

    def _block(self, name: str, layer: int, group: int) -> torch.Tensor:
        start, size = self.blocks[name, layer, group]
        return self.keep[self.p[name]][start:start + size]

    def positionwise(self, name: str, layer: int) -> torch.Tensor | None:
        """The keep mask [rows, hidden] of every group, in layout order (None when p is 0)."""
        if self.p[name] == 0:
            return None
        return torch.cat([self._block(name, layer, g) for g in range(self.n_groups)]).view(-1, self.hidden)

    def attention(self, layer: int, group: int, shape) -> torch.Tensor | None:
        """The keep mask of group `group`'s attention probabilities, of their shape (None when p is 0)."""
        return None if self.p["attention"] == 0 else self._block("attention", layer, group).view(shape)


class NoDropout:
    """The masks of evaluation: none."""

    def positionwise(self, name: str, layer: int) -> None:
        return None

    def attention(self, layer: int, group: int, shape) -> None:
        return None
