"""The run plan: the notebooks' runs as a graph with the ledger's status, executed by local workers or
Ray in dependency order; a second execution finds everything done."""
import dataclasses
import os
import shutil

import pytest

from rasekit import settings
from rasekit.data import registry
from rasekit.runs import executors, experiments, ledger, notebook_runs, plan, spec
from rasekit.runs.record import ModelId, Record
from rasekit.files import paths
from rasekit.cli import main


def rerun_pending(step) -> bool:
    """A committed run recorded under the exact stopping rule whose rerun under the official rule (the
    default) is still to come: the reference holds it under the exact rule's key."""
    from dataclasses import replace
    return ledger.get(replace(step.run, train=(("valid_decimals", None),)).key, paths.REPO_ROOT) is not None


def test_the_plan_finds_the_committed_full_runs_under_the_notebooks_keys(monkeypatch, capsys):
    monkeypatch.setenv("RASEKIT_OUTPUT", str(paths.REPO_ROOT))  # the committed reference ledger (read only)
    steps = plan.build("full", ["01_main_results"])
    assert len(steps) == 12 and all(step.done or rerun_pending(step) for step in steps.values())
    stage2 = [s for s in steps.values() if s.run.stage == "finetune"]
    assert all(len(s.needs) == 1 and steps[s.needs[0]].run.model == "DuoRec" for s in stage2)
    assert main(["plan", "--profile", "full"]) == 0
    out = capsys.readouterr().out
    assert "in the ledger" in out and "CPU-h on the longest chain" in out and "└ " in out


