"""The RaSeRec a user holds (`rasekit.RaSeRec`): loaded from a stored run, it evaluates as the run did,
and its answers for raw sequences agree with the evaluation's own path."""
import numpy as np
import pytest
import torch

from rasekit import Encoder, RaSeRec
from rasekit.raserec import top_items
from rasekit.runs import experiments, ledger, loading, store
from rasekit.files import paths
from rasekit.settings import SettingsError

from .test_experiments import tiny  # noqa: F401  (fixture: a 300-user, 1-epoch smoke profile)

QUIET = dict(log=lambda *_: None)


@pytest.fixture
def trained(tiny, monkeypatch):  # noqa: F811
    """A smoke RaSeRec(SASRec) with its weights, K = 5, trained in the user's own store."""
    monkeypatch.setattr(store, "KEEP_WEIGHTS", (tiny,))
    monkeypatch.setenv("RASEKIT_THREADS", "1")
    return experiments.finetune("Beauty", "sasrec", seed=1, profile=tiny, ram={"k": 5}, **QUIET)


def instance(data, part: str, i: int) -> tuple[list[int], int]:
    inst = getattr(data, part)
    return inst.seqs[i, :inst.lengths[i]].tolist(), int(inst.users[i])


def test_loading_by_settings_finds_the_run_and_evaluates_it_exactly(trained, tiny):  # noqa: F811
    model = RaSeRec.load(dataset="Beauty", backbone="sasrec", seed=1, profile=tiny, ram={"k": 5}, device="cpu")
    assert model.record["key"] == trained["key"] == RaSeRec.load(trained["key"], device="cpu").record["key"]
    ranks, metrics = model.evaluate("test")
    assert np.array_equal(ranks, experiments.ranks(trained)) and metrics == trained["metrics"]
    assert np.array_equal(model.evaluate("valid")[0], experiments.ranks(trained, "valid"))


def test_recommend_for_a_raw_sequence_equals_the_evaluations_scores(trained, tiny):  # noqa: F811
    model = RaSeRec.load(trained["key"], device="cpu")
    rows = [0, 7, 41]
    seqs, users = zip(*(instance(model.data, "test", i) for i in rows))
    got = model.recommend(list(seqs), k=10, users=list(users))
    with torch.no_grad():  # the path of the evaluation: precomputed queries and neighbours of the test part
        direct = top_items(model.task.scores("test", np.array(rows)), 10)
    assert np.array_equal(got.items, direct.items)
    np.testing.assert_allclose(got.scores, direct.scores, rtol=1e-5, atol=1e-5)
    assert (got.items != 0).all() and got.items.shape == (3, 10)
    seen = model.recommend(seqs[0], k=10, exclude_seen=True).items[0]
    assert not set(seen) & set(seqs[0])


def test_retrieve_and_explain_name_the_memories_and_their_attention(trained):
    model = RaSeRec.load(trained["key"], device="cpu")
    seq, user = instance(model.data, "test", 3)
    memories = model.retrieve(seq, user=user)
    assert len(memories) == 5 and (np.diff(memories["similarity"]) <= 1e-6).all()
    # the same-user filter: a memory of the same user is a strictly shorter prefix
    own = memories[memories["user"] == user]
    assert (own["prefix_length"] < min(len(seq), 50)).all()
    for _, m in memories.iterrows():  # each memory's prefix and target are those of its instance
        assert len(m["prefix"]) == m["prefix_length"] and m["part"] in ("train", "valid")
    assert (model.bank.targets[memories["memory"]] == memories["target"]).all()
    explained = model.explain(seq, user=user)
    assert np.allclose(explained[["attention_1a", "attention_1b"]].sum(), 1.0, atol=1e-5)
    assert explained.attrs == {"alpha": 0.5, "beta": 1.0}
    assert "attention_2a" not in explained  # beta = 1: channel 2 is not used


def test_bad_input_is_refused_by_name(trained):
    model = RaSeRec.load(trained["key"], device="cpu")
    with pytest.raises(SettingsError, match=r"item of sequence 0=99999 .* 1\.\.\d+"):
        model.recommend([[1, 99999]])
    with pytest.raises(SettingsError, match="sequence 1 is empty"):
        model.recommend([[1, 2], []])
    with pytest.raises(SettingsError, match="part='train'"):
        model.evaluate("train")
    with pytest.raises(LookupError, match="no run 0000000000000000"):
        RaSeRec.load("0000000000000000")
    with pytest.raises(SettingsError, match="is a pretrain run"):
        RaSeRec.load(trained["config"]["backbone_key"])


def test_a_run_without_weights_says_which_command_trains_it(trained):
    record = dict(trained)
    record.pop("weights")
    ledger.put(record)  # as a ranks-only record of the reference
    experiments.run_dir(trained["key"]).joinpath("best.pt").unlink()
    with pytest.raises(loading.MissingWeights, match=r"python -m rasekit finetune --dataset Beauty "
                                                      r"--backbone sasrec --seed 1 --profile smoke --ram '\{\"k\": 5\}'"):
        RaSeRec.load(trained["key"])


def test_the_stage_1_encoder_recommends_from_its_own_scores(trained):
    encoder = Encoder.load(trained["config"]["backbone_key"], device="cpu")
    seq, _ = instance(encoder.data, "test", 5)
    got = encoder.recommend(seq, k=5)
    with torch.no_grad():
        h = encoder.module(torch.as_tensor([seq]), torch.as_tensor([len(seq)]))
        scores = (h @ encoder.module.item_weights().T)[0]
    scores[0] = -torch.inf
    assert np.array_equal(got.items[0], torch.topk(scores, 5).indices.numpy())


def test_the_committed_beauty_run_loads_from_the_reference_and_evaluates_as_recorded(data_dir, tmp_path,
                                                                                     monkeypatch):
    """The reference's full RaSeRec(DuoRec) on Beauty, seed 1, loaded as a user would (their own store
    empty). Its metrics come out as recorded; a few ranks can move on a CPU of another generation (float
    rounding moves a query across an IVF cell border), so ranks are held to 99.5% identical."""
    monkeypatch.setenv("RASEKIT_OUTPUT", str(tmp_path / "own"))
    monkeypatch.setenv("RASEKIT_CACHE", str(tmp_path / "cache"))
    model = RaSeRec.load(dataset="Beauty", seed=1, device="cpu")
    assert model.record["key"] == "0579f5fcc6432e4f" and model.record["weights"]
    ranks, metrics = model.evaluate("test")
    committed = experiments.ranks(model.record, "test", paths.reference_dir())
    assert (ranks == committed).mean() >= 0.995
    for name in ("HR@10", "NDCG@10", "HR@20", "NDCG@20"):
        assert metrics[name] == pytest.approx(model.record["metrics"][name], abs=2e-4)


def test_the_targets_rank_before_and_after_retrieval_is_the_evaluations(trained):
    model = RaSeRec.load(trained["key"], device="cpu")
    after = experiments.ranks(trained)
    for row in (0, 5, 17):
        seq, user = instance(model.data, "test", row)
        before_row, after_row = model.target_rank(seq, int(model.data.test.targets[row]), user)
        assert abs(after_row - after[row]) <= 1  # one place at most, where an item ties within rounding
        plain = model.task.queries["test"][row] @ model.task.items.T  # the frozen encoder's scores
        assert before_row == 1 + int((plain[1:] > plain[model.data.test.targets[row]]).sum())
    with pytest.raises(SettingsError, match="target"):
        model.target_rank(seq, 0, user)
