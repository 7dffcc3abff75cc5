"""The Retrieval-Augmented Module: shapes, masking, channel skipping and the linearity trick."""
import math

import pytest
import torch

from rasekit.models.ram import CrossAttention, RetrievalAugmentedModule

D, K = 16, 5


def inputs(b=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, D, generator=g), torch.randn(b, K, D, generator=g), torch.randn(b, K, D, generator=g)


def ram(**kw):
    torch.manual_seed(0)
    kw = {"hidden": D, "inner": 32, **kw}
    return RetrievalAugmentedModule(**kw).eval()


def reference_ca(ca: CrossAttention, q, keys, values, mask):
    """The straightforward formula of docs/method.md §6.1, projecting every memory."""
    b, h, dh = q.shape[0], ca.n_heads, ca.head_dim
    qh = ca.query(q).view(b, h, dh)
    kh = ca.key(keys).view(b, K, h, dh)
    vh = ca.value(values).view(b, K, h, dh)
    scores = torch.einsum("bhj,bkhj->bhk", qh, kh) / (math.sqrt(dh) * ca.tau)
    probs = torch.softmax(scores.masked_fill(~mask[:, None], float("-inf")), -1)
    return ca.out(torch.einsum("bhk,bkhj->bhj", probs, vh).reshape(b, -1)), probs


@pytest.mark.parametrize("tau", [1.0, 0.2])
def test_linearity_trick_equals_the_straightforward_formula(tau):
    torch.manual_seed(0)
    fast = CrossAttention(D, dropout=0.0, tau=tau, fast=True)
    slow = CrossAttention(D, dropout=0.0, tau=tau, fast=False)
    slow.load_state_dict(fast.state_dict())
    q, keys, values = inputs()
    mask = torch.rand(4, K, generator=torch.Generator().manual_seed(1)) > 0.3
    mask[:, 0] = True
    out_fast, p_fast = fast(q, keys, values, mask)
    out_slow, p_slow = slow(q, keys, values, mask)
    out_ref, p_ref = reference_ca(fast, q, keys, values, mask)
    torch.testing.assert_close(out_fast, out_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out_slow, out_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(p_fast, p_ref, rtol=1e-5, atol=1e-6)


def test_linearity_trick_holds_under_attention_dropout():
    # after dropout the weights no longer sum to one: the value bias must be scaled by their sum
    torch.manual_seed(0)
    fast = CrossAttention(D, dropout=0.5, fast=True).train()
    slow = CrossAttention(D, dropout=0.5, fast=False).train()
    slow.load_state_dict(fast.state_dict())
    slow.out_dropout.p = fast.out_dropout.p = 0.0
    q, keys, values = inputs()
    mask = torch.ones(4, K, dtype=torch.bool)
    torch.manual_seed(5)
    a, _ = fast(q, keys, values, mask)
    torch.manual_seed(5)
    b, _ = slow(q, keys, values, mask)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_full_module_fast_equals_slow_and_grads_match():
    fast, slow = ram(beta=0.3), ram(beta=0.3, fast=False)
    slow.load_state_dict(fast.state_dict())
    q, keys, values = inputs()
    a, b = fast(q, keys, values), slow(q, keys, values)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    a.square().sum().backward()
    b.square().sum().backward()
    for (name, p), s in zip(fast.named_parameters(), slow.parameters()):
        if p.grad is not None:
            torch.testing.assert_close(p.grad, s.grad, rtol=1e-4, atol=1e-5, msg=name)


def test_batch_of_one_and_shapes():
    m = ram()
    q, keys, values = inputs(b=1)
    out, attn = m(q, keys, values, return_attention=True)
    assert out.shape == (1, D)
    assert set(attn) == {"1a", "1b"} and attn["1a"].shape == (1, 2, K)
    torch.testing.assert_close(attn["1b"].sum(-1), torch.ones(1, 2))
    m.train()
    assert m(q, keys, values).shape == (1, D)


def test_masked_memories_are_ignored():
    m = ram(beta=0.5)
    q, keys, values = inputs()
    mask = torch.ones(4, K, dtype=torch.bool)
    mask[:, 3:] = False
    out, attn = m(q, keys, values, mask, return_attention=True)
    keys2, values2 = keys.clone(), values.clone()
    keys2[:, 3:] = 1e3 * torch.randn(4, 2, D)
    values2[:, 3:] = float("nan")
    out2 = m(q, keys2, values2, mask)
    torch.testing.assert_close(out, out2)
    assert (attn["1a"][..., 3:] == 0).all() and (attn["2b"][..., 3:] == 0).all()
    # the same as giving only the real memories
    torch.testing.assert_close(out, m(q, keys[:, :3], values[:, :3]), rtol=1e-5, atol=1e-6)


def test_query_without_memory_keeps_h():
    m = ram()
    q, keys, values = inputs()
    mask = torch.ones(4, K, dtype=torch.bool)
    mask[1] = False
    out = m(q, keys, values, mask)
    assert torch.equal(out[1], q[1])
    assert not torch.isnan(out).any()


def test_beta_one_skips_channel_two_without_changing_output():
    m = ram(beta=1.0)
    q, keys, values = inputs()
    out, attn = m(q, keys, values, return_attention=True)
    assert "2a" not in attn
    m.skip_unused_channel = False
    both, attn = m(q, keys, values, return_attention=True)
    assert "2a" in attn
    torch.testing.assert_close(out, both)


def test_fusion_formula():
    m = ram(alpha=0.3, beta=0.6)
    q, keys, values = inputs()
    mask = torch.ones(4, K, dtype=torch.bool)
    u1, _ = m.seq_tar(q, keys, values, mask)
    u2, _ = m.tar_seq(q, values, keys, mask)
    torch.testing.assert_close(m(q, keys, values), 0.3 * q + 0.7 * (0.6 * u1 + 0.4 * u2))


def test_learned_alpha_starts_at_alpha_and_trains():
    m = ram(alpha=0.5, learn_alpha=True).train()
    assert m.alpha.item() == pytest.approx(0.5)
    q, keys, values = inputs()
    m(q, keys, values).sum().backward()
    assert m.alpha_logit.grad is not None


def test_options_and_parameter_count():
    m = ram(hidden=64, inner=256)
    # official channel: 2 CA x 4 Linear(64, 64) + FFN (LN in CA is unused there, absent here)
    per_channel = 2 * 4 * (64 * 64 + 64) + 33_216
    assert sum(p.numel() for p in m.seq_tar.parameters()) == per_channel == 66_496
    m = ram(residual=True, layer_norm=True)
    q, keys, values = inputs()
    ca = m.seq_tar.attn_1
    x, _ = ca(q, keys, values, torch.ones(4, K, dtype=torch.bool))
    ca.residual, ln = False, ca.layer_norm
    ca.layer_norm = None
    y, _ = ca(q, keys, values, torch.ones(4, K, dtype=torch.bool))
    torch.testing.assert_close(x, ln(y + q))
