"""Test-time variants of a trained stage-2 run: evaluated without training, cached as their own records
that name the parent; the variant that changes nothing gives exactly the parent's test ranks."""
import faiss
import numpy as np
import pytest
import torch

from rasekit.runs import experiments, ledger, profiles, store, variants
from rasekit.files import paths
from rasekit import settings
from rasekit.data.noise import Noise, noisy_data

from .test_experiments import tiny  # noqa: F401  (fixture: a 300-user, 1-epoch smoke profile)


@pytest.fixture
def parent(tiny, monkeypatch):  # noqa: F811
    monkeypatch.setattr(store, "KEEP_WEIGHTS", (tiny,))
    monkeypatch.setenv("RASEKIT_THREADS", "1")
    return experiments.finetune("Beauty", "sasrec", seed=1, profile=tiny, ram={"index": "exact"},
                                log=lambda *_: None)


def test_the_unchanged_variant_gives_the_parents_ranks(parent):
    rec = variants.evaluate(parent, variants.TestVariant(), log=lambda *_: None)
    assert rec["parent"] == parent["key"] and rec["stage"] == "variant"
    assert np.array_equal(experiments.ranks(rec), experiments.ranks(parent))
    assert rec["metrics"] == parent["metrics"]


def test_a_variant_is_cached_and_needs_no_checkpoint_of_this_machine(parent):
    import shutil
    shutil.rmtree(paths.runs_dir())  # only the stored weights are left
    messages = []
    smaller = variants.evaluate(parent, variants.TestVariant(k=5), log=messages.append)
    assert smaller["model"].endswith("@test k=5") and messages[0].startswith("evaluated")
    assert variants.evaluate(parent, variants.TestVariant(k=5), log=messages.append) == smaller
    assert messages[-1].startswith("reusing")
    half = variants.evaluate(parent, variants.TestVariant(partition={"by": "sample", "fraction": 0.5}),
                             log=lambda *_: None)
    assert half["bank_size"] < smaller["bank_size"]
    assert {r["stage"] for r in ledger.records()} == {"pretrain", "finetune", "variant"}


def test_a_variant_computes_on_the_threads_it_may_take_and_gives_the_caller_its_own_back(parent):
    before = torch.get_num_threads(), faiss.omp_get_max_threads()
    torch.set_num_threads(2)  # a notebook's default on 2 cores; RASEKIT_THREADS=1 (the fixture) must win
    try:
        rec = variants.evaluate(parent, variants.TestVariant(k=3), log=lambda *_: None)
        assert rec["provenance"]["device"].endswith(", 1 threads")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before[0])
        faiss.omp_set_num_threads(before[1])


def test_impossible_variants_are_refused(parent):
    with pytest.raises(settings.SettingsError, match="k=0 is not allowed"):
        variants.TestVariant(k=0)
    with pytest.raises(settings.SettingsError, match="fraction=2 is not allowed"):
        variants.TestVariant(partition={"by": "sample", "fraction": 2})
    with pytest.raises(settings.SettingsError, match="holds only .* memories after the partition"):
        variants.evaluate(parent, variants.TestVariant(k=200, partition={"by": "sample", "fraction": 0.01}),
                          log=lambda *_: None)
    with pytest.raises(settings.SettingsError, match=r"\['k'\] change retrieval"):
        variants.evaluate(ledger.get(parent["config"]["backbone_key"]), variants.TestVariant(k=5))
    with pytest.raises(settings.SettingsError, match="noise ratio=1.5 is not allowed"):
        variants.TestVariant(noise=Noise(1.5))


def test_noise_variants_of_both_stages(parent):
    backbone = ledger.get(parent["config"]["backbone_key"])
    quiet = lambda *_: None  # noqa: E731
    clean = variants.evaluate(backbone, variants.TestVariant(noise=Noise(0.0)), log=quiet)
    assert np.array_equal(experiments.ranks(clean), experiments.ranks(backbone))  # ratio 0 = the parent
    noisy = variants.evaluate(backbone, variants.TestVariant(noise=Noise(0.5)), log=quiet)
    assert not np.array_equal(experiments.ranks(noisy), experiments.ranks(backbone))
    assert noisy["model"].endswith("noise=(ratio=0.5, mode=replace, seed=0, bank=clean)")
    for bank in ("clean", "noisy"):
        rec = variants.evaluate(parent, variants.TestVariant(noise=Noise(0.5, bank=bank)), log=quiet)
        assert not np.array_equal(experiments.ranks(rec), experiments.ranks(parent))
    assert variants.evaluate(parent, variants.TestVariant(noise=Noise(0.0)), log=quiet)["metrics"] == parent["metrics"]


