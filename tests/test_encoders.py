"""Encoders on small generated batches: shapes, causal masking, fast path == reference path, grouping,
parameter count, determinism, and the cheap dropout masks."""
import pytest
import torch

from rasekit.models.dropout import dropout, dropout_add, has_fast_mask, keep_mask
from rasekit.models.backbones import make_encoder
from rasekit.models.encoders import SASRec, length_groups

N_ITEMS = 40
WIDTH = 12


def random_batch(n=16, width=WIDTH, n_items=N_ITEMS, seed=0):
    """Left-aligned, zero-padded sequences with lengths 1..width."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, width + 1, (n,), generator=g)
    lengths[0], lengths[1] = 1, width  # the extremes are always present
    seqs = torch.randint(1, n_items + 1, (n, width), generator=g)
    seqs = seqs * (torch.arange(width) < lengths[:, None])
    return seqs, lengths


def small(name, **params):
    torch.manual_seed(0)
    defaults = {"sasrec": dict(max_len=WIDTH), "gru4rec": {}}[name]
    return make_encoder(name, N_ITEMS, **{**defaults, **params}).eval()


@pytest.mark.parametrize("name", ["sasrec", "gru4rec"])
def test_interface_shapes(name):
    encoder = small(name)
    seqs, lengths = random_batch()
    assert encoder(seqs, lengths).shape == (16, encoder.hidden_size)
    assert encoder.all_positions(seqs, lengths).shape == (16, WIDTH, encoder.hidden_size)
    assert encoder.item_weights().shape == (N_ITEMS + 1, encoder.hidden_size)
    assert encoder.item_embedding.num_embeddings == N_ITEMS + 1


def test_sasrec_parameter_count_on_beauty():
    assert sum(p.numel() for p in SASRec(12101).parameters()) == 877_824


def test_sasrec_init_matches_official():
    encoder = SASRec(12101)
    weight = encoder.item_embedding.weight
    assert weight[0].abs().sum() > 0  # N(0, 0.02) overwrites the padding row too
    assert abs(weight.std().item() - 0.02) < 1e-3
    layer = encoder.layers[0]
    assert torch.all(layer.attention.qkv.bias == 0) and torch.all(layer.feed_forward.dense_1.bias == 0)
    assert torch.all(layer.attention.layer_norm.weight == 1) and encoder.layer_norm.eps == 1e-12


@pytest.mark.parametrize("name", ["sasrec", "gru4rec"])
def test_fast_path_equals_reference_in_eval(name):
    encoder = small(name)
    seqs, lengths = random_batch(n=32)
    fast_h, fast_all = encoder(seqs, lengths), encoder.all_positions(seqs, lengths)
    encoder.fast = False
    plain_h, plain_all = encoder(seqs, lengths), encoder.all_positions(seqs, lengths)
    assert torch.allclose(fast_h, plain_h, atol=1e-5)
    assert torch.allclose(fast_all, plain_all, atol=1e-5)


@pytest.mark.parametrize("name", ["sasrec", "gru4rec"])
@pytest.mark.parametrize("fast", [True, False])
def test_output_ignores_later_items_and_padding(name, fast):
    encoder = small(name)
    encoder.fast = fast
    seqs, lengths = random_batch()
    h = encoder(seqs, lengths)
    changed = seqs.clone()
    later = torch.arange(WIDTH) >= lengths[:, None]
    changed[later] = 7  # garbage where padding was
    assert torch.allclose(encoder(changed, lengths), h, atol=1e-5)
    # outputs at real positions do not depend on anything after them
    positions = encoder.all_positions(seqs, lengths)
    cut = seqs.clone()
    cut[:, 5:] = 0
    cut_lengths = lengths.clamp(max=5)
    expected = positions[:, :5] * (cut[:, :5, None] > 0)
    assert torch.allclose(encoder.all_positions(cut, cut_lengths)[:, :5], expected, atol=1e-5)


@pytest.mark.parametrize("name", ["sasrec", "gru4rec"])
def test_all_positions_are_prefix_representations(name):
    encoder = small(name)
    seqs, lengths = random_batch(n=4)
    positions = encoder.all_positions(seqs, lengths)
    for b in range(4):
        for t in range(1, int(lengths[b]) + 1):
            prefix = seqs[b:b + 1].clone()
            prefix[:, t:] = 0
            h = encoder(prefix, torch.tensor([t]))
            assert torch.allclose(positions[b, t - 1], h[0], atol=1e-5)
    assert torch.all(positions[torch.arange(WIDTH) >= lengths[:, None]] == 0)


def test_batch_order_and_grouping_do_not_change_outputs():
    encoder = small("sasrec")
    seqs, lengths = random_batch(n=32)
    h = encoder(seqs, lengths)
    perm = torch.randperm(32, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(encoder(seqs[perm], lengths[perm]), h[perm], atol=1e-6)
    encoder.group_overhead = 10 ** 9  # one group padded to the longest
    assert torch.allclose(encoder(seqs, lengths), h, atol=1e-5)


def test_length_groups_cover_the_batch_with_rounded_widths():
    lengths = torch.tensor([1, 3, 50, 4, 9, 17, 2, 33, 8, 5])
    groups = length_groups(lengths, max_width=50, multiple=8, overhead=0)
    index = torch.cat([i for i, _ in groups])
    assert sorted(index.tolist()) == list(range(10))
    for i, width in groups:
        assert torch.all(lengths[i] <= width) and (width % 8 == 0 or width == 50)
    assert len(length_groups(lengths, 50, 8, overhead=10 ** 9)) == 1


def test_training_mode_is_deterministic_per_seed_and_dropout_is_active():
    encoder = small("sasrec")
    encoder.train()
    seqs, lengths = random_batch()
    torch.manual_seed(5)
    a = encoder(seqs, lengths)
    torch.manual_seed(5)
    b = encoder(seqs, lengths)
    c = encoder(seqs, lengths)
    assert torch.equal(a, b) and not torch.allclose(b, c)


@pytest.mark.parametrize("fast", [True, False])
def test_gradients_reach_every_parameter(fast):
    encoder = small("sasrec")
    encoder.train()
    encoder.fast = fast
    seqs, lengths = random_batch()
    (encoder(seqs, lengths) @ encoder.item_weights().T).logsumexp(1).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in encoder.parameters())


def test_mask_token_adds_a_row_that_is_not_scored():
    encoder = small("sasrec", mask_token=True)
    assert encoder.mask_id == N_ITEMS + 1
    assert encoder.item_embedding.num_embeddings == N_ITEMS + 2
    assert encoder.item_weights().shape[0] == N_ITEMS + 1


def test_gru4rec_shapes_and_sizes():
    encoder = small("gru4rec")
    assert encoder.hidden_size == 64 and encoder.gru.hidden_size == 128 and encoder.gru.bias is False
    assert encoder.dense.in_features == 128 and encoder.emb_dropout.p == 0.3


def test_unknown_encoder_name():
    with pytest.raises(ValueError, match="unknown encoder"):
        make_encoder("caser", 10)


# ----------------------------------------------------------------------------------------------------
# cheap dropout


@pytest.mark.parametrize("p", [0.5, 0.25])
def test_keep_mask_rate_and_scale(p):
    torch.manual_seed(0)
    mask = keep_mask((400_000,), p, torch.zeros(1))
    assert torch.allclose(mask.unique(), torch.tensor([0.0, 1 / (1 - p)]))
    assert abs((mask > 0).float().mean().item() - (1 - p)) < 0.005  # about 6 standard errors
    assert abs(mask.mean().item() - 1.0) < 0.01  # expectation preserved


def test_dropout_helpers():
    x = torch.randn(1000)
    assert dropout(x, 0.5, training=False) is x
    assert torch.equal(dropout_add(x, x, 0.5, training=False), 2 * x)
    assert has_fast_mask(0.5) and not has_fast_mask(0.3) and not has_fast_mask(0.0)
    torch.manual_seed(0)
    y = dropout(x, 0.3, training=True)  # not a multiple of 1/256: torch's own dropout
    kept = y != 0
    assert torch.allclose(y[kept], x[kept] / 0.7)
    torch.manual_seed(1)
    a = dropout(x, 0.5, True)
    torch.manual_seed(1)
    assert torch.equal(a, dropout(x, 0.5, True))  # torch's global generator drives the masks
