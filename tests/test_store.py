"""The run store: weights kept beside their records (hash-checked), the user's own runs apart from the
reference, promotion, and the comparison of one with the other."""
import shutil

import pytest
import torch

from rasekit import settings
from rasekit.analysis import beside_reference
from rasekit.runs import experiments, ledger, runner, store
from rasekit.files import paths
from rasekit.stages.loop import CheckpointError

from .test_experiments import tiny  # noqa: F401  (fixture: a 300-user, 1-epoch smoke profile)
from .test_ledger import record


@pytest.fixture
def kept(tiny, monkeypatch, tmp_path):  # noqa: F811
    """The tiny profile, with weights kept as for the default and full profiles, and its own reference."""
    monkeypatch.setattr(store, "KEEP_WEIGHTS", (tiny,))
    monkeypatch.setattr(store, "REFERENCE_WEIGHTS", (tiny,))
    monkeypatch.setenv("RASEKIT_REFERENCE", str(tmp_path / "reference"))
    return tiny


def test_weights_are_kept_weights_only_with_their_hash(kept):
    rec = experiments.pretrain("Beauty", "sasrec", "ce", seed=1, profile=kept, log=lambda *_: None)
    path = paths.output_dir() / rec["weights"]["file"]
    assert path.parent == paths.weights_dir() and rec["weights"]["bytes"] == path.stat().st_size
    saved = torch.load(path, weights_only=True)
    assert set(saved) == {"meta", "model"} and saved["meta"]["key"] == rec["key"]  # no optimizer state
    assert store.weights_path(rec) == path


def test_a_model_that_only_feeds_a_table_keeps_its_ranks_not_its_weights(kept):
    rec = experiments.pretrain("Beauty", "sasrec", "bpr", seed=1, profile=kept, log=lambda *_: None)
    assert "weights" not in rec and not any(paths.weights_dir().glob("*.pt"))
    assert (paths.ranks_dir() / f"{rec['key']}.npz").exists()


def test_stage_2_loads_the_stored_weights_and_refuses_tampered_ones(kept):
    base = experiments.pretrain("Beauty", "sasrec", "ce", seed=1, profile=kept, log=lambda *_: None)
    shutil.rmtree(paths.runs_dir())  # no checkpoint on this machine any more: only the stored weights
    messages = []
    ras = experiments.finetune("Beauty", "sasrec", seed=1, profile=kept, log=messages.append)
    assert ledger.get(base["key"]) == base  # stage 1 was not trained again
    assert not any("training it again" in m for m in messages)
    assert ras["weights"]["sha256"] != base["weights"]["sha256"]  # the RAM's own weights, kept too
    path = paths.output_dir() / base["weights"]["file"]
    weights = torch.load(path, weights_only=True)
    weights["model"]["item_embedding.weight"] += 1.0
    torch.save(weights, path)
    with pytest.raises(CheckpointError, match="sha256 .* does not match its ledger record"):
        experiments.load_pretrained(base, "cpu")


def test_missing_weights_are_retrained_with_the_same_call_and_it_says_so(kept):
    base = experiments.pretrain("Beauty", "sasrec", "ce", seed=1, profile=kept, log=lambda *_: None)
    (paths.output_dir() / base["weights"]["file"]).unlink()
    shutil.rmtree(paths.runs_dir())
    messages = []
    again = experiments.pretrain("Beauty", "sasrec", "ce", seed=1, profile=kept, need_checkpoint=True,
                                 log=messages.append)
    assert "training it again with its recorded settings" in messages[0]
    assert again["key"] == base["key"] and again["metrics"] == base["metrics"]  # same seed, same numbers
    assert store.weights_path(again) is not None


def test_promote_copies_finished_runs_into_the_reference(kept):
    rec = experiments.pretrain("Beauty", "sasrec", "ce", seed=1, profile=kept, log=lambda *_: None)
    assert store.promote() == [rec["key"]]
    reference = paths.reference_dir()
    assert ledger.get(rec["key"], reference) == rec
    assert store.weights_path(rec, reference) is not None
    assert (paths.ranks_dir(reference) / f"{rec['key']}.npz").exists()
    with pytest.raises(ValueError, match="not among your finished runs"):
        store.promote(["nope"])


def test_a_stage_2_run_is_never_promoted_without_its_stage_1_run(kept):
    ras = experiments.finetune("Beauty", "sasrec", seed=1, profile=kept, log=lambda *_: None)
    base = ras["config"]["backbone_key"]
    with pytest.raises(ValueError, match=rf"RaSeRec\(SASRec\) on Beauty, {kept} \({ras['key']}\) needs {base}"):
        store.promote([ras["key"]])
    assert ledger.records(paths.reference_dir()) == []  # nothing was copied
    assert sorted(store.promote([ras["key"], base])) == sorted([ras["key"], base])
    assert store.promote([ras["key"]]) == [ras["key"]]  # its stage-1 run is there now


