"""The leave-one-out protocol on generated data, same-target positives, and exact statistics of the four
real datasets (from RASEKIT_DATA_DIR)."""
import numpy as np
import pytest

from rasekit.data import load, read_item_attributes, split
from rasekit.data.protocol import SameTargetIndex
from rasekit.data.registry import fetch

pytestmark = pytest.mark.usefixtures("no_network")


def rows(instances):
    """Instances as (user, step, prefix, target) tuples, for readable comparisons."""
    return [(int(u), int(s), seq[:n].tolist(), int(t)) for u, s, seq, n, t in
            zip(instances.users, instances.steps, instances.seqs, instances.lengths, instances.targets)]


def test_prefix_instances_and_leave_one_out():
    data = split("toy", {1: [10, 11, 12, 13, 14], 2: [20, 21, 22]}, max_len=4)
    assert rows(data.train) == [(1, 1, [10], 11), (1, 2, [10, 11], 12)]
    assert rows(data.valid) == [(1, 3, [10, 11, 12], 13), (2, 1, [20], 21)]
    assert rows(data.test) == [(1, 4, [10, 11, 12, 13], 14), (2, 2, [20, 21], 22)]
    # Left-aligned, zero-padded at the end, int64 throughout.
    assert data.valid.seqs.tolist() == [[10, 11, 12, 0], [20, 0, 0, 0]]
    assert all(a.dtype == np.int64 for a in (data.train.seqs, data.train.lengths, data.train.targets,
                                             data.train.users, data.train.steps))
    assert (data.n_users, data.n_items, data.n_interactions) == (2, 22, 8)


def test_instance_counts_per_user():
    rng = np.random.default_rng(1)
    sequences = {u: rng.integers(1, 40, size=rng.integers(3, 30)).tolist() for u in range(1, 101)}
    data = split("random", sequences)
    lengths = np.array([len(s) for s in sequences.values()])
    assert (len(data.train), len(data.valid), len(data.test)) == ((lengths - 3).sum(), 100, 100)
    assert np.bincount(data.train.users, minlength=101)[1:].tolist() == (lengths - 3).tolist()
    for part in (data.train, data.valid, data.test):  # every prefix is the user's sequence up to the target
        for user, step, prefix, target in rows(part):
            assert prefix == sequences[user][:step] and target == sequences[user][step]
    assert (data.valid.steps == lengths - 2).all() and (data.test.steps == lengths - 1).all()


def test_cap_keeps_the_last_max_len_items():
    data = split("long", {7: list(range(1, 61))}, max_len=50)
    assert data.test.seqs[0].tolist() == list(range(10, 60))    # 59 items before the target: last 50 kept
    assert (data.test.lengths[0], data.test.steps[0], data.test.targets[0]) == (50, 59, 60)
    assert data.valid.seqs[0].tolist() == list(range(9, 59))
    train = {step: (prefix, target) for _, step, prefix, target in rows(data.train)}
    assert train[50] == (list(range(1, 51)), 51)                 # exactly 50: nothing cut
    assert train[51] == (list(range(2, 52)), 52)                 # 51: the first item goes
    assert train[57] == (list(range(8, 58)), 58)                 # the longest training prefix
    assert data.train.lengths.max() == 50 and data.train.seqs.shape == (57, 50)


def test_short_users_are_dropped_with_a_warning():
    with pytest.warns(UserWarning, match=r"toy: dropped 2 users with fewer than 3 interactions"):
        data = split("toy", {1: [1, 2], 2: [3, 4, 5, 6], 3: [7]})
    assert data.dropped_users == 2 and data.n_users == 1
    assert set(data.train.users) | set(data.valid.users) | set(data.test.users) == {2}
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="no user has 3 or more"):
        split("toy", {1: [1, 2]})
    with pytest.raises(ValueError, match="max_len"):
        split("toy", {1: [1, 2, 3]}, max_len=0)


# --- same-target positives -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def random_split():
    rng = np.random.default_rng(0)
    sequences = {u: rng.integers(1, 25, size=rng.integers(3, 15)).tolist() for u in range(1, 301)}
    return split("random", sequences)


