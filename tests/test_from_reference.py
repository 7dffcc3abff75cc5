"""The default profile takes stage 1 (and the training-free baselines) from the reference: each run is
copied into the user's store only after its files match their sha256, its record is marked, and tables
name it as the reference's; stage 2 is trained here, under the keys of the full runs. A run the reference
lacks is trained here; `full` trains its own in place of what was taken; `promote` leaves such runs alone."""
import pandas as pd
import pytest
import torch

from rasekit.analysis import beside_reference
from rasekit.runs import experiments, ledger, plan, profiles, runner, spec, store
from tests.test_plan import recorded_duorec
from rasekit.files import paths
from rasekit.stages.loop import CheckpointError

quiet = lambda *_: None  # noqa: E731


@pytest.fixture
def kit(monkeypatch, tmp_path, data_dir):
    """Tiny `full` and `default` profiles that train alike (300 users, one epoch per stage), a reference
    in a tmp folder and the user's own store in another."""
    monkeypatch.setenv("RASEKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("RASEKIT_REFERENCE", str(tmp_path / "reference"))
    monkeypatch.setenv("RASEKIT_OUTPUT", str(tmp_path / "own"))
    tiny = dict(datasets=("Beauty",), seeds=(1,), users=300, pretrain={"epochs": 1}, finetune={"epochs": 1})
    monkeypatch.setitem(profiles.PROFILES, "full", profiles.Profile("full", **tiny))
    monkeypatch.setitem(profiles.PROFILES, "default", profiles.Profile("default", **tiny, from_reference=True))
    return tmp_path


def in_reference(monkeypatch, kit, call):
    """`call()` with the reference as the output root (as the kit's authors train it), then back."""
    monkeypatch.setenv("RASEKIT_OUTPUT", str(kit / "reference"))
    try:
        return call()
    finally:
        monkeypatch.setenv("RASEKIT_OUTPUT", str(kit / "own"))


def no_training(monkeypatch):
    def refuse(*_, **__):
        raise AssertionError("trained a run that the profile takes from the reference")
    monkeypatch.setattr(experiments, "fit", refuse)


def test_the_default_profile_takes_stage_1_from_the_reference_checked_and_marked(kit, monkeypatch):
    ref = in_reference(monkeypatch, kit, lambda: experiments.pretrain("Beauty", "sasrec", "ce", 1, "full", log=quiet))
    popularity = in_reference(monkeypatch, kit, lambda: experiments.baseline("Beauty", "popularity", "full", log=quiet))
    fit = experiments.fit
    no_training(monkeypatch)
    messages = []
    mine = experiments.pretrain("Beauty", "sasrec", "ce", 1, "default", log=messages.append)
    assert mine == {**ref, "adopted": {"from": "reference", "commit": ref["provenance"]["git_commit"]}}
    assert ledger.get(ref["key"]) == mine and mine["profile"] == "full"  # the run as the reference made it
    assert messages[0].startswith("taken from the reference, not trained here: SASRec on Beauty seed 1")
    for entry in (mine["ranks"], mine["weights"]):
        assert (paths.output_dir() / entry["file"]).read_bytes() == (kit / "reference" / entry["file"]).read_bytes()
    assert experiments.pretrain("Beauty", "sasrec", "ce", 1, "default", log=messages.append) == mine
    assert messages[-1].startswith("reusing SASRec")
    taken = experiments.baseline("Beauty", "popularity", "default", log=quiet)
    assert taken["adopted"] and taken["metrics"] == popularity["metrics"]
    assert store.verify() == (2, [])

    monkeypatch.setattr(experiments, "fit", fit)  # stage 2 is trained here, on the reference's encoder
    ras = experiments.finetune("Beauty", "sasrec", 1, "default", log=quiet)
    assert ras["profile"] == "default" and "adopted" not in ras and ras["config"]["backbone_key"] == ref["key"]
    assert ras["key"] == spec.Run("finetune", "Beauty", 1, "full", backbone="sasrec").key  # full's key

    table = beside_reference.versus_reference([mine, ras])
    verdicts = table.groupby("model", sort=False)["verdict"].first().to_dict()
    assert verdicts == {"SASRec (reference)": beside_reference.TAKEN, "RaSeRec(SASRec)": "no reference run"}
    models = pd.DataFrame({"model": ["SASRec", "RaSeRec(SASRec)", "Popularity"]})
    assert list(beside_reference.mark_reference(models, [mine, ras, taken])["model"]) == [
        "SASRec (reference)", "RaSeRec(SASRec)", "Popularity (reference)"]
    wide = pd.DataFrame(columns=["SASRec", "RaSeRec"])
    assert list(beside_reference.mark_reference(wide, {"SASRec": [mine], "RaSeRec": [ras]}, column=None).columns) == [
        "SASRec (reference)", "RaSeRec"]


def test_a_changed_file_of_the_reference_is_refused_by_name_and_nothing_is_copied(kit, monkeypatch):
    ref = in_reference(monkeypatch, kit, lambda: experiments.pretrain("Beauty", "sasrec", "ce", 1, "full", log=quiet))
    no_training(monkeypatch)
    weights = kit / "reference" / ref["weights"]["file"]
    kept = weights.read_bytes()
    state = torch.load(weights, weights_only=True)
    state["model"]["item_embedding.weight"] += 1.0
    torch.save(state, weights)
    with pytest.raises(CheckpointError, match=f"{weights}: sha256 .* does not match its ledger record"):
        experiments.pretrain("Beauty", "sasrec", "ce", 1, "default", log=quiet)
    assert ledger.records() == [] and not paths.weights_dir().exists() and not paths.ranks_dir().exists()
    weights.write_bytes(kept)
    ranks = kit / "reference" / ref["ranks"]["file"]
    ranks.write_bytes(ranks.read_bytes()[:-8])
    with pytest.raises(store.IntegrityError, match=f"{ranks}: sha256 .* does not match its ledger record"):
        experiments.pretrain("Beauty", "sasrec", "ce", 1, "default", log=quiet)
    assert ledger.records() == []


def test_a_run_the_reference_lacks_or_keeps_without_the_weights_stage_2_loads_is_trained_here(kit, monkeypatch):
    ref = in_reference(monkeypatch, kit, lambda: experiments.pretrain("Beauty", "sasrec", "ce", 1, "full", log=quiet))
    ledger.put({k: v for k, v in ref.items() if k != "weights"}, kit / "reference")  # ranks only
    messages = []
    mine = experiments.pretrain("Beauty", "sasrec", "ce", 1, "default", log=messages.append)
    assert messages[0] == (f"the reference does not hold run {ref['key']} (or not with the weights stage 2 loads): "
                           f"training it here")
    assert "adopted" not in mine and mine["profile"] == "default" and store.weights_path(mine) is not None
    assert mine["metrics"] == ref["metrics"]  # the same seed, the same numbers
    assert experiments.pretrain("Beauty", "sasrec", "ce", 1, "default", reuse_only=True, log=quiet) == mine
    assert experiments.pretrain("Beauty", "gru4rec", "ce", 1, "default", reuse_only=True, log=quiet) is None


def test_full_trains_its_own_in_place_of_runs_that_come_from_the_reference(kit, monkeypatch):
    ref = in_reference(monkeypatch, kit, lambda: experiments.pretrain("Beauty", "sasrec", "ce", 1, "full", log=quiet))
    experiments.finetune("Beauty", "sasrec", 1, "default", log=quiet)  # on the encoder taken from the reference
    messages = []
    ras = experiments.finetune("Beauty", "sasrec", 1, "full", log=messages.append)
    assert not any(m.startswith("reusing RaSeRec") for m in messages) and ras["profile"] == "full"
    base = ledger.get(ref["key"])
    assert "adopted" not in base and base["profile"] == "full"  # trained here, in place of the reference's
    assert plan.build("full", ["07_backbones"], {"backbones": ["sasrec"]})[ras["key"]].done


def test_promote_leaves_runs_from_the_reference_alone_and_keeps_the_full_record(kit, monkeypatch):
    full = in_reference(monkeypatch, kit, lambda: experiments.finetune("Beauty", "sasrec", 1, "full", log=quiet))
    ras = experiments.finetune("Beauty", "sasrec", 1, "default", log=quiet)
    assert ras["key"] == full["key"] and ras["profile"] == "default"
    messages = []
    assert store.promote(log=messages.append) == []
    assert messages[0].startswith("left SASRec") and "taken from the reference" in messages[0]
    assert "kept the reference's full record" in messages[1]
    assert ledger.get(full["key"], kit / "reference") == full
    assert "adopted" not in ledger.get(full["config"]["backbone_key"], kit / "reference")


def test_the_default_plan_takes_stage_1_from_the_reference_and_trains_stage_2(tmp_path, monkeypatch, capsys):
    from rasekit.cli import main
    monkeypatch.setenv("RASEKIT_OUTPUT", str(tmp_path / "own"))  # a fresh clone: the committed reference
    steps = plan.build("default")
    full = {r["key"] for r in ledger.records(paths.REPO_ROOT) if r["profile"] == "full" and r["dataset"] == "Beauty"}
    assert set(steps) <= full  # the full runs of Beauty seed 1
    stage1 = [s for s in steps.values() if s.run.stage == "pretrain"]
    stage2 = [s for s in steps.values() if s.run.stage == "finetune"]
    assert len(stage1) == 6 and all(s.from_reference and s.estimate_s == 0 for s in stage1)
    assert len(stage2) == 4 and not any(s.from_reference for s in stage2) and all(s.estimate_s for s in stage2)
    baselines = [s for s in steps.values() if s.run.stage == "baseline"]  # Popularity, ItemTransition
    assert len(baselines) == 2 and all(s.from_reference for s in baselines)
    assert main(["plan", "--profile", "default"]) == 0
    out = capsys.readouterr().out
    assert "12 to run: 8 taken from the reference (copied and checked, not trained), 4 to train" in out
    assert out.count("todo: taken from the reference, not trained") == 8


def test_estimates_learn_from_runs_of_a_profile_that_trains_alike():
    done = recorded_duorec(3000.0, "cpu: AMD EPYC, 1 threads")
    assert plan.estimate(spec.Run("pretrain", "Beauty", 1, "default"), [done]) == 3000.0
    assert plan.estimate(spec.Run("pretrain", "Beauty", 1, "smoke"), [done]) is None
    assert plan.trains_alike("default", "full") and not plan.trains_alike("smoke", "full")


def test_the_default_batch_runs_the_notebooks_of_the_papers_tables(tmp_kit, monkeypatch, capsys):
    seen = []
    monkeypatch.setattr("papermill.execute_notebook", lambda source, *_, **__: seen.append(source.split("/")[-1]))
    runner.run_batch("default", out_root=tmp_kit["output"] / "x")
    assert seen == [f"{name}.ipynb" for name in profiles.PAPER_NOTEBOOKS]
    assert "08_sensitivity, 09_ablation, 10_efficiency, 11_dynamic_memory, 13_audit run when named" in capsys.readouterr().out
