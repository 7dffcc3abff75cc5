"""Stage-1 training objectives: a scalar loss from an encoder and a batch.

A batch is a dict of tensors: ``seqs`` [B, L], ``lengths`` [B], ``targets`` [B], and, for objectives with
``needs_positives``, DuoRec's same-target positives ``pos_seqs`` [B, L] and ``pos_lengths`` [B].

Every objective contains the recommendation loss L_rec: cross-entropy of h E^T over all n_items + 1 rows
(the official code scores the padding row too). All encoder passes of a batch (dropout views, positives,
augmented views) run as one length-grouped forward: each row gets its own dropout mask, so this is the
same as separate passes, and it is faster.
"""
from __future__ import annotations

import inspect

import torch
from torch.nn import functional as F

from rasekit import settings
from rasekit.models.encoders import append_at_length

Batch = dict[str, torch.Tensor]


class _ScoreCrossEntropy(torch.autograd.Function):
    """mean_i CE(softmax(h_i E^T), target_i), equal to F.cross_entropy(h @ E.T, targets).

    Fused because the [B, n_items + 1] logits dominate a training step: the softmax is computed in place
    and kept for the backward pass (grad of the logits = softmax - one-hot), which saves the separate
    log-softmax, its backward and a zero-filled gradient of the same size (about a third of the CE time).
    """

    @staticmethod
    def forward(ctx, h, weights, targets):
        logits = h @ weights.T
        rows = torch.arange(h.shape[0], device=h.device)
        target_logit = logits[rows, targets]
        top = logits.amax(1, keepdim=True)
        probs = logits.sub_(top).exp_()
        total = probs.sum(1, keepdim=True)
        probs.div_(total)
        ctx.save_for_backward(h, weights, targets, probs)
        return (total.log().squeeze(1) + top.squeeze(1) - target_logit).mean()

    @staticmethod
    def backward(ctx, grad):
        if getattr(ctx, "done", False):
            raise RuntimeError("the fused cross-entropy reuses its softmax in place: backward runs once")
        ctx.done = True
        h, weights, targets, probs = ctx.saved_tensors
        probs[torch.arange(h.shape[0], device=h.device), targets] -= 1.0
        grad_logits = probs.mul_(grad / h.shape[0])  # the saved softmax is not needed again
        return grad_logits @ weights, grad_logits.T @ h, None


# Items per block of _BlockScoreCrossEntropy: a block of a batch of 256 is 2 MB of logits; 1024 and 2048
# measured the same here.
ITEM_BLOCK = 2048


class _BlockScoreCrossEntropy(torch.autograd.Function):
    """The same loss for the fast kernels (`rasekit.models.encoders.KERNELS`), over blocks of ITEM_BLOCK
    items: each block's logits are made and exponentiated while they are in the cache, which about
    doubles the rate of the logits' product here (their [B, n_items + 1] output no longer streams through
    memory). Its gradients are made in the forward pass, block by block, once the normaliser is known;
    the backward pass only scales them."""

    @staticmethod
    def forward(ctx, h, weights, targets):
        blocks = weights.split(ITEM_BLOCK)
        exps, tops, sums = [], [], []
        for block in blocks:  # each block's exp(logits - its row maxima), and their row sums
            logits = h @ block.T
            tops.append(logits.amax(1, keepdim=True))
            exps.append(logits.sub_(tops[-1]).exp_())
            sums.append(exps[-1].sum(1, keepdim=True))
        top = torch.cat(tops, 1)
        best = top.amax(1, keepdim=True)
        scale = (top - best).exp_()                       # block maxima relative to the row maximum
        total = (torch.cat(sums, 1) * scale).sum(1, keepdim=True)
        loss = (total.log() + best).squeeze(1) - (h * weights[targets]).sum(1)
        if any(ctx.needs_input_grad[:2]):
            ctx.save_for_backward(*_block_gradients(h, weights, targets, blocks, exps, scale / total))
        return loss.mean()

    @staticmethod
    def backward(ctx, grad):
        grad_h, grad_weights = ctx.saved_tensors
        scale = grad / grad_h.shape[0]
        return grad_h * scale, grad_weights * scale, None


def _block_gradients(h, weights, targets, blocks, exps, factors):
    """Gradients of the summed loss: softmax - one-hot times weights (for h) and times h (for the weights).
    A block's softmax is its exp(logits - block maximum) times its row factor exp(maximum - lse)."""
    grad_h = -weights[targets]                              # the one-hot part
    grad_weights = torch.empty_like(weights)
    for block, probs, factor, out in zip(blocks, exps, factors.split(1, 1), grad_weights.split(ITEM_BLOCK)):
        probs.mul_(factor)
        grad_h = torch.addmm(grad_h, probs, block)  # not in place: the profiler counts its FLOPs
        torch.mm(probs.T, h, out=out)
    grad_weights.index_add_(0, targets, h, alpha=-1.0)
    return grad_h, grad_weights


