"""Sensitivity and ablation: the plan's runs, a K variant against a direct evaluation, the recall of
approximate retrieval, and the table's tests against the official run."""
import numpy as np
import pytest

from rasekit.analysis import sensitivity
from rasekit.memory.bank import MemoryBank, encode_instances
from rasekit.runs import experiments, ledger, notebook_runs, profiles, store, sweeps, variants
from rasekit.settings import RamConfig, SettingsError
from rasekit.stages.finetuning import RaSeRecTask
from rasekit.stages.loop import evaluate_part, load_checkpoint

from .test_experiments import tiny  # noqa: F401  (fixture: a 300-user, 1-epoch smoke profile)


@pytest.fixture
def parent(tiny, monkeypatch):  # noqa: F811
    monkeypatch.setattr(store, "KEEP_WEIGHTS", (tiny,))
    monkeypatch.setenv("RASEKIT_THREADS", "1")
    return experiments.finetune("Beauty", "duorec", seed=1, profile=tiny, log=lambda *_: None)


def test_a_k_variant_equals_a_direct_evaluation_of_the_trained_module_at_that_k(parent):
    variant = variants.evaluate(parent, variants.TestVariant(k=5), log=lambda *_: None)
    base = ledger.get(parent["config"]["backbone_key"])
    data = experiments.load_data(parent["config"], profiles.get(parent["profile"]))
    task = RaSeRecTask(experiments.load_pretrained(base, "cpu"), data, RamConfig.of({**parent["config"]["ram"], "k": 5}),
                       seed=parent["seed"])
    task.model.load_state_dict(load_checkpoint(experiments.trained_weights(parent), {})["model"])
    direct = evaluate_part(task, "test", chunk=1024)
    assert np.array_equal(experiments.ranks(variant), direct)
    assert not np.array_equal(direct, experiments.ranks(parent))  # K matters: the check is not vacuous


def test_exact_search_recalls_itself_and_fewer_probes_recall_less(parent):
    recall = sensitivity.index_recall(parent, {"exact": {"index": "exact"}, "IVF nprobe 1": {"nprobe": 1},
                                               "IVF all lists": {"nprobe": 1024}})
    assert recall["exact"] == 1.0 and recall["IVF all lists"] == 1.0
    assert recall["IVF nprobe 1"] < 1.0


def test_the_test_time_bank_built_once_searches_as_the_train_bank_grown_and_retrained(parent):
    data = experiments.load_data(parent["config"], profiles.get(parent["profile"]))
    encoder = experiments.load_pretrained(ledger.get(parent["config"]["backbone_key"]), "cpu")
    train, valid, test = encode_instances(encoder, [data.train, data.valid, data.test])
    for kind in ("ivf", "hnsw"):
        grown = MemoryBank.from_arrays(train, train, data.train, "train", kind, 16)
        grown.add(valid, valid, data.valid, "valid", retrain=True)
        once = sensitivity.test_time_bank(train, valid, data, kind, 16)
        for bank in (grown, once):
            bank.set_nprobe(2)
        search = lambda b: b.search(test, data.test.users, data.test.lengths, 10)  # noqa: E731
        assert np.array_equal(search(once).ids, search(grown).ids), kind
        assert list(once.tags) == list(grown.tags)


def test_recall_at_k_counts_the_share_of_exact_ids_found():
    exact = np.array([[1, 2, 3, 4], [5, 6, -1, -1]])
    found = np.array([[4, 3, 9, 8], [6, 5, 7, -1]])
    assert sensitivity.recall_at_k(exact, exact) == 1.0
    assert sensitivity.recall_at_k(found, exact) == pytest.approx((2 / 4 + 2 / 2) / 2)


def test_the_plan_lists_one_run_per_grid_point_and_the_official_point_is_the_main_run():
    runs = notebook_runs.sensitivity_runs("full")
    main = {r.key for _, r in notebook_runs.main_results_runs("full")}
    for (dataset, name, value), group in runs.items():
        assert [r.seed for r in group] == ([1, 2, 3] if dataset == "Beauty" else [1])
        assert ({r.key for r in group} <= main) == sweeps.is_official(name, value), (name, value)
    assert {n for d, n, _ in runs if d == "Sports_and_Outdoors"} == set(sweeps.SECOND_DATASET_PARAMETERS)
    keys = [r.key for r in notebook_runs.sensitivity_all("full")]
    assert len(keys) == len(set(keys)) == 3 * (21 + 1) + (10 + 1)  # changed points, the official run once
    ablation = notebook_runs.ablation_runs("full")
    assert ablation[("Beauty", "backbone alone")][0].stage == "pretrain"
    assert ablation[("Beauty", "K random memories")][0].ram == (("memories", "random"),)
    with pytest.raises(SettingsError, match="parameters=\\['gamma'\\]"):
        notebook_runs.sensitivity_runs("full", parameters=["gamma"])


def test_a_point_is_tested_against_the_official_runs_of_its_own_seeds():
    ranks = {"o1": np.array([1, 50, 3]), "o2": np.array([2, 2, 2]), "a1": np.array([1, 1, 1])}
    rec = lambda key, seed: {"key": key, "seed": seed, "dataset": "D", "model": "x",  # noqa: E731
                             "metrics": {m: float(key[1]) for m in ("HR@10", "NDCG@10")}}
    official = {"D": [rec("o1", 1), rec("o2", 2)]}
    table = sensitivity.point_table({("D", "official"): official["D"], ("D", "a"): [rec("a1", 1)]}, official,
                                    lambda r: ranks[r["key"]], ("dataset", "row"), metrics=("HR@10", "NDCG@10"))
    assert np.isnan(table.loc[0, "p NDCG@10"]) and table.loc[0, "NDCG@10 std"] > 0
    assert np.isnan(table.loc[1, "NDCG@10 std"])  # one seed: no spread
    assert table.loc[1, "NDCG@10 vs official %"] == 0.0  # against seed 1's official run only
