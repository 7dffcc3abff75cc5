"""Objectives on small hand-made batches: CE, InfoNCE against the official construction and a hand
computation, DuoRec's contrast modes, CL4SRec's augmentations."""
import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from rasekit.models.backbones import make_encoder
from rasekit.models.objectives import (CL4SRec, DuoRec, info_nce, item_crop, item_mask, item_reorder, make_objective, recommendation_loss)

N_ITEMS = 30


class StubEncoder(nn.Module):
    """Deterministic encoder: the embedding of the last item plus a per-row offset within one call, so
    that the views of one grouped pass differ and can be told apart. Records the batches it sees."""

    def __init__(self, n_items=N_ITEMS, d=4, mask_token=False):
        super().__init__()
        torch.manual_seed(0)
        self.item_embedding = nn.Embedding(n_items + 1 + int(mask_token), d)
        self.n_items, self.hidden_size = n_items, d
        self.mask_id = n_items + 1 if mask_token else None
        self.calls = []

    def item_weights(self):
        return self.item_embedding.weight[: self.n_items + 1]

    def forward(self, seqs, lengths):
        self.calls.append((seqs.clone(), lengths.clone()))
        last = seqs[torch.arange(len(seqs)), lengths - 1]
        return self.item_embedding(last) + 0.1 * torch.arange(len(seqs)).float()[:, None]


def batch(n=6, width=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, width + 1, (n,), generator=g)
    seqs = torch.randint(1, N_ITEMS + 1, (n, width), generator=g) * (torch.arange(width) < lengths[:, None])
    pos_lengths = torch.randint(1, width + 1, (n,), generator=g)
    pos = torch.randint(1, N_ITEMS + 1, (n, width), generator=g)
    pos = pos * (torch.arange(width) < pos_lengths[:, None])
    return {"seqs": seqs, "lengths": lengths, "targets": torch.randint(1, N_ITEMS + 1, (n,), generator=g),
            "pos_seqs": pos, "pos_lengths": pos_lengths}


def official_info_nce(z_i, z_j):
    """The official DuoRec construction: [positive, 2N - 2 negatives] logits, label 0, sim = dot."""
    n = len(z_i)
    z = torch.cat([z_i, z_j])
    sim = z @ z.T
    positives = torch.cat([torch.diag(sim, n), torch.diag(sim, -n)]).reshape(2 * n, 1)
    mask = torch.ones(2 * n, 2 * n, dtype=torch.bool).fill_diagonal_(False)
    for i in range(n):
        mask[i, n + i] = mask[n + i, i] = False
    logits = torch.cat([positives, sim[mask].reshape(2 * n, -1)], 1)
    return F.cross_entropy(logits, torch.zeros(2 * n, dtype=torch.long))


def test_info_nce_by_hand():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[1.0, 1.0], [0.0, 2.0]])
    z = torch.cat([a, b])
    expected = 0.0
    for i in range(4):
        partner = (i + 2) % 4
        others = [j for j in range(4) if j != i]
        logits = torch.stack([z[i] @ z[j] for j in others])
        expected += -(z[i] @ z[partner] - logits.logsumexp(0)) / 4
    assert info_nce(a, b).item() == pytest.approx(expected.item(), abs=1e-6)
    # tau divides every similarity
    scaled = info_nce(a / math.sqrt(2), b / math.sqrt(2))
    assert info_nce(a, b, tau=2.0).item() == pytest.approx(scaled.item(), abs=1e-6)


def test_info_nce_matches_official_construction():
    torch.manual_seed(0)
    a, b = torch.randn(7, 5), torch.randn(7, 5)
    assert torch.allclose(info_nce(a, b), official_info_nce(a, b), atol=1e-5)
    cos = info_nce(a, b, sim="cos")
    assert torch.allclose(cos, info_nce(F.normalize(a, dim=1), F.normalize(b, dim=1)), atol=1e-6)


