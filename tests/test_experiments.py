"""Cached runs end to end on a tiny profile: a second identical call reuses the ledger record, and
stage 2 finds its stage-1 run there."""
import numpy as np
import pytest

from rasekit.runs import experiments, ledger, profiles, provenance


@pytest.fixture
def tiny(monkeypatch, tmp_path, data_dir):
    monkeypatch.setenv("RASEKIT_OUTPUT", str(tmp_path / "out"))
    monkeypatch.setenv("RASEKIT_CACHE", str(tmp_path / "cache"))
    tiny = profiles.Profile("smoke", ("Beauty",), (1,), users=300, pretrain={"epochs": 1},
                            finetune={"epochs": 1})
    monkeypatch.setitem(profiles.PROFILES, "smoke", tiny)
    return "smoke"


def test_runs_are_cached_and_shared(tiny, tmp_path):
    quiet = lambda *_: None  # noqa: E731
    assert experiments.pretrain("Beauty", "sasrec", "ce", seed=1, profile=tiny, reuse_only=True) is None
    assert experiments.finetune("Beauty", "sasrec", seed=1, profile=tiny, reuse_only=True) is None
    assert ledger.records() == []  # reuse_only never trains
    first = experiments.pretrain("Beauty", "sasrec", "ce", seed=1, profile=tiny, log=quiet)
    assert first["model"] == "SASRec" and first["epochs_run"] == 1
    assert set(first["provenance"]) >= {"git_commit", "data_sha256", "versions", "device", "wall_time_s"}
    assert 0 < first["provenance"]["train_cpu_seconds"] <= 4 * first["provenance"]["wall_time_s"]
    messages = []
    again = experiments.pretrain("Beauty", "sasrec", "ce", seed=1, profile=tiny, log=messages.append)
    assert again == first and messages[0].startswith("reusing SASRec")
    ranks = experiments.ranks(first)
    assert ranks.shape == (300,) and ranks.min() >= 1

    ras = experiments.finetune("Beauty", "sasrec", seed=1, profile=tiny, log=quiet)
    assert ras["model"] == "RaSeRec(SASRec)" and ras["config"]["backbone_key"] == first["key"]
    assert experiments.finetune("Beauty", "sasrec", seed=1, profile=tiny, reuse_only=True, log=quiet) == ras
    assert {r["key"] for r in ledger.records()} == {first["key"], ras["key"]}
    assert np.isfinite(list(ras["metrics"].values())).all()
    with pytest.raises(ValueError, match="unknown RAM setting"):
        experiments.finetune("Beauty", "sasrec", seed=1, profile=tiny, ram={"kk": 3})


def test_a_run_records_the_commit_its_code_came_from(tiny, monkeypatch):
    """Training takes hours and HEAD may move meanwhile: the record names the commit at the start."""
    monkeypatch.setattr(experiments, "git_commit", lambda: "commit-at-start")
    monkeypatch.setattr(provenance, "git_commit", lambda: "moved-on")
    quiet = lambda *_: None  # noqa: E731
    ras = experiments.finetune("Beauty", "sasrec", seed=1, profile=tiny, log=quiet)
    base = ledger.get(ras["config"]["backbone_key"])
    assert ras["provenance"]["git_commit"] == base["provenance"]["git_commit"] == "commit-at-start"


def test_changed_settings_name_the_model_so_runs_are_never_pooled(tiny):
    quiet = lambda *_: None  # noqa: E731
    ras = experiments.finetune("Beauty", "sasrec", seed=1, profile=tiny, pretrain_train={"batch_size": 128},
                               ram={"k": 20, "alpha": 0.3}, log=quiet)
    base = ledger.get(ras["config"]["backbone_key"])
    assert base["model"] == "SASRec [batch_size=128]" and base["config"]["train"]["batch_size"] == 128
    assert ras["model"] == "RaSeRec(SASRec [batch_size=128]) [alpha=0.3]"  # k=20 is the default
    with pytest.raises(ValueError, match=r"unknown training setting\(s\) \['lr_decay'\]"):
        experiments.pretrain("Beauty", "sasrec", "ce", seed=1, profile=tiny, train={"lr_decay": 0.5})