def test_runs_trained_on_noise_are_runs_of_their_own_on_noisy_data_in_both_stages(parent):
    quiet = lambda *_: None  # noqa: E731
    profile = parent["profile"]
    noisy = experiments.finetune("Beauty", "sasrec", seed=1, profile=profile, ram={"index": "exact"},
                                 noise={"ratio": 0.5}, log=quiet)
    backbone = ledger.get(noisy["config"]["backbone_key"])
    assert noisy["key"] != parent["key"] and backbone["key"] != parent["config"]["backbone_key"]
    assert noisy["config"]["noise"] == backbone["config"]["noise"] == {"ratio": 0.5, "mode": "replace", "seed": 0}
    assert "[trained on noise=0.5]" in noisy["model"] and "[trained on noise=0.5]" in backbone["model"]
    assert "noise" not in parent["config"]  # a clean run has no noise setting: its key is unchanged
    # the noisy run's test inputs are those the clean run's test-time noise variant gets
    clean_backbone = ledger.get(parent["config"]["backbone_key"])
    variant = variants.evaluate(clean_backbone, variants.TestVariant(noise=Noise(0.5)), log=quiet)
    assert not np.array_equal(experiments.ranks(backbone), experiments.ranks(clean_backbone))
    loaded = experiments.load_data(backbone["config"], profiles.get(profile))
    assert np.array_equal(loaded.test.seqs, noisy_data(experiments.load_data("Beauty", profiles.get(profile)),
                                                       Noise(0.5)).test.seqs)
    # the robustness table puts the noisy-trained runs beside the test-time noise of the clean ones
    from rasekit.analysis import noise as analysis
    results = analysis.run_noise({"SASRec": [clean_backbone]}, [0.5], log=quiet) + analysis.trained_on_noise(
        {"SASRec": [backbone]})
    table = analysis.noise_table(results).set_index(["trained on", "ratio"])
    assert table.loc[("noisy data", 0.5), "NDCG@10"] == backbone["metrics"]["NDCG@10"]
    assert table.loc[("clean data", 0.5), "NDCG@10"] == variant["metrics"]["NDCG@10"]
    drop = 100 * (1 - backbone["metrics"]["NDCG@10"] / clean_backbone["metrics"]["NDCG@10"])
    assert table.loc[("noisy data", 0.5), "NDCG@10 drop %"] == pytest.approx(drop)
    with pytest.raises(settings.SettingsError, match="noise ratio=-1 is not allowed"):
        experiments.finetune("Beauty", "sasrec", seed=1, profile=profile, noise={"ratio": -1})


def test_without_its_weights_a_run_serves_its_recorded_variants_and_refuses_the_others_before_any_work(
        parent, monkeypatch, capsys):
    import shutil
    from rasekit.analysis import noise, partitions
    quiet = lambda *_: None  # noqa: E731
    backbone = ledger.get(parent["config"]["backbone_key"])
    wanted = noise.noisy_tests([0.5])  # ratio 0 (the clean inputs) and 0.5
    recorded = [variants.evaluate(parent, v, log=quiet) for v in wanted]
    data = experiments.load_data(parent["dataset"], profiles.get(parent["profile"]))
    shutil.rmtree(paths.runs_dir())  # no checkpoint of this machine ...
    shutil.rmtree(paths.weights_dir())  # ... and no stored weights: a reference without them
    assert not experiments.loadable(parent) and not experiments.loadable(backbone)
    assert variants.available(parent, wanted)
    assert not variants.available(parent, wanted + [variants.TestVariant(k=5)])
    assert [variants.evaluate(parent, v, log=quiet) for v in wanted] == recorded
    monkeypatch.setattr(experiments, "load_data", lambda *_, **__: pytest.fail("read the data"))
    with pytest.raises(variants.MissingWeights, match=r"\{'k': 5\} of RaSeRec\(SASRec\) .* not in the ledger"):
        variants.evaluate(parent, variants.TestVariant(k=5))
    # what notebooks 05 and 04 keep: the runs whose variants they evaluate are all recorded
    messages = []
    assert noise.evaluable([parent, backbone], [0.5], log=messages.append) == [parent]
    assert len(messages) == 1 and f"({backbone['key']})" in messages[0]
    assert partitions.run_ablation(parent, data, 2, log=quiet) == []  # its removals are not recorded
    assert "left out: the test-time variant (no change) of RaSeRec" in capsys.readouterr().out
    assert not any(r["stage"] == "variant" and "partition" in r["config"]["variant"] for r in ledger.records())
