"""The command line used as a hostile user would: every mistake ends in one clear `error: ...` that names
the value given, before any work (nothing here trains); no traceback, nothing taken in silence. Notebook
parameters are checked by name, type and range against each notebook's parameters cell."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rasekit import data, settings
from rasekit.cli import main
from rasekit.memory import partitions
from rasekit.runs import experiments, ledger, executors, notebook_parameters, notebook_runs, plan, spec, threads
from rasekit.files import paths

from .test_ledger import record

REPO = Path(__file__).resolve().parents[1]


def run(argv) -> int:
    """`main(argv)`'s exit code, argparse's own refusals (SystemExit) included."""
    try:
        return main(argv)
    except SystemExit as exit_:
        return exit_.code


def ratings(path: Path, users: int = 6, items: int = 6) -> Path:
    """A ratings CSV in which every user rated every item (so it survives a 5-core filter if both are >= 5)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"u{u},i{i},5.0,{100 * u + i}\n" for u in range(users) for i in range(items)))
    return path


CASES = [
    # stats
    (["stats", "--dataset", "", "--offline"], "unknown dataset ''"),
    (["stats", "--dataset", "{tmp}", "--offline"], "(it is a directory)"),
    (["stats", "--dataset", "{tmp}/folder.csv", "--offline"], "folder.csv' is not (it is a directory)"),
    (["stats", "--dataset", "{tmp}/missing.csv"], "missing.csv' is not (no such file)"),
    (["stats", "--dataset", "{tmp}/tiny.csv"], "tiny.csv: no interactions survive 5-core filtering"),
    # pretrain, finetune, baseline
    (["pretrain", "--seed", "-1"], "seed=-1 is not allowed"),
    (["pretrain", "--seed", "one"], "invalid int value: 'one'"),
    (["pretrain", "--train", '"x"'], 'expected a JSON object of settings, got "x"'),
    (["pretrain", "--train", '{"epochs": 0}'], "epochs=0 is not allowed"),
    (["pretrain", "--profile", "huge"], "unknown profile 'huge'"),
    (["pretrain", "--profile", ""], "unknown profile ''"),
    (["pretrain", "--dataset", ""], "unknown dataset ''"),
    (["pretrain", "--encoder", "bert4rec"], "encoder='bert4rec' with objective='duorec' is not allowed"),
    (["finetune", "--ram", "[1]"], "expected a JSON object of settings, got [1]"),
    (["finetune", "--ram", '{"k": 0}'], "k=0 is not allowed"),
    (["finetune", "--backbone", "bert"], "backbone='bert' is not allowed"),
    (["finetune", "--train", '{"lr": -1}'], "lr=-1 is not allowed"),
    (["baseline", "--transition", '{"hops": 9}'], "hops=9 is not allowed"),
    (["baseline", "--name", "magic"], "invalid choice: 'magic'"),
    (["baseline", "--dataset", "{tmp}/missing.csv"], "missing.csv' is not (no such file)"),
    # batch: options and notebook parameters
    (["batch", "99_nothing"], "unknown notebook(s) ['99_nothing']"),
    (["batch", "--profile", "huge"], "unknown profile 'huge'"),
    (["batch", "--workers", "-1", "01_main_results"], "workers=-1 is not allowed"),
    (["batch", "01_main_results", "-p", "seedz", "[2]"],
     "seedz=[2] is not allowed: expected a parameter of the notebooks named (01_main_results: profile, datasets, "
     "seeds, reuse_only)"),
    (["batch", "--profile", "smoke", "01_main_results", "-p", "profile", '"default"'],
     "profile='default' is not allowed: expected 'smoke'"),
    (["batch", "--profile", "smoke", "01_main_results", "-p", "profile", "null"], "profile=None is not allowed"),
    (["batch", "01_main_results", "-p", "datasets", '"Beauty"'], "datasets='Beauty' is not allowed: expected a "
                                                                  "non-empty list of distinct dataset names"),
    (["batch", "01_main_results", "-p", "datasets", '[""]'], "datasets=[''] is not allowed"),
    (["batch", "01_main_results", "-p", "datasets", "[]"], "datasets=[] is not allowed"),
    (["batch", "01_main_results", "-p", "datasets", '["Sports", "Sports_and_Outdoors"]'],
     "'Sports' and 'Sports_and_Outdoors' are both the dataset 'Sports_and_Outdoors'"),
    (["batch", "01_main_results", "-p", "datasets", '["Clothing"]'], "unknown dataset 'Clothing'"),
    (["batch", "01_main_results", "-p", "seeds", "[1]", "-p", "seeds", "[2]"], "-p seeds is given twice"),
    (["batch", "01_main_results", "-p", "seeds", "1"], "seeds=1 is not allowed: expected a non-empty list of "
                                                        "distinct integer seeds"),
    (["batch", "01_main_results", "-p", "seeds", "[1, 1]"], "seeds=[1, 1] is not allowed"),
    (["batch", "01_main_results", "-p", "seeds", '["one"]'], "seeds=['one'] is not allowed"),
    (["batch", "01_main_results", "-p", "seeds", "[-1]"], "seeds=[-1] is not allowed"),
    (["batch", "01_main_results", "-p", "reuse_only", "yes"], "reuse_only='yes' is not allowed: expected true or "
                                                               "false"),
    (["batch", "--reference", "01_main_results", "-p", "reuse_only", "false"], "reuse_only=False is not allowed"),
    (["batch", "02_pretraining", "-p", "models", '[["sasrec"]]'], "models=[['sasrec']] is not allowed"),
    (["batch", "02_pretraining", "-p", "models", '[["bert4rec", "ce"]]'], "bert4rec goes with cloze"),
    (["batch", "03_long_tail", "-p", "n_groups", "0"], "n_groups=0 is not allowed"),
    (["batch", "03_long_tail", "-p", "n_groups", "2.5"], "n_groups=2.5 is not allowed"),
    (["batch", "03_long_tail", "-p", "metric", '"HR@7"'], "metric='HR@7' is not allowed"),
    (["batch", "03_long_tail", "-p", "rule", "items_"], "rule='items_' is not allowed"),
    (["batch", "04_memory_partitions", "-p", "n_parts", "1"], "n_parts=1 is not allowed"),
    (["batch", "05_noise_robustness", "-p", "ratios", "[0.1, 2]"], "ratios=[0.1, 2] is not allowed"),
    (["batch", "05_noise_robustness", "-p", "mode", '"shuffle"'], "mode='shuffle' is not allowed"),
    (["batch", "05_noise_robustness", "-p", "noise_seed", "-3"], "noise_seed=-3 is not allowed"),
    (["batch", "06_comparison", "-p", "transition", '{"hops": 9}'], "hops=9 is not allowed"),
    (["batch", "06_comparison", "-p", "baseline_seeds", "[2, 2]"], "baseline_seeds=[2, 2] is not allowed"),
    (["batch", "07_backbones", "-p", "backbones", '["bert4rec"]'], "backbones=['bert4rec'] is not allowed"),
    # promote, migrate
    (["promote", "--profile", "huge"], "unknown profile 'huge'"),
    (["promote", "no_such_key"], "not among your finished runs"),
    # plan
    (["plan", "--workers", "-1"], "workers=-1 is not allowed"),
    (["plan", "--cpus-per-run", "0"], "cpus_per_run=0 is not allowed"),
    (["plan", "--gpus-per-run", "-1"], "gpus_per_run=-1.0 is not allowed"),
    (["plan", "--gpus-per-run", "nan"], "gpus_per_run=nan is not allowed"),
    (["plan", "00_datasets"], "no run list for notebook(s) ['00_datasets']"),
    (["plan", "01_main_results", "-p", "seeds", '["one"]'], "seeds=['one'] is not allowed"),
    (["plan", "01_main_results", "-p", "seedz", "[2]"], "seedz=[2] is not allowed"),
    (["plan", "--profile", "smoke", "01_main_results", "-p", "profile", '"full"'], "profile='full' is not allowed"),
]


