"""The dynamic-memory study: older data never holds a held-out interaction, left-out users are gone from
it, and a bank update adds exactly the memories the older bank lacks."""
from collections import Counter

import numpy as np
import pytest
import torch

from rasekit.analysis import dynamic_memory
from rasekit.data import sources
from rasekit.data.held_out import HeldOut
from rasekit.models.backbones import make_encoder
from rasekit.runs.keys import run_key
from rasekit.settings import RamConfig, SettingsError
from rasekit.stages.finetuning import RaSeRecTask


@pytest.fixture(scope="module")
def full(data_dir):
    return sources.resolve("Beauty").load(users=400)


@pytest.mark.parametrize("h", [1, 3])
def test_older_data_never_holds_a_held_out_interaction(full, h):
    older = sources.resolve(f"Beauty:last={h}").load(users=400)
    whole = {int(u): s for u, s in zip(np.unique(full.test.users), full.sequences)}
    for part in (older.train, older.valid, older.test):
        for seq, length, target, user, step in zip(part.seqs, part.lengths, part.targets, part.users, part.steps):
            items = whole[int(user)]
            assert step < len(items) - h  # the target lies before the held-out interactions
            assert target == items[step] and list(seq[:length]) == list(items[max(0, step - length):step])
    kept = set(np.unique(older.test.users).tolist())
    assert older.n_items == full.n_items and kept <= set(whole)


def test_left_out_users_are_absent_from_every_part_and_drawn_with_a_fixed_seed(full):
    older = sources.resolve("Beauty:users=0.1").load(users=400)
    gone = HeldOut(users=0.1).left_out_users(np.unique(full.test.users).tolist())
    assert len(gone) == 40 and gone == HeldOut(users=0.1).left_out_users(np.unique(full.test.users).tolist())
    for part in (older.train, older.valid, older.test):
        assert not set(part.users.tolist()) & gone
    assert dynamic_memory.new_user_members(full, older).sum() == 40


def test_held_out_data_is_named_checked_and_keyed_apart():
    assert sources.resolve("Beauty:last=2").config == {"dataset": "Beauty:last=2"}
    assert sources.resolve("Beauty:last=0") == sources.resolve("Beauty")  # no change: the full data
    for bad in ("Beauty:last=11", "Beauty:users=2", "Beauty:days=3", "Beauty:last=two"):
        with pytest.raises(SettingsError):
            sources.resolve(bad)
    assert run_key({"stage": "baseline", **sources.resolve("Beauty:last=2").config}) != run_key(
        {"stage": "baseline", **sources.resolve("Beauty").config})


def _memories(bank) -> Counter:
    return Counter(zip(bank.users.tolist(), bank.targets.tolist(), bank.lengths.tolist()))


def test_a_bank_update_adds_exactly_the_memories_the_older_bank_lacks(full):
    older = sources.resolve("Beauty:last=2").load(users=400)
    torch.manual_seed(0)
    task = RaSeRecTask(make_encoder("sasrec", older.n_items), older, RamConfig(k=5, index="exact"))
    task.before_test()
    before = len(task.bank)
    new = dynamic_memory.new_instances(full, older)
    dynamic_memory.update_bank(task, new)
    assert len(task.bank) == before + len(new) == before + 2 * len(np.unique(older.test.users))
    everything = Counter()
    for part in (full.train, full.valid):
        everything += Counter(zip(part.users.tolist(), part.targets.tolist(), part.lengths.tolist()))
    assert _memories(task.bank) == everything  # the updated bank holds what the full data's test bank holds
    ranks = dynamic_memory.test_ranks(task, full)
    assert ranks.shape == (len(full.test),) and ranks.min() >= 1