def test_a_fresh_users_plan_learns_its_estimates_from_the_reference(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RASEKIT_OUTPUT", str(tmp_path / "own"))  # an empty ledger of the user's own
    steps = plan.build("full", ["01_main_results"])
    assert not any(step.done for step in steps.values())
    assert all(s.in_reference or rerun_pending(s) for s in steps.values())
    reference = {r["key"]: r for r in ledger.records(paths.REPO_ROOT)}
    duorec = next(s for s in steps.values() if s.run.model == "DuoRec" and s.run.dataset == "Beauty")
    alike = [r for r in reference.values()
             if r["model"] == "DuoRec" and r["dataset"] == "Beauty" and r["profile"] == "full"]
    here = plan.processor(plan.device_name())
    mine = [r for r in alike if plan.processor(r["provenance"]["device"]) == here]
    recorded = sorted(Record.of(r).cpu_seconds for r in mine or alike)
    assert duorec.estimate_s == recorded[len(recorded) // 2]  # the median of the reference's own runs
    assert main(["plan", "--profile", "full", "01_main_results"]) == 0
    assert "the reference has it" in capsys.readouterr().out


def recorded_duorec(seconds: float, device: str, profile: str = "full", **config) -> Record:
    """A ledger record of a finished DuoRec stage 1 on Beauty, as estimates read it."""
    return Record.of({"key": "0" * 16, "model": "DuoRec", "dataset": "Beauty", "seed": 1, "profile": profile,
                      "stage": "pretrain", "metrics": {},
                      "config": {"stage": "pretrain", "encoder": "sasrec", "objective": "duorec", **config},
                      "provenance": {"train_seconds": seconds, "device": device}})


def test_a_runs_cost_is_its_measured_cpu_time_where_recorded():
    assert recorded_duorec(3000.0, "cpu: AMD EPYC, 2 threads").cpu_seconds == 6000.0  # wall x threads
    paused = recorded_duorec(3000.0, "cpu: AMD EPYC, 2 threads")
    paused.provenance["train_cpu_seconds"] = 4100.0  # the process was paused, or waited for a core
    assert paused.cpu_seconds == 4100.0


def test_estimates_come_from_similar_recorded_runs():
    done = recorded_duorec(3000.0, "cpu: AMD EPYC, 2 threads")
    duorec = spec.Run("pretrain", "Beauty", 4, "full")
    assert plan.estimate(duorec, [done]) == 6000.0  # seconds x threads
    sports = spec.Run("pretrain", "Sports", 4, "full")
    assert 6000.0 < plan.estimate(sports, [done]) < 12000.0  # scaled by the size of the data
    assert plan.estimate(duorec, [recorded_duorec(3000.0, "cpu: AMD EPYC, 2 threads", "smoke")]) is None
    sasrec = spec.Run("pretrain", "Beauty", 4, "full", "sasrec", "ce")  # another model: only the stage alike
    assert plan.estimate(sasrec, [done]) == 6000.0
    assert plan.estimate(sasrec, [done, recorded_duorec(1000.0, "cpu: AMD EPYC, 1 threads", objective="ce")]) == 1000.0


def test_a_model_is_told_apart_by_its_identity_never_by_its_name():
    # every committed record's identity is the one of the run spec that trains it
    records = {r["key"]: Record.of(r) for r in ledger.records(paths.REPO_ROOT)}
    runs = [step.run for step in plan.build("full").values() if step.key in records]
    assert runs and all(records[run.key].model == run.identity for run in runs)
    variant = spec.Run("finetune", "Beauty", 1, "full", backbone="duorec", ram=(("k", 5),))
    assert variant.identity == spec.Run("finetune", "Beauty", 1, "full", backbone="duorec").identity
    with pytest.raises(ValueError, match="unknown stage 'training'"):
        ModelId.of_config({"stage": "training"})


def test_estimates_prefer_runs_recorded_on_this_machines_processor():
    records = [recorded_duorec(8000.0, "cpu: AMD EPYC, 1 threads"),
               recorded_duorec(9000.0, "cpu: AMD EPYC, 1 threads"),
               recorded_duorec(4000.0, "cpu: Intel Xeon, 1 threads")]
    duorec = spec.Run("pretrain", "Beauty", 4, "full")
    assert plan.processor("cpu: Intel Xeon, 2 threads") == "cpu: Intel Xeon"
    assert plan.estimate(duorec, records, here="cpu: Intel Xeon") == 4000.0
    assert plan.estimate(duorec, records, here="cpu: AMD EPYC") == 9000.0  # median of the two
    assert plan.estimate(duorec, records, here="NVIDIA H200") == 8000.0  # none here: all of them


def test_estimates_prefer_runs_trained_with_the_same_kernels():
    exact = recorded_duorec(8000.0, "cpu: AMD EPYC, 1 threads")
    fast = recorded_duorec(7000.0, "cpu: AMD EPYC, 1 threads", train={"kernels": "fast"})
    assert (exact.kernels, fast.kernels) == ("exact", "fast")
    duorec = spec.Run("pretrain", "Beauty", 4, "full")
    quick = spec.Run("pretrain", "Beauty", 4, "full", train=(("kernels", "fast"),))
    assert plan.estimate(duorec, [exact, fast]) == 8000.0
    assert plan.estimate(quick, [exact, fast]) == 7000.0
    assert plan.estimate(quick, [exact]) == 8000.0  # none alike in kernels: the others


def test_estimates_prefer_runs_whose_cpu_time_was_measured():
    paused = recorded_duorec(9000.0, "cpu: AMD EPYC, 1 threads")  # wall time only: paused time counted
    measured = recorded_duorec(5000.0, "cpu: AMD EPYC, 1 threads")
    measured.provenance["train_cpu_seconds"] = 3000.0
    duorec = spec.Run("pretrain", "Beauty", 4, "full")
    assert (paused.cpu_measured, measured.cpu_measured) == (False, True)
    assert plan.estimate(duorec, [paused, measured, recorded_duorec(8000.0, "cpu: AMD EPYC, 1 threads")]) == 3000.0
    assert plan.estimate(duorec, [paused]) == 9000.0  # none measured: the wall times


def test_estimates_scale_runs_on_held_out_data_by_their_base_dataset():
    derived = dataclasses.replace(recorded_duorec(5000.0, "cpu: AMD EPYC, 1 threads"), dataset="Beauty:users=0.1")
    on_sports = spec.Run("pretrain", "Sports_and_Outdoors:last=1", 4, "full")
    beauty, sports = (registry.DATASETS[n].sequences.size for n in ("Beauty", "Sports_and_Outdoors"))
    assert plan.estimate(on_sports, [derived]) == pytest.approx(5000.0 * sports / beauty)


def test_workers_share_the_cores():
    assert executors.threads_per_worker(1, cores=2) == 2
    assert executors.threads_per_worker(2, cores=2) == 1
    assert executors.threads_per_worker(4, cores=2) == 1
    assert executors.threads_per_worker(2, cores=16) == 8


def test_unknown_notebooks_and_bad_runs_are_refused():
    with pytest.raises(ValueError, match="no run list for notebook"):
        plan.build("smoke", ["00_datasets"])
    with pytest.raises(ValueError, match="backbone='bert' is not allowed"):
        spec.Run("finetune", "Beauty", 1, "smoke", backbone="bert")
    with pytest.raises(settings.SettingsError, match="workers=0 is not allowed"):
        executors.run_local({}, 0)
    with pytest.raises(settings.SettingsError, match="gpus_per_run=2 is not allowed"):
        executors.run_ray({}, None, gpus_per_run=2)


def test_a_step_leads_the_longest_chain_it_starts():
    run = spec.Run("pretrain", "Beauty", 1, "smoke")
    steps = {"a": plan.Step(run, "a", False, [], 600.0), "b": plan.Step(run, "b", False, ["a"], 60.0),
             "c": plan.Step(run, "c", False, [], 300.0), "d": plan.Step(run, "d", True, [], 900.0),
             "e": plan.Step(run, "e", False, ["d"], None)}
    assert plan.downstream_s(steps) == {"a": 660.0, "b": 60.0, "c": 300.0, "d": 0.0, "e": 0.0}


def test_one_worker_starts_a_run_only_when_the_last_one_is_done(tmp_path, monkeypatch, capsys):
    """'start' means the run trains now: with the runs queued in the pool, both were logged at once."""
    monkeypatch.setenv("RASEKIT_OUTPUT", str(tmp_path / "out"))
    monkeypatch.setenv("RASEKIT_CACHE", str(tmp_path / "cache"))
    two = ["02_pretraining", "-p", "models", '[["sasrec", "ce"], ["gru4rec", "ce"]]']
    assert main(["plan", "--profile", "smoke", *two, "--run", "--workers", "1"]) == 0
    events = [line.split()[0] for line in capsys.readouterr().out.splitlines()
              if line.startswith(("start ", "done "))]
    assert events == ["start", "done", "start", "done"]


SMOKE = ["01_main_results", "02_pretraining", "-p", "models", '[["sasrec", "ce"]]']


def test_two_workers_complete_the_smoke_plan_and_a_second_call_does_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RASEKIT_OUTPUT", str(tmp_path / "out"))
    monkeypatch.setenv("RASEKIT_CACHE", str(tmp_path / "cache"))
    assert main(["plan", "--profile", "smoke", *SMOKE, "--run", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "3 runs, 0 in the ledger, 3 to run" in out and "plan complete" in out
    assert out.index("done  DuoRec") < out.index("start RaSeRec(DuoRec)")  # stage 1 before its stage 2
    assert sorted(r["model"] for r in ledger.records()) == ["DuoRec", "RaSeRec(DuoRec)", "SASRec"]
    assert main(["plan", "--profile", "smoke", *SMOKE, "--run", "--workers", "2"]) == 0
    assert "nothing to run" in capsys.readouterr().out


def test_a_local_ray_completes_the_smoke_chain(tmp_path, monkeypatch, capsys):
    try:
        import ray  # noqa: F401
    except ImportError:  # the optional extra: ./test.sh installs it, so CI must never skip this
        (pytest.fail if os.environ.get("CI") else pytest.skip)("Ray is not installed (pip install 'rasekit[ray]')")
    monkeypatch.setenv("RASEKIT_OUTPUT", str(tmp_path / "out"))
    monkeypatch.setenv("RASEKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    assert main(["plan", "--profile", "smoke", "01_main_results", "--run", "--ray", "local"]) == 0
    assert sorted(r["model"] for r in ledger.records()) == ["DuoRec", "RaSeRec(DuoRec)"]
    assert main(["plan", "--profile", "smoke", "01_main_results"]) == 0
    assert "2 runs, 2 in the ledger, 0 to run" in capsys.readouterr().out


def test_notebooks_that_load_trained_models_know_when_none_is_loadable(tmp_path, monkeypatch):
    from rasekit.runs import runner
    monkeypatch.setenv("RASEKIT_OUTPUT", str(tmp_path / "empty"))  # a store without runs
    monkeypatch.setenv("RASEKIT_CACHE", str(tmp_path / "cache"))  # and no checkpoints of this machine
    assert plan.reusable_runs("default", "05_noise_robustness") == []
    assert not runner._has_inputs("04_memory_partitions", "default", {})
    assert runner._has_inputs("01_main_results", "default", {})  # tables from ranks need no weights
    monkeypatch.setenv("RASEKIT_OUTPUT", str(paths.REPO_ROOT))  # the reference
    full = plan.reusable_runs("full", "05_noise_robustness", {"datasets": ["Beauty"], "seeds": [1]})
    assert full, "the reference stores the weights of Beauty seed 1's full runs"
    full_beauty_1 = plan.reusable_runs("full", "04_memory_partitions", {"datasets": ["Beauty"], "seeds": [1]})
    default = plan.reusable_runs("default", "04_memory_partitions")  # the full runs of Beauty seed 1
    assert default == full_beauty_1 and all(experiments.loadable(ledger.get(key)) for key in default)


def test_a_notebook_that_loads_models_plans_to_train_again_the_runs_whose_weights_are_gone(
        tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RASEKIT_OUTPUT", str(tmp_path / "out"))
    monkeypatch.setenv("RASEKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("RASEKIT_THREADS", "1")
    assert main(["plan", "--profile", "smoke", "01_main_results", "--run"]) == 0
    shutil.rmtree(paths.runs_dir())  # smoke runs keep no weights: with the checkpoints gone, none is here
    assert all(s.done for s in plan.build("smoke", ["01_main_results"]).values())  # its tables need ranks
    steps = plan.build("smoke", ["04_memory_partitions"])
    assert [(s.run.stage, s.done, s.weights_missing) for s in steps.values()] == [
        ("pretrain", False, True), ("finetune", False, True)]
    capsys.readouterr()
    assert main(["plan", "--profile", "smoke", "04_memory_partitions", "--run"]) == 0
    out = capsys.readouterr().out
    assert "2 to run" in out and out.count("in the ledger without its trained weights") == 2
    stage2 = [key for key, step in steps.items() if step.run.stage == "finetune"]
    assert plan.reusable_runs("smoke", "04_memory_partitions") == stage2
    assert all(s.done for s in plan.build("smoke", ["04_memory_partitions"]).values())


def test_a_killed_plan_leaves_no_worker_training_on(tmp_path):
    import signal
    import subprocess
    import sys
    import time
    script = tmp_path / "plan.py"
    script.write_text(
        "import os, sys, time\n"
        "from concurrent.futures import ProcessPoolExecutor\n"
        "from multiprocessing import get_context\n"
        "from rasekit.runs.executors import _exit_with_parent\n"
        "if __name__ == '__main__':\n"
        "    pool = ProcessPoolExecutor(1, mp_context=get_context('spawn'), initializer=_exit_with_parent)\n"
        "    print(pool.submit(os.getpid).result(), flush=True)\n"
        "    pool.submit(time.sleep, 600)\n"
        "    time.sleep(600)\n")
    plan_process = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    worker = int(plan_process.stdout.readline())
    plan_process.send_signal(signal.SIGKILL)  # as the end of a working day kills it
    plan_process.wait()
    for _ in range(50):
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.kill(worker, signal.SIGKILL)
    pytest.fail("the worker outlived the killed plan")


def test_the_sports_gap_runs_change_one_setting_each_and_only_where_sports_is():
    runs = notebook_runs.stopping_runs("full")
    stage1, stage2 = runs[:3], runs[3:]
    assert [r.train for r in stage1] == [(("valid_metric", "NDCG@10"),), (("valid_metric", "HR@10"),),
                                         (("batch_size", 1024),)]
    assert {(r.dataset, r.seed, r.model) for r in stage1} == {("Sports_and_Outdoors", 1, "DuoRec")}
    assert len({r.key for r in runs}) == 6 and "[valid_metric=NDCG@10]" in runs[0].label()
    assert [r.base for r in stage2] == stage1 and all(r.train == () for r in stage2)  # RaSeRec on each
    assert stage2[2].label() == "RaSeRec(DuoRec [batch_size=1024]) on Sports_and_Outdoors, seed 1 (full)"
    assert notebook_runs.stopping_runs("smoke") == []  # no Sports in the profile: nothing to run
    assert set(plan.build("full", ["02_pretraining"])) >= {r.key for r in runs}


def test_a_stage_2_run_on_a_changed_stage_1_run_trains_on_it_under_the_plans_keys(tmp_path, monkeypatch):
    monkeypatch.setenv("RASEKIT_OUTPUT", str(tmp_path / "out"))
    monkeypatch.setenv("RASEKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("RASEKIT_THREADS", "1")
    run = spec.Run("finetune", "Beauty", 1, "smoke", backbone="duorec", base_train=(("valid_metric", "NDCG@10"),))
    record = run.execute(log=lambda *_: None)
    assert record["key"] == run.key and record["config"]["backbone_key"] == run.base.key
    assert ledger.get(run.base.key)["config"]["train"]["valid_metric"] == "NDCG@10"
    assert record["model"] == run.model == "RaSeRec(DuoRec [valid_metric=NDCG@10])"
    assert run.key != spec.Run("finetune", "Beauty", 1, "smoke", backbone="duorec").key


def test_records_of_names_the_runs_the_ledger_lacks(tmp_path, monkeypatch):
    monkeypatch.setenv("RASEKIT_OUTPUT", str(paths.REPO_ROOT))  # the committed reference (read only)
    done, missing = spec.Run("pretrain", "Beauty", 1, "full"), spec.Run("pretrain", "Beauty", 9, "full")
    said = []
    records = spec.records_of([done, missing], reuse_only=True, log=said.append)
    assert [r["key"] for r in records] == [done.key]
    assert said == [f"not in the ledger, left out: {missing.label()}"]
    assert "CPU-h recorded" in plan.cost(plan.build("full", ["01_main_results"]))


def test_runs_trained_on_noise_are_planned_only_when_asked_one_seed_per_ratio():
    clean = plan.build("full", ["05_noise_robustness"], {"datasets": ["Beauty"]})
    asked = plan.build("full", ["05_noise_robustness"], {"datasets": ["Beauty"], "ratios": [0.0, 0.1, 0.2],
                                                         "trained_on_noise": True})
    assert set(clean) < set(asked)
    extra = [asked[k].run for k in set(asked) - set(clean)]
    assert len(extra) == 6 and {r.seed for r in extra} == {1}  # SASRec, DuoRec, RaSeRec per ratio above 0
    assert {dict(r.noise)["ratio"] for r in extra} == {0.1, 0.2}
    raserec = [r for r in extra if r.stage == "finetune"]
    assert all(r.base.noise == r.noise and r.base.key in asked for r in raserec)
    assert all("[trained on noise=" in r.label() for r in extra)
