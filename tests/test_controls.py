"""The retrieval controls: K random memories (seeded, uniform, filtered) and the same-user filter off."""
import numpy as np
import pytest
import torch

from rasekit.memory.controls import random_memories
from rasekit.settings import RamConfig, SettingsError
from tests.test_memory import random_bank


def test_random_memories_are_seeded_distinct_filtered_and_not_the_nearest():
    bank, keys = random_bank(2000, kind="exact", seed=3)
    queries, users, lengths = keys[:200], bank.users[:200], bank.lengths[:200]
    first = random_memories(bank, queries, users, lengths, k=10, seed=7)
    again = random_memories(bank, queries, users, lengths, k=10, seed=7)
    other = random_memories(bank, queries, users, lengths, k=10, seed=8)
    np.testing.assert_array_equal(first.ids, again.ids)
    assert not np.array_equal(first.ids, other.ids)
    assert first.mask.all()
    for row, ids in enumerate(first.ids):
        assert len(set(ids.tolist())) == 10  # without replacement
        same = bank.users[ids] == users[row]
        assert np.all(bank.lengths[ids][same] < lengths[row])  # the official filter holds
    nearest = bank.search(queries, users, lengths, k=10)
    overlap = np.mean([len(set(a) & set(b)) for a, b in zip(first.ids.tolist(), nearest.ids.tolist())])
    assert overlap < 1  # chance overlap is 10 * 10 / 2000 per row
    # the similarities reported are the cosines of the drawn memories
    x = torch.nn.functional.normalize(queries, dim=1)
    kn = torch.nn.functional.normalize(keys, dim=1)
    expected = (x[:, None, :] * kn[torch.as_tensor(first.ids)]).sum(-1).numpy()
    np.testing.assert_allclose(first.sims, expected, atol=1e-5)


def test_random_memories_cover_the_bank_uniformly():
    bank, keys = random_bank(500, kind="exact", seed=1, n_users=400)
    queries = keys[:1].repeat(4000, 1)
    found = random_memories(bank, queries, np.full(4000, 10_000), np.full(4000, 5), k=5, seed=0)
    counts = np.bincount(found.ids.ravel(), minlength=len(bank))
    assert counts.min() > 10 and counts.max() < 80  # expected 40 each; a chance of failure below 1e-9


def test_the_same_user_filter_off_lets_a_query_retrieve_itself():
    bank, keys = random_bank(300, kind="exact", seed=2)
    users, lengths = bank.users[:50], bank.lengths[:50]
    filtered = bank.search(keys[:50], users, lengths, k=1)
    leaky = bank.search(keys[:50], users, lengths, k=1, same_user_filter=False)
    assert leaky.ids[:, 0].tolist() == list(range(50))  # each query's nearest memory is itself
    assert not np.any(filtered.ids[:, 0] == np.arange(50))


def test_the_controls_are_checked_settings_and_absent_from_official_keys():
    assert RamConfig().memories == "nearest" and RamConfig().same_user_filter is True
    with pytest.raises(SettingsError, match="memories='closest'"):
        RamConfig(memories="closest")
    with pytest.raises(SettingsError, match="same_user_filter=1"):
        RamConfig(same_user_filter=1)