def test_the_reference_keeps_weights_of_its_weight_profiles_only_and_not_when_told(kept, monkeypatch):
    rec = experiments.pretrain("Beauty", "sasrec", "ce", seed=1, profile=kept, log=lambda *_: None)
    monkeypatch.setattr(store, "REFERENCE_WEIGHTS", ("full",))  # as for a default run
    assert store.promote() == [rec["key"]]
    reference = paths.reference_dir()
    held = ledger.get(rec["key"], reference)
    assert held == {k: v for k, v in rec.items() if k != "weights"}  # names no file that is not there
    assert not paths.weights_dir(reference).exists()
    assert (paths.ranks_dir(reference) / f"{rec['key']}.npz").exists()
    assert store.weights_path(rec) is not None  # the user's own copy stays
    monkeypatch.setattr(store, "REFERENCE_WEIGHTS", (kept,))
    assert store.promote() == [rec["key"]] and store.weights_path(rec, reference) is not None
    messages = []  # a ranks-only promotion never drops weights the reference keeps
    assert store.promote(weights=False, log=messages.append) == []
    assert ledger.get(rec["key"], reference)["weights"] and store.weights_path(rec, reference) is not None
    assert "it keeps the trained weights" in messages[0]


def test_a_promotion_checks_every_run_first_and_keeps_the_larger_profiles_records(kept):
    rec = experiments.pretrain("Beauty", "sasrec", "ce", seed=1, profile=kept, log=lambda *_: None)
    reference = paths.reference_dir()
    held = {**record(key="same-everywhere"), "profile": "full"}  # e.g. a training-free baseline
    ledger.put(held, reference)
    ledger.put({**held, "profile": kept})
    (paths.ranks_dir() / "same-everywhere.npz").write_bytes(b"")
    broken = {**record(key="no-weights"), "profile": kept,
              "weights": {"file": "results/weights/no-weights.pt", "sha256": "0" * 64, "bytes": 1}}
    ledger.put(broken)
    with pytest.raises(FileNotFoundError, match="weights of run no-weights are missing"):
        store.promote()
    assert ledger.get(rec["key"], reference) is None  # nothing was copied
    messages = []
    assert store.promote([rec["key"], "same-everywhere"], log=messages.append) == [rec["key"]]
    assert ledger.get("same-everywhere", reference) == held
    assert "kept the reference's full record of run same-everywhere" in messages[0]


def test_versus_reference_gives_a_verdict_per_run(tmp_kit, monkeypatch):
    monkeypatch.setenv("RASEKIT_REFERENCE", str(tmp_kit["reference"]))
    for seed, hr in [(1, 0.080), (2, 0.082), (3, 0.084)]:
        ledger.put({**record(key=f"s{seed}", hr=hr), "seed": seed}, paths.reference_dir())
    mine = [{**record(key="s1", hr=0.080), "seed": 1}, {**record(key="s2", hr=0.083), "seed": 2},
            {**record(key="s3", hr=0.099), "seed": 3}, {**record(key="new", hr=0.08), "seed": 4}]
    table = beside_reference.versus_reference(mine)
    verdicts = table.groupby("seed")["verdict"].first().to_dict()
    assert verdicts == {1: "same numbers", 2: "within seed spread", 3: "off, by up to 0.0150 (standard deviation "
                        "over the reference's seeds: 0.0020)", 4: "no reference run"}
    assert (table.loc[table["metric"] == "HR@10", "paper"] == 0.0834).all()  # DuoRec on Beauty, as reported
    single = {**record(key="one", hr=0.08), "model": "GRU4Rec"}  # the reference's only GRU4Rec seed
    ledger.put(single, paths.reference_dir())
    judged = beside_reference.versus_reference([{**single, "metrics": {**single["metrics"], "HR@10": 0.0801}}])
    assert judged["verdict"].iloc[0] == "differs (one reference seed), by up to 0.0001"
    monkeypatch.setenv("RASEKIT_OUTPUT", str(tmp_kit["reference"]))
    assert beside_reference.versus_reference(mine) is None  # rebuilding the reference: nothing to compare


def test_differences_of_a_few_test_users_worth_are_rounding_not_a_miss():
    floor = beside_reference.ROUNDING_USERS / 22363  # Beauty's test users
    assert beside_reference.verdict([0.0001, -0.00005], [0.00002, 0.0003], floor) == \
        "same up to rounding (no more than 5 test users' worth)"
    assert beside_reference.verdict([0.0001, 0.0004], [0.00002, 0.0003], floor) == "within seed spread"
    assert beside_reference.verdict([0.0004], [0.00002], floor).startswith("off, by up to 0.0004")
    assert beside_reference.verdict([0.0001], [0.00002]).startswith("off")  # without a floor (no ranks to count by)