@pytest.fixture
def hostile(tmp_kit, tmp_path, no_network, monkeypatch):
    """An isolated kit with a folder named like a data file and a file too small for any 5-core, where
    any training or notebook a case let through fails the test instead of running."""
    def refuse(*_, **__):
        raise AssertionError("a hostile case got past the checks and started work")
    monkeypatch.setattr(experiments, "fit", refuse)
    monkeypatch.setattr(executors, "run_local", refuse)
    monkeypatch.setattr("papermill.execute_notebook", refuse)
    (tmp_path / "folder.csv").mkdir()
    ratings(tmp_path / "tiny.csv", users=2, items=2)
    return tmp_path


@pytest.mark.parametrize("argv, message", CASES, ids=[" ".join(argv) for argv, _ in CASES])
def test_every_mistake_is_one_clear_error_naming_the_value(hostile, capsys, argv, message):
    assert run([a.replace("{tmp}", str(hostile)) for a in argv]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert "error: " in last and message.replace("{tmp}", str(hostile)) in last


@pytest.mark.parametrize("name, value, allowed", [
    ("RASEKIT_THREADS", "0", "expected an integer in 1..256"), ("RASEKIT_THREADS", "-1", "in 1..256"),
    ("RASEKIT_THREADS", "two", "expected an integer in 1..256"), ("RASEKIT_THREADS", "100000", "in 1..256"),
    ("RASEKIT_PROFILE", "huge", "expected one of smoke, default, full"),
    *[(name, "{file}", "expected a folder") for name in
      ("RASEKIT_DATA_DIR", "RASEKIT_CACHE", "RASEKIT_DOWNLOADS", "RASEKIT_REFERENCE", "RASEKIT_OUTPUT")],
])
def test_a_wrong_environment_variable_is_named_with_its_value(hostile, monkeypatch, capsys, name, value, allowed):
    value = value.replace("{file}", str(hostile / "tiny.csv"))
    monkeypatch.setenv(name, value)
    assert run(["results"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {name}={value!r} is not allowed") and allowed in err


@pytest.mark.parametrize("value", ["0", "-1", "two", "4,2", "100000"])
def test_a_wrong_omp_num_threads_is_ignored_with_a_warning_not_in_silence(monkeypatch, value):
    monkeypatch.delenv("RASEKIT_THREADS", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", value)
    with pytest.warns(UserWarning, match=f"OMP_NUM_THREADS='{value}' is not allowed.*ignored"):
        assert threads.fixed_by_user() is None
    monkeypatch.setenv("RASEKIT_THREADS", "3")  # the kit's own setting comes first
    assert threads.fixed_by_user() == 3


def test_batch_and_plan_take_rasekit_profile_when_no_profile_is_given(tmp_kit, monkeypatch, capsys):
    monkeypatch.setenv("RASEKIT_PROFILE", "smoke")
    assert main(["plan", "01_main_results"]) == 0
    assert capsys.readouterr().out.startswith("plan for profile smoke:")
    seen = []
    monkeypatch.setattr("papermill.execute_notebook", lambda source, target, parameters, **_: seen.append(parameters))
    assert main(["batch", "--workers", "0", "00_datasets"]) == 0
    assert seen == [{"profile": "smoke"}]


def test_a_parameter_goes_to_the_notebooks_that_declare_it_and_is_checked_in_the_notebook_too(tmp_kit):
    checked = notebook_parameters.check(["00_datasets", "03_long_tail"], {"n_groups": 3, "seeds": [2]}, "smoke")
    assert checked == {"n_groups": 3, "seeds": [2]}
    assert notebook_parameters.of("00_datasets", checked) == {}
    with pytest.raises(settings.SettingsError, match="seeds=1 is not allowed"):
        notebook_parameters.check_notebook("01_main_results", {"profile": None, "seeds": 1, "datasets": None})
    notebook_parameters.check_notebook("02_pretraining", notebook_parameters.declared("02_pretraining"))  # defaults


def test_a_notebook_begins_with_its_parameters_checked_and_the_profiles_defaults_filled(tmp_kit):
    from rasekit import notebook

    scope = {**notebook_parameters.declared("06_comparison"), "profile": "full", "seeds": [2]}
    prof, datasets, seeds, _ = notebook.begin("06_comparison", scope, datasets_from="comparison_datasets")
    assert prof.name == "full" and datasets == list(prof.comparison_datasets) and seeds == [2]
    assert notebook.begin("08_sensitivity", notebook_parameters.declared("08_sensitivity"),
                          datasets_from=None)[1] is None  # its runs choose the datasets
    with pytest.raises(settings.SettingsError, match="seeds=1 is not allowed"):
        notebook.begin("01_main_results", {"profile": None, "seeds": 1, "datasets": None})


def test_two_files_of_one_name_are_refused_naming_both(tmp_kit, tmp_path):
    first, second = ratings(tmp_path / "a" / "ratings.csv"), ratings(tmp_path / "b" / "ratings.csv", users=7)
    with pytest.raises(settings.SettingsError, match=f"'{first}' and '{second}' are both the dataset 'ratings'"):
        plan.build("smoke", ["01_main_results"], {"datasets": [str(first), str(second)]})


def test_stats_takes_a_data_file_as_every_command_does(tmp_kit, tmp_path, capsys):
    assert main(["stats", "--dataset", str(ratings(tmp_path / "mine.csv")), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["dataset"] == "mine" and stats["users"] == 6 and stats["items"] == 6


def test_a_directory_or_an_empty_5_core_is_named_as_such(tmp_path):
    (tmp_path / "folder.txt").mkdir()
    with pytest.raises(data.DataFormatError, match="folder.txt: is a directory, not a data file"):
        data.read_sequences(tmp_path / "folder.txt")
    tiny = ratings(tmp_path / "tiny.csv", users=3, items=3)
    with pytest.raises(data.DataFormatError, match=f"{tiny}: no interactions survive 5-core filtering"):
        data.load_file(tiny)


def test_a_partition_with_lower_above_upper_is_refused_naming_the_spec():
    spec = {"by": "length", "lower": 5, "upper": 2}
    with pytest.raises(settings.SettingsError, match=r"partition=\{'by': 'length', 'lower': 5, 'upper': 2\} is not "
                                                     r"allowed: expected lower <= upper"):
        partitions.check(spec)
    assert partitions.check({"by": "popularity", "lower": 0.8, "upper": 0.8}) is not None


@pytest.mark.parametrize("command", [["results"], ["results", "--json"], ["results", "--summary"], ["promote"]])
def test_a_reader_that_goes_away_ends_the_command_quietly(tmp_kit, command):
    if command[0] == "results":
        ledger.put(record())
    env = {**os.environ, **{f"RASEKIT_{name.upper()}": str(path) for name, path in tmp_kit.items()}}
    child = subprocess.Popen([sys.executable, "-m", "rasekit", *command], cwd=REPO, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    child.stdout.close()  # as `head` does once it has its lines: before the command prints
    err = child.stderr.read().decode()
    assert child.wait() == 141 and err == ""


def test_reuse_only_on_an_empty_ledger_lists_the_missing_runs_and_leaves_them_out(tmp_kit, capsys):
    """What notebooks 01 and 02 do with `reuse_only` when the ledger holds none of their runs."""
    import matplotlib
    matplotlib.use("Agg")
    from rasekit.analysis import beside_reference, comparison, main_results, pretraining

    assert not paths.ledger_dir().exists()
    pairs = spec.records_of(notebook_runs.main_results_all("smoke"), reuse_only=True)
    runs = spec.records_of(notebook_runs.stage1_runs("smoke"), reuse_only=True)
    assert pairs == runs == [] and capsys.readouterr().out.count("not in the ledger, left out: ") == 6
    table = main_results.main_table([], experiments.ranks)  # notebook 01
    assert main_results.main_views(table)["kit"].empty and table[["dataset", "metric", "DuoRec", "RaSeRec"]].empty
    main_results.improvement_figure(table)
    assert beside_reference.versus_reference([])["verdict"].empty
    stage1 = pretraining.stage1_table([])  # notebook 02
    assert stage1[["dataset", "model", "seeds", "HR@10", "NDCG@10"]].empty
    replay = pretraining.stopping_replay([])
    assert replay[replay["stopping metric"] != "MRR@10"].empty
    pretraining.curves_figure([])
    comparison.backbone_figure(comparison.backbone_table([], experiments.ranks))  # notebook 07
