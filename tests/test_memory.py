"""MemoryBank: the official filter, masking, indexes, growth and partitions (small synthetic data)."""
import numpy as np
import pytest
import torch
from torch import nn

from rasekit.data import Instances, split
from rasekit.memory.bank import MemoryBank, encode, encode_instances, not_self_or_future, length_selection, popularity_thresholds


class MeanEncoder(nn.Module):
    """Stand-in encoder: mean of the item embeddings of the prefix (same interface as rasekit.models.encoders)."""

    def __init__(self, n_items: int, hidden: int = 16, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.hidden_size = hidden
        self.emb = nn.Embedding(n_items + 1, hidden)

    def all_positions(self, seqs, lengths):
        return self.emb(seqs).cumsum(1) / torch.arange(1, seqs.shape[1] + 1)[None, :, None]

    def forward(self, seqs, lengths):
        return self.all_positions(seqs, lengths)[torch.arange(len(seqs)), lengths - 1]

    def item_weights(self):
        return self.emb.weight


def instances(users, lengths, d_seq=4) -> Instances:
    users, lengths = np.asarray(users), np.asarray(lengths)
    n = len(users)
    return Instances(np.ones((n, d_seq), np.int64), lengths, np.arange(n) + 1, users, lengths)


def random_bank(n, d=16, kind="exact", seed=0, n_users=50, **kw):
    g = torch.Generator().manual_seed(seed)
    keys, values = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    rng = np.random.default_rng(seed)
    inst = instances(rng.integers(1, n_users + 1, n), rng.integers(1, 11, n))
    return MemoryBank.from_arrays(keys, values, inst, kind=kind, **kw), keys


def test_not_self_or_future_is_the_official_filter():
    # candidates: self, same user longer, same user shorter, other user longer, other user shorter
    bank_users = np.array([1, 1, 1, 2, 2])
    bank_lengths = np.array([3, 5, 2, 10, 1])
    cand = np.array([[0, 1, 2, 3, 4, -1]])
    keep = not_self_or_future(cand, bank_users, bank_lengths, np.array([1]), np.array([3]))
    assert keep.tolist() == [[False, False, True, True, True, False]]


def test_search_excludes_self_and_same_user_future():
    keys = torch.randn(5, 8)
    bank = MemoryBank.from_arrays(keys, keys, instances([1, 1, 1, 2, 2], [3, 5, 2, 10, 1]), kind="exact")
    found = bank.search(keys[:1], np.array([1]), np.array([3]), k=3)
    assert set(found.ids[0].tolist()) == {2, 3, 4}
    assert found.mask.all()
    assert np.all(np.diff(found.sims[0]) <= 1e-6)  # similarity order


def test_fewer_survivors_than_k_are_masked():
    keys = torch.randn(5, 8)
    bank = MemoryBank.from_arrays(keys, keys, instances([1, 1, 1, 2, 2], [3, 5, 2, 10, 1]), kind="ivf")
    assert bank.n_lists == 1  # 5 points: nlist adapts
    found = bank.search(keys[:1], np.array([1]), np.array([3]), k=20)
    assert found.ids.shape == (1, 20) and found.mask.sum() == 3
    assert (found.ids[~found.mask] == -1).all() and np.isneginf(found.sims[~found.mask]).all()
    assert set(found.ids[found.mask].tolist()) == {2, 3, 4}


def test_expand_re_searches_when_the_filter_empties_the_pool():
    # the 8 nearest memories of the query all belong to its user and are longer: filtered out
    keys = torch.cat([torch.ones(8, 4) + 0.01 * torch.randn(8, 4), torch.randn(20, 4)])
    inst = instances([1] * 8 + list(range(2, 22)), [9] * 8 + [1] * 20)
    bank = MemoryBank.from_arrays(keys, keys, inst, kind="exact")
    q = torch.ones(1, 4)
    short = bank.search(q, np.array([1]), np.array([2]), k=2, fetch=8, expand=False)
    assert short.mask.sum() == 0
    full = bank.search(q, np.array([1]), np.array([2]), k=2, fetch=8, expand=True)
    assert full.mask.all() and (full.ids >= 8).all()


def test_ivf_probing_every_list_equals_exact():
    bank, keys = random_bank(2000, kind="ivf", nlist=16)
    exact, _ = random_bank(2000, kind="exact")
    assert bank.n_lists == 16
    bank.set_nprobe(16)
    q = torch.randn(30, 16)
    users, lengths = np.full(30, 999), np.full(30, 5)
    a = bank.search(q, users, lengths, k=10)
    b = exact.search(q, users, lengths, k=10)
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_allclose(a.sims, b.sims, rtol=1e-5, atol=1e-6)
    assert (a.sims <= 1 + 1e-5).all()  # cosine similarities


def test_ivf_build_is_deterministic():
    a, _ = random_bank(3000, kind="ivf", nlist=32)
    b, _ = random_bank(3000, kind="ivf", nlist=32)
    q = torch.randn(20, 16)
    ra = a.search(q, np.zeros(20, int), np.ones(20, int), k=5)
    rb = b.search(q, np.zeros(20, int), np.ones(20, int), k=5)
    np.testing.assert_array_equal(ra.ids, rb.ids)


@pytest.mark.parametrize("kind,retrain", [("ivf", False), ("ivf", True), ("exact", False), ("hnsw", False)])
def test_growth_keeps_ids_and_finds_new_entries(kind, retrain):
    bank, keys = random_bank(500, kind=kind, nlist=4)
    probe = keys[:5]
    before = bank.search(probe, np.zeros(5, int), np.ones(5, int), k=3)
    own_stream = torch.Generator().manual_seed(12345)  # never a copy of a bank key
    new_keys = torch.randn(7, 16, generator=own_stream) * 3
    ids = bank.add(new_keys, new_keys, instances(np.full(7, 1000), np.full(7, 2)), tag="valid", retrain=retrain)
    assert ids.tolist() == list(range(500, 507)) and len(bank) == 507
    assert (bank.tags[ids] == "valid").all() and torch.equal(bank.keys[:500], keys)
    bank.set_nprobe(bank.n_lists or 1)
    found = bank.search(new_keys, np.zeros(7, int), np.full(7, 9), k=1)
    assert found.ids[:, 0].tolist() == ids.tolist()  # each new key is its own nearest memory
    after = bank.search(probe, np.zeros(5, int), np.ones(5, int), k=1)
    assert after.ids[:, 0].tolist() == list(range(5))  # old ids unchanged
    if kind == "exact":
        assert before.ids[:, 0].tolist() == list(range(5))


def test_length_partition_semantics():
    l = np.arange(1, 11)
    assert l[length_selection(l, 3, 6, False)].tolist() == [3, 4, 5, 6]
    assert l[length_selection(l, 3, 6, True)].tolist() == [1, 2, 7, 8, 9, 10]
    assert l[length_selection(l, None, 5, False)].tolist() == [1, 2, 3, 4]
    assert l[length_selection(l, -1, 5, True)].tolist() == [5, 6, 7, 8, 9, 10]
    assert l[length_selection(l, 7, None, False)].tolist() == [8, 9, 10]
    assert l[length_selection(l, 7, -1, True)].tolist() == [1, 2, 3, 4, 5, 6, 7]
    assert length_selection(l, -1, -1, True).all()  # no bound: all entries


def test_partitions_return_new_banks():
    bank, keys = random_bank(400, kind="ivf", nlist=4)
    short = bank.by_length(upper=5)
    assert len(short) == (bank.lengths < 5).sum() and (short.lengths < 5).all()
    assert torch.equal(short.keys, keys[torch.as_tensor(short.rows)])  # rows point to the source instances
    users = {1, 2, 3}
    assert set(bank.by_users(users).users.tolist()) <= users
    assert not set(bank.by_users(users, invert=True).users.tolist()) & users
    counts = np.bincount(bank.targets, minlength=401) * 0 + np.arange(401)  # count of item v = v
    assert (bank.by_popularity(counts, 100, 200).targets >= 100).all()
    lo, hi = popularity_thresholds(counts, 0.5, 1.0)
    head = bank.by_popularity(counts, 0.5, 1.0, quantiles=True)
    assert hi == np.inf and (counts[head.targets] >= lo).all() and len(head) == (counts[bank.targets] >= lo).sum()
    a, b = bank.sample(0.25, seed=3), bank.sample(0.25, seed=3)
    assert len(a) == 100 and np.array_equal(a.rows, b.rows)
    assert len(bank) == 400  # the source bank is untouched


def test_build_from_encoder_matches_untrimmed_encoding():
    rng = np.random.default_rng(0)
    seqs = {u: rng.integers(1, 31, rng.integers(3, 15)).tolist() for u in range(1, 41)}
    data = split("toy", seqs, max_len=10, n_items=30)
    enc = MeanEncoder(30)
    bank = MemoryBank.build(enc, data.train, kind="exact", batch_size=7)
    with torch.no_grad():
        full = enc(torch.as_tensor(data.train.seqs), torch.as_tensor(data.train.lengths))
    torch.testing.assert_close(bank.keys, full)
    torch.testing.assert_close(bank.values, enc.emb.weight[torch.as_tensor(data.train.targets)].detach())
    again = encode(enc, data.train.seqs, data.train.lengths, batch_size=7)
    assert torch.equal(again, bank.keys)
    assert np.array_equal(bank.lengths, data.train.lengths) and (bank.tags == "train").all()


def test_shared_prefix_encoding_equals_one_pass_per_instance():
    rng = np.random.default_rng(1)
    seqs = {u: rng.integers(1, 31, rng.integers(3, 30)).tolist() for u in range(1, 41)}
    data = split("toy", seqs, max_len=10, n_items=30)  # some users exceed the cap: sliding windows
    assert (data.train.steps > data.train.lengths).any()
    enc = MeanEncoder(30)
    parts = [data.train, data.valid, data.test]
    shared = encode_instances(enc, parts, batch_size=16)
    for part, reps in zip(parts, shared):
        alone = encode(enc, part.seqs, part.lengths, batch_size=16, trim=False)
        torch.testing.assert_close(reps, alone)
    plain = encode_instances(enc, parts, batch_size=16, share_prefixes=False)
    for a, b in zip(shared, plain):
        torch.testing.assert_close(a, b)


def test_instances_that_are_not_prefixes_of_their_users_longest_are_encoded_alone():
    from rasekit.data.noise import Noise, perturb
    rng = np.random.default_rng(2)
    seqs = {u: rng.integers(1, 31, rng.integers(4, 12)).tolist() for u in range(1, 31)}
    data = split("toy", seqs, max_len=10, n_items=30)
    noisy = perturb(data.train, Noise(0.3), 30, part="train")  # each prefix gets its own noise
    enc = MeanEncoder(30)
    shared, = encode_instances(enc, [noisy], batch_size=16)
    torch.testing.assert_close(shared, encode(enc, noisy.seqs, noisy.lengths, batch_size=16, trim=False))
