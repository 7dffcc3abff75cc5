"""The dynamic-memory study: older data never holds a held-out interaction, left-out users are gone from
it, a bank update adds exactly the memories the older bank lacks, and the full-data tests of a run
trained on older data are test-time variants that give what a direct computation gives."""
from collections import Counter

import numpy as np
import pytest
import torch

from rasekit.analysis import dynamic_memory
from rasekit.runs import experiments, ledger, loading, profiles, store, variants
from rasekit.data import sources
from rasekit.data.held_out import HeldOut
from rasekit.models.backbones import make_encoder
from rasekit.runs.keys import run_key
from rasekit.settings import RamConfig, SettingsError
from rasekit.stages import bank_update
from rasekit.stages.finetuning import RaSeRecTask

from .test_experiments import tiny  # noqa: F401  (fixture: a 300-user, 1-epoch smoke profile)


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
    new = bank_update.new_instances(full, older)
    bank_update.update_bank(task, new)
    assert len(task.bank) == before + len(new) == before + 2 * len(np.unique(older.test.users))
    everything = Counter()
    for part in (full.train, full.valid):
        everything += Counter(zip(part.users.tolist(), part.targets.tolist(), part.lengths.tolist()))
    assert _memories(task.bank) == everything  # the updated bank holds what the full data's test bank holds
    ranks = bank_update.test_ranks(task, full)
    assert ranks.shape == (len(full.test),) and ranks.min() >= 1


def test_full_data_variants_equal_a_direct_computation_and_are_refused_where_they_mean_nothing(tiny, monkeypatch):  # noqa: F811
    monkeypatch.setattr(store, "KEEP_WEIGHTS", (tiny,))
    monkeypatch.setenv("RASEKIT_THREADS", "1")
    quiet = lambda *_: None  # noqa: E731
    raserec = experiments.finetune("Beauty:last=1", "duorec", seed=1, profile=tiny, ram={"index": "exact"}, log=quiet)
    duorec = ledger.get(raserec["config"]["backbone_key"])
    full = experiments.load_data("Beauty", profiles.get(tiny))
    plain = variants.evaluate(raserec, variants.TestVariant(full_data=True), log=quiet)
    updated = variants.evaluate(raserec, variants.TestVariant(full_data=True, bank_update=True), log=quiet)
    alone = variants.evaluate(duorec, variants.TestVariant(full_data=True), log=quiet)

    task = loading.stage2_task(*loading.locate(raserec["key"]))  # the same, computed directly
    assert np.array_equal(experiments.ranks(alone), bank_update.backbone_ranks(task.encoder, full))
    assert np.array_equal(experiments.ranks(plain), bank_update.test_ranks(task, full))
    new = bank_update.new_instances(full, task.data)
    assert updated["bank_size"] == plain["bank_size"] + len(new) > plain["bank_size"]
    bank_update.update_bank(task, new)
    assert np.array_equal(experiments.ranks(updated), bank_update.test_ranks(task, full))
    assert len(experiments.ranks(plain)) == len(full.test)

    trained_on_everything = experiments.finetune("Beauty", "duorec", seed=1, profile=tiny, ram={"index": "exact"}, log=quiet)
    with pytest.raises(SettingsError, match="trained on the full Beauty"):
        variants.evaluate(trained_on_everything, variants.TestVariant(full_data=True), log=quiet)
    with pytest.raises(SettingsError, match="change retrieval"):
        variants.evaluate(duorec, variants.TestVariant(full_data=True, bank_update=True), log=quiet)
    with pytest.raises(SettingsError, match="needs full_data=True"):
        variants.TestVariant(bank_update=True)
    with pytest.raises(SettingsError, match="full_data=False is not allowed"):
        variants.TestVariant(full_data=False)
    with pytest.raises(SettingsError, match="takes no other change"):
        variants.TestVariant(full_data=True, k=5)