def test_recommendation_loss_equals_cross_entropy_with_gradients():
    torch.manual_seed(0)
    encoder = StubEncoder()
    h = torch.randn(5, 4, requires_grad=True)
    targets = torch.tensor([1, 2, 3, 30, 0])
    loss = recommendation_loss(encoder, h, targets)
    loss.backward()
    grads = h.grad.clone(), encoder.item_embedding.weight.grad.clone()
    h.grad, encoder.item_embedding.weight.grad = None, None
    reference = F.cross_entropy(h @ encoder.item_embedding.weight.T, targets)  # all rows, padding too
    reference.backward()
    assert loss.item() == pytest.approx(reference.item(), abs=1e-6)
    assert torch.allclose(grads[0], h.grad, atol=1e-6)
    assert torch.allclose(grads[1], encoder.item_embedding.weight.grad, atol=1e-6)


def test_ce_objective():
    encoder, b = StubEncoder(), batch()
    objective = make_objective("ce")
    assert not objective.needs_positives
    h = encoder(b["seqs"], b["lengths"])
    expected = F.cross_entropy(h @ encoder.item_embedding.weight.T, b["targets"])
    assert objective.loss(encoder, b).item() == pytest.approx(expected.item(), abs=1e-6)


@pytest.mark.parametrize("contrast", ["us_x", "us", "un", "su"])
def test_duorec_modes(contrast):
    encoder, b = StubEncoder(), batch()
    objective = make_objective("duorec", contrast=contrast, lmd=0.3, lmd_sem=0.1)
    assert objective.needs_positives == (contrast != "un")
    loss = objective(encoder, b)
    assert len(encoder.calls) == 1  # every view in one grouped pass
    seqs, _ = encoder.calls[0]
    n = len(b["seqs"])
    views = {"us_x": ["s", "s", "pos"], "us": ["s", "s", "pos"],
             "un": ["s", "s"], "su": ["s", "pos"]}[contrast]
    assert len(seqs) == n * len(views)
    for k, view in enumerate(views):
        assert torch.equal(seqs[k * n:(k + 1) * n], b["seqs"] if view == "s" else b["pos_seqs"])
    out = StubEncoder()(seqs, encoder.calls[0][1])
    h, second = out[:n], out[n:2 * n]
    rec = F.cross_entropy(h @ encoder.item_embedding.weight.T, b["targets"])
    if contrast == "us_x":
        expected = rec + 0.1 * official_info_nce(second, out[2 * n:])
    elif contrast == "us":
        expected = rec + 0.3 * official_info_nce(h, second) + 0.1 * official_info_nce(h, out[2 * n:])
    elif contrast == "un":
        expected = rec + 0.3 * official_info_nce(h, second)
    else:
        expected = rec + 0.1 * official_info_nce(h, second)
    assert loss.item() == pytest.approx(expected.item(), abs=1e-5)


def test_duorec_rejects_unknown_mode():
    with pytest.raises(ValueError, match="contrast"):
        DuoRec(contrast="none")
    with pytest.raises(ValueError, match="unknown objective"):
        make_objective("s3rec")


def test_duorec_on_sasrec_trains():
    torch.manual_seed(0)
    encoder = make_encoder("sasrec", N_ITEMS, max_len=8)
    objective = make_objective("duorec")
    loss = objective(encoder, batch())
    loss.backward()
    assert torch.isfinite(loss) and encoder.item_embedding.weight.grad is not None


# ----------------------------------------------------------------------------------------------------
# CL4SRec


def long_batch(n=200, width=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, width + 1, (n,), generator=g)
    seqs = torch.randint(1, N_ITEMS + 1, (n, width), generator=g) * (torch.arange(width) < lengths[:, None])
    return seqs, lengths


def real(seq, length):
    return seq[: int(length)].tolist()