def recommendation_loss(encoder, h: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """L_rec: softmax cross-entropy of the next item over every row of the tied item embedding."""
    fused = _BlockScoreCrossEntropy if getattr(encoder, "kernels", "exact") == "fast" else _ScoreCrossEntropy
    return fused.apply(h, encoder.item_weights(), targets)


def info_nce(a: torch.Tensor, b: torch.Tensor, tau: float = 1.0, sim: str = "dot") -> torch.Tensor:
    """NT-Xent over the 2N vectors Z = [a; b], as in the official DuoRec/CL4SRec `info_nce`.

    Each anchor's positive is its partner (row i of a with row i of b); the negatives are the other 2N - 2
    vectors of the batch, with no masking of rows that happen to share a target. Masking the anchor's
    similarity to itself with -inf and taking cross-entropy against the partner is the same softmax as the
    official [positive, negatives] logits with label 0.
    """
    n = a.shape[0]
    z = torch.cat([a, b])
    if sim == "dot":
        logits = z @ z.T / tau
    elif sim == "cos":
        unit = F.normalize(z, dim=-1)
        logits = unit @ unit.T / tau
    else:
        raise ValueError(f"unknown similarity {sim!r}; expected 'dot' or 'cos'")
    self_mask = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    partner = torch.arange(2 * n, device=z.device).roll(n)  # i <-> i + N
    return F.cross_entropy(logits, partner)


def encode_together(encoder, seqs: list[torch.Tensor], lengths: list[torch.Tensor]) -> list[torch.Tensor]:
    """One grouped encoder pass over several stacked batches; returns one [B, d] block per batch."""
    h = encoder(torch.cat(seqs), torch.cat(lengths))
    return list(h.split([s.shape[0] for s in seqs]))


class CrossEntropy:
    """Plain next-item cross-entropy (SASRec trained with loss_type CE)."""

    needs_positives = False

    def loss(self, encoder, batch: Batch) -> torch.Tensor:
        h = encoder(batch["seqs"], batch["lengths"])
        return recommendation_loss(encoder, h, batch["targets"])

    __call__ = loss


class DuoRec:
    """DuoRec (Qiu et al., WSDM 2022), with the `contrast` modes of the official `calculate_loss`.

    h is the user representation (one dropout view of s), z a second dropout view of s, z+ a dropout view
    of the same-target positive s+:

    * 'us_x' (default, used by RaSeRec): L_rec(h) + lmd_sem * InfoNCE(z, z+)
    * 'us':  L_rec(h) + lmd * InfoNCE(h, z) + lmd_sem * InfoNCE(h, z+)
    * 'un':  L_rec(h) + lmd * InfoNCE(h, z)                (unsupervised, dropout only)
    * 'su':  L_rec(h) + lmd_sem * InfoNCE(h, z+)           (supervised only)

    For plain SASRec (the official "any other value") use the 'ce' objective.
    """

    MODES = ("us_x", "us", "un", "su")

    def __init__(self, contrast: str = "us_x", lmd: float = 0.1, lmd_sem: float = 0.1, tau: float = 1.0,
                 sim: str = "dot"):
        if contrast not in self.MODES:
            raise ValueError(f"unknown contrast {contrast!r}; expected one of {self.MODES} "
                             "(use the 'ce' objective for plain SASRec)")
        self.contrast, self.lmd, self.lmd_sem, self.tau, self.sim = contrast, lmd, lmd_sem, tau, sim
        self.needs_positives = contrast != "un"

    def loss(self, encoder, batch: Batch) -> torch.Tensor:
        seqs, lengths = batch["seqs"], batch["lengths"]
        views, view_lengths = [seqs], [lengths]  # h
        if self.contrast != "su":
            views.append(seqs)                    # z: a second dropout view
            view_lengths.append(lengths)
        if self.needs_positives:
            views.append(batch["pos_seqs"])       # z+
            view_lengths.append(batch["pos_lengths"])
        h, *rest = encode_together(encoder, views, view_lengths)
        loss = recommendation_loss(encoder, h, batch["targets"])
        nce = lambda a, b: info_nce(a, b, self.tau, self.sim)  # noqa: E731
        if self.contrast == "us_x":
            z, z_pos = rest
            return loss + self.lmd_sem * nce(z, z_pos)
        if self.contrast == "us":
            z, z_pos = rest
            return loss + self.lmd * nce(h, z) + self.lmd_sem * nce(h, z_pos)
        if self.contrast == "un":
            return loss + self.lmd * nce(h, rest[0])
        return loss + self.lmd_sem * nce(h, rest[0])  # 'su'

    __call__ = loss


def sample_negatives(targets: torch.Tensor, n_items: int, generator=None) -> torch.Tensor:
    """One item per target, uniform over the real items 1..n_items other than the target (never the
    padding row 0, never the target itself)."""
    if n_items < 2:
        raise ValueError(f"negative sampling needs at least 2 items, the data has {n_items}")
    draw = torch.randint(1, n_items, targets.shape, device=targets.device, generator=generator)
    return draw + (draw >= targets).long()  # skip the target: 1..n_items minus one value, uniformly


class BPR:
    """SASRec trained with BPR and one sampled negative per instance (the loss most published tables use
    for SASRec; RecBole's loss_type BPR): mean of -log sigmoid(h e_target - h e_negative)."""

    needs_positives = False

    def __init__(self, generator: torch.Generator | None = None):
        self.generator = generator

    def loss(self, encoder, batch: Batch) -> torch.Tensor:
        h = encoder(batch["seqs"], batch["lengths"])
        targets = batch["targets"]
        negatives = sample_negatives(targets, encoder.n_items, self.generator)
        weights = encoder.item_weights()
        gap = (h * (weights[targets] - weights[negatives])).sum(-1)
        return -F.logsigmoid(gap).mean()

    __call__ = loss


class Cloze:
    """BERT4Rec's cloze objective (Sun et al., CIKM 2019). The training instance's target is appended to its
    sequence; each real position is replaced by the mask token with probability `mask_ratio` (a sequence
    with none masked gets its last item, the target, masked, as the paper's extra samples that mask only
    the last item); the loss is the cross-entropy of the masked items over every item row.
    mask_ratio 0.2 is RecBole's BERT4Rec default (the DuoRec code base); the paper chose 0.6 on Beauty."""

    needs_positives = False

    def __init__(self, mask_ratio: float = 0.2, generator: torch.Generator | None = None):
        settings.real("mask_ratio", mask_ratio, 0, 1, low_open=True)
        self.mask_ratio, self.generator = mask_ratio, generator

    def masked(self, seqs: torch.Tensor, lengths: torch.Tensor, targets: torch.Tensor, mask_id: int):
        """(input with masks [B, W + 1], which positions are masked, the items there); W: the longest
        sequence of the batch."""
        full = append_at_length(seqs[:, : int(lengths.max())], lengths, targets)
        real = full > 0
        chosen = (torch.rand(full.shape, device=full.device, generator=self.generator) < self.mask_ratio) & real
        none = ~chosen.any(1)
        chosen[none.nonzero().squeeze(1), lengths[none]] = True
        return full.masked_fill(chosen, mask_id), chosen, full[chosen]

    def loss(self, encoder, batch: Batch) -> torch.Tensor:
        if not getattr(encoder, "bidirectional", False):
            raise ValueError("the cloze objective trains a bidirectional encoder: use encoder 'bert4rec'")
        inputs, chosen, items = self.masked(batch["seqs"], batch["lengths"], batch["targets"], encoder.mask_id)
        h = encoder.encode_bidirectional(inputs, batch["lengths"] + 1)[chosen]
        return recommendation_loss(encoder, h, items)

    __call__ = loss


# ----------------------------------------------------------------------------------------------------
# CL4SRec augmentations. Each draws from torch's generator (global unless one is passed), vectorised
# over the batch; sequences are left-aligned and zero-padded, in and out.


def _uniform_int(high: torch.Tensor, generator) -> torch.Tensor:
    """One integer uniform on 0..high (inclusive) per element."""
    u = torch.rand(high.shape, dtype=torch.float64, device=high.device, generator=generator)
    return (u * (high + 1)).floor().long()


def item_crop(seqs: torch.Tensor, lengths: torch.Tensor, eta: float, generator=None):
    """Keep a random contiguous run of floor(eta * len) items, moved to the front (at least one item,
    where the official code would leave an empty sequence)."""
    keep = (lengths * eta).floor().long().clamp(min=1)
    begin = _uniform_int(lengths - keep, generator)
    position = torch.arange(seqs.shape[1], device=seqs.device)
    source = (begin[:, None] + position).clamp(max=seqs.shape[1] - 1)
    cropped = seqs.gather(1, source) * (position < keep[:, None])
    return cropped, keep


def item_mask(seqs: torch.Tensor, lengths: torch.Tensor, gamma: float, mask_id: int, generator=None):
    """Replace floor(gamma * len) distinct random items by the mask token."""
    n_mask = (lengths * gamma).floor().long()
    keys = torch.rand(seqs.shape, device=seqs.device, generator=generator)
    keys = keys.masked_fill(seqs == 0, 2.0)  # padding sorts last and is never chosen
    rank = keys.argsort(1).argsort(1)        # rank of each position in a random order of the real ones
    return seqs.masked_fill(rank < n_mask[:, None], mask_id), lengths


def item_reorder(seqs: torch.Tensor, lengths: torch.Tensor, beta: float, generator=None):
    """Shuffle a random contiguous run of floor(beta * len) items in place."""
    n_shuffle = (lengths * beta).floor().long()
    begin = _uniform_int(lengths - n_shuffle, generator)
    position = torch.arange(seqs.shape[1], device=seqs.device, dtype=torch.float64).expand(seqs.shape)
    inside = (position >= begin[:, None]) & (position < (begin + n_shuffle)[:, None])
    # inside the run, random keys in [begin - 0.5, begin + n - 0.5) keep it between its neighbours
    u = torch.rand(seqs.shape, dtype=torch.float64, device=seqs.device, generator=generator)
    keys = torch.where(inside, begin[:, None] - 0.5 + u * n_shuffle[:, None], position)
    return seqs.gather(1, keys.argsort(1)), lengths


class CL4SRec:
    """CL4SRec (Xie et al., ICDE 2022): L_rec(h) + lmd * InfoNCE(f(a1(s)), f(a2(s))).

    a1, a2 are two different augmentations drawn uniformly among crop, mask and reorder; sequences of one
    item are left as they are (both as in the official `cl4srec_aug` of the DuoRec code base).
    Defaults: eta = 0.6, gamma = 0.3, beta = 0.6 are the defaults of `item_crop`, `item_mask`,
    `item_reorder` in the DuoRec repository (recbole/data/dataloader/sequential_dataloader.py, the same in
    model/sequential_recommender/cl4srec.py); lmd = 0.1 from its properties/model/CL4SRec.yaml; tau = 1
    and sim = 'dot' are the DuoRec code's defaults. The CL4SRec paper studies these rates as
    hyper-parameters in [0.1, 0.9] and does not fix one default; we keep the code's values.
    The mask token is the encoder's own extra row: build the encoder with mask_token=True.
    """

    needs_positives = False

    def __init__(self, lmd: float = 0.1, tau: float = 1.0, sim: str = "dot", eta: float = 0.6,
                 gamma: float = 0.3, beta: float = 0.6, generator: torch.Generator | None = None):
        self.lmd, self.tau, self.sim = lmd, tau, sim
        self.eta, self.gamma, self.beta = eta, gamma, beta
        self.generator = generator

    def augment(self, seqs: torch.Tensor, lengths: torch.Tensor, mask_id: int):
        """Two augmented views (seqs, lengths) of the batch."""
        g = self.generator
        views = [item_crop(seqs, lengths, self.eta, g), item_mask(seqs, lengths, self.gamma, mask_id, g),
                 item_reorder(seqs, lengths, self.beta, g)]
        # an ordered pair of distinct augmentations, uniform over the 6 pairs
        keys = torch.rand(seqs.shape[0], 3, device=seqs.device, generator=g)
        choice = keys.argsort(1)[:, :2]
        choice = choice.masked_fill((lengths <= 1)[:, None], 3)  # 3 = unchanged
        views.append((seqs, lengths))
        all_seqs = torch.stack([v[0] for v in views])          # [4, B, L]
        all_lengths = torch.stack([v[1] for v in views])       # [4, B]
        rows = torch.arange(seqs.shape[0], device=seqs.device)
        return [(all_seqs[choice[:, j], rows], all_lengths[choice[:, j], rows]) for j in range(2)]

    def loss(self, encoder, batch: Batch) -> torch.Tensor:
        if getattr(encoder, "mask_id", None) is None:
            raise ValueError("CL4SRec masks items with a token of its own: build the encoder with "
                             "mask_token=True (e.g. make_encoder('sasrec', n_items, mask_token=True))")
        seqs, lengths = batch["seqs"], batch["lengths"]
        (s1, l1), (s2, l2) = self.augment(seqs, lengths, encoder.mask_id)
        h, v1, v2 = encode_together(encoder, [seqs, s1, s2], [lengths, l1, l2])
        contrastive = info_nce(v1, v2, self.tau, self.sim)
        return recommendation_loss(encoder, h, batch["targets"]) + self.lmd * contrastive

    __call__ = loss


OBJECTIVES = {"ce": CrossEntropy, "duorec": DuoRec, "cl4srec": CL4SRec, "bpr": BPR, "cloze": Cloze}


def make_objective(name: str, **params):
    """Build an objective by name (see OBJECTIVES); `params` override its defaults."""
    try:
        cls = OBJECTIVES[name.lower()]
    except KeyError:
        raise ValueError(f"unknown objective {name!r}; expected one of {sorted(OBJECTIVES)}") from None
    settings.known(f"{name} objective", params, inspect.signature(cls).parameters)
    return cls(**params)