def test_positives_are_the_other_train_instances_with_that_target(random_split):
    targets, index = random_split.train.targets, random_split.same_target
    for i, target in enumerate(targets):
        expected = np.flatnonzero(targets == target)
        assert sorted(index.positives_of(i, target).tolist()) == [j for j in expected if j != i]


def test_sample_never_self_unless_alone():
    targets = np.array([3, 1, 3, 2, 3, 1])  # target 2 has one instance only
    index = SameTargetIndex.build(targets, n_items=4)
    everyone = np.arange(len(targets))
    for seed in range(50):
        partner = index.sample(everyone, targets, np.random.default_rng(seed))
        assert (targets[partner] == targets).all()
        assert partner[3] == 3 and (partner[everyone != 3] != everyone[everyone != 3]).all()


def test_sample_is_uniform_and_reproducible():
    targets = np.array([5, 5, 5, 5, 1])
    index = SameTargetIndex.build(targets, n_items=5)
    many = np.zeros(20000, dtype=np.int64)  # instance 0, many times
    draws = index.sample(many, targets[many], np.random.default_rng(7))
    assert np.allclose(np.bincount(draws, minlength=5)[1:4] / len(many), 1 / 3, atol=0.02)
    assert not (draws == 0).any()
    again = index.sample(many, targets[many], np.random.default_rng(7))
    other = index.sample(many, targets[many], np.random.default_rng(8))
    assert (draws == again).all() and not (draws == other).all()


def test_sample_on_a_split(random_split):
    train, index = random_split.train, random_split.same_target
    batch = np.random.default_rng(3).choice(len(train), 500, replace=False)
    partner = index.sample(batch, train.targets[batch], np.random.default_rng(4))
    alone = np.array([len(index.positives_of(i, t)) == 0 for i, t in zip(batch, train.targets[batch])])
    assert (train.targets[partner] == train.targets[batch]).all()
    assert (partner[alone] == batch[alone]).all() and (partner[~alone] != batch[~alone]).all()


# --- the real datasets ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name, dataset, users, items, interactions, train", [
    ("Beauty", "Beauty", 22363, 12101, 198502, 131413),
    ("Sports", "Sports_and_Outdoors", 35598, 18357, 296337, 189543),
    ("Toys", "Toys_and_Games", 19412, 11924, 167597, 109361),
    ("Yelp", "Yelp", 30431, 20033, 316354, 225061),
])
def test_real_statistics(data_dir, name, dataset, users, items, interactions, train):
    data = load(name, download=False)
    stats = data.statistics()
    assert (stats["dataset"], stats["users"], stats["items"], stats["interactions"]) == \
        (dataset, users, items, interactions)
    assert (stats["train"], stats["valid"], stats["test"]) == (train, users, users)
    assert data.dropped_users == 0 and train == interactions - 3 * users


def test_beauty_protocol(beauty):
    assert beauty.n_items == 12101 and len(beauty.sequences) == 22363
    assert min(len(s) for s in beauty.sequences) == 5 and max(len(s) for s in beauty.sequences) == 204
    assert beauty.item_counts()[0] == 0 and beauty.item_counts()[1:].min() >= 5
    assert beauty.test.lengths.max() == 50 and beauty.train.seqs.shape == (131413, 50)
    assert set(np.unique(beauty.test.users)) == set(range(1, 22364))


def test_beauty_attributes(beauty):
    attributes = read_item_attributes(fetch("Beauty", download=False)["attributes"])
    assert sorted(attributes) == list(range(1, beauty.n_items + 1))
    assert len({a for values in attributes.values() for a in values}) == 637


def test_user_sample_keeps_the_item_space(data_dir):
    small = load("Beauty", download=False, users=200)
    assert (small.n_users, small.n_items) == (200, 12101)
    assert small.test.users.tolist() == load("Beauty", download=False, users=200).test.users.tolist()
    with pytest.raises(ValueError, match="users must be in 1..22363"):
        load("Beauty", download=False, users=0)