def test_item_crop_keeps_a_contiguous_run():
    seqs, lengths = long_batch()
    cropped, new_lengths = item_crop(seqs, lengths, 0.6, torch.Generator().manual_seed(1))
    assert torch.equal(new_lengths, (lengths * 0.6).floor().long().clamp(min=1))
    for s, l, c, nl in zip(seqs, lengths, cropped, new_lengths):
        original, run = real(s, l), real(c, nl)
        assert any(original[i:i + len(run)] == run for i in range(len(original) - len(run) + 1))
        assert torch.all(c[int(nl):] == 0)


def test_item_mask_masks_the_right_number_of_real_items():
    seqs, lengths = long_batch()
    masked, new_lengths = item_mask(seqs, lengths, 0.3, mask_id=N_ITEMS + 1,
                                    generator=torch.Generator().manual_seed(1))
    assert torch.equal(new_lengths, lengths)
    is_mask = masked == N_ITEMS + 1
    assert torch.equal(is_mask.sum(1), (lengths * 0.3).floor().long())
    assert torch.all(~is_mask | (seqs > 0))                   # only real items are masked
    assert torch.equal(masked[~is_mask], seqs[~is_mask])      # the rest is unchanged


def test_item_reorder_shuffles_one_window():
    seqs, lengths = long_batch()
    reordered, new_lengths = item_reorder(seqs, lengths, 0.6, torch.Generator().manual_seed(1))
    assert torch.equal(new_lengths, lengths)
    moved_any = False
    for s, l, r in zip(seqs, lengths, reordered):
        assert sorted(real(s, l)) == sorted(real(r, l)) and torch.all(r[int(l):] == 0)
        changed = (s != r).nonzero().flatten()
        if len(changed):
            moved_any = True
            assert changed.max() - changed.min() + 1 <= math.floor(int(l) * 0.6)
    assert moved_any


def test_cl4srec_augment_pairs_and_short_sequences():
    seqs, lengths = long_batch(n=600)
    objective = CL4SRec(generator=torch.Generator().manual_seed(0))
    (s1, l1), (s2, l2) = objective.augment(seqs, lengths, mask_id=N_ITEMS + 1)
    one = lengths == 1
    assert torch.equal(s1[one], seqs[one]) and torch.equal(s2[one], seqs[one])
    # the two views of a sequence never use the same augmentation: crop shortens, mask adds tokens
    cropped = [(l < lengths) for l in (l1, l2)]
    masked = [(s == N_ITEMS + 1).any(1) for s in (s1, s2)]
    longer = lengths >= 4  # long enough for crop and mask to be visible
    assert not torch.any(cropped[0] & cropped[1] & longer)
    assert not torch.any(masked[0] & masked[1] & longer)
    assert cropped[0][longer].float().mean().item() == pytest.approx(1 / 3, abs=0.08)


def test_cl4srec_loss():
    encoder = StubEncoder(mask_token=True)
    b = batch(n=8)
    objective = make_objective("cl4srec", lmd=0.2, generator=torch.Generator().manual_seed(3))
    assert not objective.needs_positives
    loss = objective(encoder, b)
    (s1, l1), (s2, l2) = CL4SRec(generator=torch.Generator().manual_seed(3)).augment(
        b["seqs"], b["lengths"], encoder.mask_id)
    seqs, lengths = encoder.calls[0]
    assert torch.equal(seqs, torch.cat([b["seqs"], s1, s2]))
    assert torch.equal(lengths, torch.cat([b["lengths"], l1, l2]))
    out = StubEncoder(mask_token=True)(seqs, lengths)
    n = len(b["seqs"])
    rec = F.cross_entropy(out[:n] @ encoder.item_weights().T, b["targets"])  # the mask row is not scored
    expected = rec + 0.2 * official_info_nce(out[n:2 * n], out[2 * n:])
    assert loss.item() == pytest.approx(expected.item(), abs=1e-5)


def test_cl4srec_needs_a_mask_token():
    with pytest.raises(ValueError, match="mask_token=True"):
        make_objective("cl4srec")(StubEncoder(mask_token=False), batch())
