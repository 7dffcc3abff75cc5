"""SASRec with BPR (its negative sampling) and BERT4Rec (the cloze masking, the prediction position)."""
import pytest
import torch
from torch.nn import functional as F

from rasekit.models.backbones import BERT4Rec, make_encoder
from rasekit.models.objectives import BPR, Cloze, make_objective, sample_negatives
from rasekit.settings import SettingsError

N_ITEMS = 12


def batch_of(*sequences):
    """Left-aligned sequences (their last item is the target) as a batch."""
    width = max(len(s) for s in sequences) - 1
    seqs = torch.zeros(len(sequences), width, dtype=torch.long)
    for row, s in enumerate(sequences):
        seqs[row, : len(s) - 1] = torch.as_tensor(s[:-1])
    return {"seqs": seqs, "lengths": torch.as_tensor([len(s) - 1 for s in sequences]),
            "targets": torch.as_tensor([s[-1] for s in sequences])}


def test_negatives_are_never_the_target_nor_padding_and_uniform_over_the_other_items():
    targets = torch.as_tensor([3, 1, 5] * 20_000)
    negatives = sample_negatives(targets, 5, torch.Generator().manual_seed(0))
    assert not (negatives == targets).any() and negatives.min() >= 1 and negatives.max() <= 5
    for target in (3, 1, 5):
        drawn = negatives[targets == target]
        share = torch.bincount(drawn, minlength=6)[1:].float() / len(drawn)
        others = [i for i in range(5) if i + 1 != target]
        assert share[target - 1] == 0 and torch.allclose(share[others], torch.full((4,), 0.25), atol=0.015)
    with pytest.raises(ValueError, match="at least 2 items"):
        sample_negatives(torch.as_tensor([1]), 1)


def test_bpr_loss_by_hand():
    torch.manual_seed(0)
    encoder = make_encoder("sasrec", N_ITEMS, hidden_dropout=0.0, attn_dropout=0.0).eval()
    batch = batch_of([1, 2, 3], [4, 5, 6, 7], [8, 9])
    loss = BPR(torch.Generator().manual_seed(1)).loss(encoder, batch)
    negatives = sample_negatives(batch["targets"], N_ITEMS, torch.Generator().manual_seed(1))
    h, e = encoder(batch["seqs"], batch["lengths"]), encoder.item_weights()
    pos, neg = (h * e[batch["targets"]]).sum(-1), (h * e[negatives]).sum(-1)
    assert torch.allclose(loss, -torch.log(torch.sigmoid(pos - neg)).mean(), atol=1e-6)
    loss.backward()
    assert encoder.item_embedding.weight.grad[batch["targets"]].abs().sum() > 0


def test_cloze_appends_the_target_and_masks_only_real_items():
    batch = batch_of([1, 2, 3, 4], [5, 6], [7, 8, 9, 10, 11, 12])
    cloze = Cloze(mask_ratio=0.5, generator=torch.Generator().manual_seed(0))
    mask_id = N_ITEMS + 1
    for _ in range(50):
        inputs, chosen, items = cloze.masked(batch["seqs"], batch["lengths"], batch["targets"], mask_id)
        full = torch.cat([batch["seqs"], torch.zeros(3, 1, dtype=torch.long)], 1)
        full[torch.arange(3), batch["lengths"]] = batch["targets"]  # the sequence with its target
        assert inputs.shape == full.shape and (inputs[chosen] == mask_id).all()
        assert (inputs[~chosen] == full[~chosen]).all() and (items == full[chosen]).all()
        assert (full[chosen] > 0).all() and chosen.any(1).all()  # never padding, one at least per row
    # a ratio so small that nothing is drawn: the last item (the target) is the one masked
    inputs, chosen, items = Cloze(mask_ratio=1e-9).masked(batch["seqs"], batch["lengths"], batch["targets"], mask_id)
    assert chosen.sum() == 3 and (items == batch["targets"]).all()
    assert (chosen.nonzero()[:, 1] == batch["lengths"]).all()
    with pytest.raises(SettingsError, match="mask_ratio"):
        Cloze(mask_ratio=0)


def test_bert4rec_predicts_at_the_mask_appended_after_the_last_item():
    torch.manual_seed(0)
    encoder = BERT4Rec(N_ITEMS, max_len=6).eval()
    batch = batch_of([1, 2, 3, 4], [5, 6], [7, 8, 9, 10, 11, 12, 1])  # one of the longest length, 6
    h = encoder(batch["seqs"], batch["lengths"])
    rows = torch.arange(3)
    by_hand = torch.cat([batch["seqs"], torch.zeros(3, 1, dtype=torch.long)], 1)
    by_hand[rows, batch["lengths"]] = encoder.mask_id
    outputs = encoder.encode_bidirectional(by_hand, batch["lengths"] + 1)
    assert torch.allclose(h, outputs[rows, batch["lengths"]], atol=1e-6)
    # bidirectional: the first item's output depends on the items after it (a causal encoder's does not)
    changed = by_hand.clone()
    changed[0, 2] = 9
    assert not torch.allclose(encoder.encode_bidirectional(changed, batch["lengths"] + 1)[0, 0], outputs[0, 0])
    # padding changes nothing: one sequence alone, or with columns of padding, gives the same output
    alone = encoder(batch["seqs"][1:2, :2], batch["lengths"][1:2])
    padded = encoder(torch.cat([batch["seqs"][1:2], torch.zeros(1, 4, dtype=torch.long)], 1), batch["lengths"][1:2])
    assert torch.allclose(alone, h[1:2], atol=1e-5) and torch.allclose(padded, h[1:2], atol=1e-5)
    assert encoder.item_weights().shape[0] == N_ITEMS + 1  # the mask token is never scored
    with pytest.raises(NotImplementedError, match="bidirectional"):
        encoder.all_positions(batch["seqs"], batch["lengths"])


def test_bert4rec_trains_with_the_cloze_objective_and_only_with_it():
    torch.manual_seed(0)
    encoder = make_encoder("bert4rec", N_ITEMS, max_len=6)
    batch = batch_of([1, 2, 3, 4], [5, 6], [7, 8, 9, 10, 11, 12, 1])
    loss = make_objective("cloze").loss(encoder, batch)
    loss.backward()
    assert torch.isfinite(loss) and encoder.item_embedding.weight.grad[encoder.mask_id].abs().sum() > 0
    with pytest.raises(ValueError, match="bidirectional"):
        make_objective("cloze").loss(make_encoder("sasrec", N_ITEMS), batch)


def test_the_kit_refuses_mismatched_encoder_and_objective_before_loading_data():
    from rasekit.runs import experiments
    with pytest.raises(SettingsError, match="go together"):
        experiments.pretrain("NoSuchData", "sasrec", "cloze", 1, "smoke")
    with pytest.raises(SettingsError, match="go together"):
        experiments.pretrain("NoSuchData", "bert4rec", "ce", 1, "smoke")