def test_a_default_run_is_judged_by_the_spread_of_the_full_runs_whose_key_it_shares(tmp_kit, monkeypatch):
    monkeypatch.setenv("RASEKIT_REFERENCE", str(tmp_kit["reference"]))
    for seed, hr in [(1, 0.080), (2, 0.082), (3, 0.084)]:
        ledger.put({**record(key=f"s{seed}", hr=hr), "seed": seed}, paths.reference_dir())
    ledger.put({**record(key="old", hr=0.03), "profile": "default"}, paths.reference_dir())  # another configuration
    mine = {**record(key="s1", hr=0.081), "profile": "default"}  # trained as full trains: the full run's key
    table = beside_reference.versus_reference([mine])
    assert table["verdict"].iloc[0] == "within seed spread"
    assert table.loc[table["metric"] == "HR@10", "reference spread"].iloc[0] == pytest.approx(0.002)


def test_batch_reference_trains_nothing_and_writes_into_the_reference(tmp_kit, monkeypatch):
    monkeypatch.setenv("RASEKIT_REFERENCE", str(tmp_kit["reference"]))
    seen = []

    def execute(source, target, parameters, **_):
        seen.append((source.split("/")[-1], dict(parameters), paths.output_dir()))
    monkeypatch.setattr("papermill.execute_notebook", execute)
    runner.run_batch("smoke", ["01_main_results", "00_datasets"], out_root=tmp_kit["output"] / "x",
                     reference=True)
    assert seen[0][1]["reuse_only"] is True and "reuse_only" not in seen[1][1]  # 00 declares no such parameter
    assert all(output == tmp_kit["reference"] for *_, output in seen)
    assert paths.output_dir() == tmp_kit["output"]  # restored afterwards


def test_batch_trains_the_notebooks_runs_side_by_side_first_and_stops_before_them_on_a_failure(
        tmp_kit, data_dir, monkeypatch):
    from rasekit.runs import executors
    monkeypatch.setenv("RASEKIT_DATA_DIR", str(data_dir))  # the runs' keys name their data
    calls, failing = [], []

    def run_local(steps, workers, log=print):
        calls.append(("plan", workers, sorted(step.run.model for step in steps.values())))
        return [key for key in steps if steps[key].run.model in failing]
    monkeypatch.setattr(executors, "run_local", run_local)
    monkeypatch.setattr("papermill.execute_notebook", lambda source, *_, **__: calls.append(source.split("/")[-1]))
    out = tmp_kit["output"] / "x"
    runner.run_batch("smoke", ["00_datasets", "01_main_results"], out_root=out, workers=2)
    assert calls == [("plan", 2, ["DuoRec", "RaSeRec(DuoRec)"]), "00_datasets.ipynb", "01_main_results.ipynb"]
    calls.clear()
    failing.append("DuoRec")
    with pytest.raises(RuntimeError, match=r"1 training run\(s\) of the batch failed or were skipped: DuoRec on "
                                           r"Beauty, seed 1 \(smoke\)\. No notebook was executed"):
        runner.run_batch("smoke", ["00_datasets", "01_main_results"], out_root=out, workers=2)
    assert len(calls) == 1 and len(list(out.iterdir())) == 1  # no notebook, no second run folder
    calls.clear()
    runner.run_batch("smoke", ["00_datasets"], out_root=out / "statistics", workers=2)
    assert calls == ["00_datasets.ipynb"]  # a notebook that trains nothing plans nothing
    calls.clear()
    runner.run_batch("smoke", ["01_main_results"], out_root=out / "reference", workers=2, reference=True)
    assert calls == ["01_main_results.ipynb"]  # the reference trains nothing
    with pytest.raises(settings.SettingsError, match="workers=-1 is not allowed"):
        runner.run_batch("smoke", ["01_main_results"], out_root=out, workers=-1)


def test_the_best_checkpoint_of_a_run_trained_again_is_not_its_records_model(tmp_path, monkeypatch):
    from rasekit.runs import experiments
    from rasekit.stages.loop import save_atomic
    monkeypatch.setenv("RASEKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("RASEKIT_OUTPUT", str(tmp_path / "own"))
    record = {"key": "7" * 16, "epochs_run": 48, "best_epoch": 36}
    folder = experiments.run_dir(record["key"])
    meta = {"key": record["key"]}
    save_atomic({"meta": meta, "model": {}}, folder / "best.pt")
    save_atomic({"meta": meta, "model": {}, "loop": {"epoch": 13, "best_epoch": 12}}, folder / "last.pt")
    assert not experiments.has_weights(record)  # under way: epoch 13 of a 48-epoch run
    save_atomic({"meta": meta, "model": {}, "loop": {"epoch": 47, "best_epoch": 36}}, folder / "last.pt")
    assert experiments.trained_weights(record) == folder / "best.pt"  # finished: the recorded run
