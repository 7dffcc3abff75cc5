"""What a hostile but fair user tries: a diverged model, impossible settings, foreign checkpoints,
concurrent ledger writers, killed writes, bad files. Each gets a clear error or the right behaviour, and
nothing wrong is ever recorded as a result."""
import json
import multiprocessing
import subprocess

import numpy as np
import pytest
import torch

from rasekit.runs import experiments, ledger, runner
from rasekit.files import paths
from rasekit import settings
from rasekit.cli import main
from rasekit.data import DataFormatError, load_file
from rasekit.models.backbones import make_encoder
from rasekit.evaluate import NonFiniteScoresError, metrics, target_ranks
from rasekit.stages.loop import CheckpointError, DivergedError, TrainConfig, fit, save_atomic

from .test_experiments import tiny  # noqa: F401  (fixture: a 300-user, 1-epoch smoke profile)
from .test_ledger import record
from .test_train import META, ToyTask

quiet = lambda *_: None  # noqa: E731


# --- 1. a diverged model stops the run; nothing of it is kept --------------------------------------------

class NaNAfter(ToyTask):
    """The toy task whose loss turns NaN from training call `start` on (or whose scores are NaN)."""
    def __init__(self, start=None, nan_scores=False):
        super().__init__()
        self.start, self.nan_scores = start, nan_scores

    def train_loss(self, index, rng):
        loss = super().train_loss(index, rng)
        return loss * float("nan") if self.start and self.calls >= self.start else loss

    def scores(self, part, index):
        s = super().scores(part, index)
        return s * float("nan") if self.nan_scores else s


def test_a_huge_learning_rate_stops_in_the_first_epoch_with_nothing_saved(tmp_path):
    config = TrainConfig(epochs=3, batch_size=32, lr=1e30, valid_metric="HR@5")
    with pytest.raises(DivergedError, match=r"toy diverged in epoch 0: training loss is (nan|inf) at batch"):
        fit(ToyTask(), config, tmp_path / "run", META, seed=3, log=quiet, name="toy")
    assert not (tmp_path / "run" / "best.pt").exists() and not (tmp_path / "run" / "last.pt").exists()


def test_divergence_after_good_epochs_keeps_only_the_good_checkpoints(tmp_path):
    config = TrainConfig(epochs=5, batch_size=32, lr=0.05, valid_metric="HR@5")
    batches_per_epoch = -(-300 // 32)
    with pytest.raises(DivergedError, match="diverged in epoch 2"):
        fit(NaNAfter(start=2 * batches_per_epoch + 3), config, tmp_path / "run", META, seed=3, log=quiet)
    last = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert last["loop"]["epoch"] == 1 and last["loop"]["best_epoch"] <= 1
    assert all(torch.isfinite(w).all() for w in last["model"].values())


def test_nan_scores_are_refused_not_ranked_first(tmp_path):
    with pytest.raises(NonFiniteScoresError, match="instances .* have NaN or infinite scores"):
        target_ranks(lambda i: torch.full((len(i), 5), float("nan")), np.array([1, 2]))
    config = TrainConfig(epochs=2, batch_size=32, lr=0.05, valid_metric="HR@5")
    with pytest.raises(DivergedError, match="epoch 0: valid scores are not finite"):
        fit(NaNAfter(nan_scores=True), config, tmp_path / "run", META, seed=3, log=quiet)
    assert not (tmp_path / "run" / "best.pt").exists()


def test_a_diverged_stage_1_or_2_run_writes_no_ledger_record(tiny, capsys):  # noqa: F811
    assert main(["pretrain", "--profile", tiny, "--objective", "ce", "--train", '{"lr": 1e30}']) == 2
    err = capsys.readouterr().err
    assert "SASRec [lr=1e+30] (stage 1) on Beauty, seed 1 diverged in epoch 0" in err
    assert ledger.records() == []
    assert main(["finetune", "--profile", tiny, "--backbone", "sasrec", "--train", '{"lr": 1e30}']) == 2
    err = capsys.readouterr().err
    assert "(stage 2) on Beauty, seed 1 diverged in epoch 0" in err
    assert [r["stage"] for r in ledger.records()] == ["pretrain"]  # the healthy stage 1 only


# --- 2. every setting is checked before any work starts --------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    ({"ram": {"k": 0}}, "k=0 is not allowed: expected an integer in 1..10000"),
    ({"ram": {"k": 2.5}}, "k=2.5 is not allowed"),
    ({"ram": {"k": "10"}}, "k='10' is not allowed"),
    ({"ram": {"k": 1_000_000}}, "k=1000000 is not allowed"),
    ({"ram": {"k": 9000}}, r"k=9000 is not allowed: the memory bank of Beauty holds only \d+ memories"),
    ({"ram": {"tau": 0}}, r"tau=0 is not allowed: expected a finite number in \(0, inf\]"),
    ({"ram": {"tau": -1.0}}, "tau=-1.0 is not allowed"),
    ({"ram": {"alpha": -1}}, r"alpha=-1 is not allowed: expected a finite number in \[0, 1\]"),
    ({"ram": {"beta": 1.5}}, "beta=1.5 is not allowed"),
    ({"ram": {"dropout": 1}}, r"dropout=1 is not allowed: expected a finite number in \[0, 1\)"),
    ({"ram": {"index": "flat"}}, "index='flat' is not allowed: expected one of 'ivf', 'exact', 'hnsw'"),
    ({"ram": {"fetch": 5}}, "fetch=5 is not allowed: expected an integer >= 20"),
    ({"ram": {"residual": "yes"}}, "residual='yes' is not allowed: expected true or false"),
    ({"ram": {"kk": 3}}, r"unknown RAM setting\(s\) \['kk'\]"),
    ({"train": {"lr": "abc"}}, "lr='abc' is not allowed: expected a finite number"),
    ({"train": {"epochs": 2.5}}, "epochs=2.5 is not allowed: expected an integer in 1..100000"),
    ({"train": {"valid_metric": "foo"}}, "valid_metric='foo' is not allowed: expected one of 'HR@5'"),
    ({"pretrain_train": {"batch_size": -3}}, "batch_size=-3 is not allowed"),
    ({"pretrain_train": {"lr": float("nan")}}, "lr=nan is not allowed"),
    ({"seed": -1}, "seed=-1 is not allowed: expected an integer in 0..4294967295"),
    ({"seed": 1.5}, "seed=1.5 is not allowed"),
    ({"backbone": "bert4rec"}, "backbone='bert4rec' is not allowed: expected one of 'duorec'"),
    ({"partition": {"by": "sample", "fraction": 0}}, r"fraction=0 is not allowed: .* \(0, 1\]"),
    ({"partition": {"by": "age"}}, "partition 'by'='age' is not allowed"),
    ({"partition": {"by": "length", "upper": 5, "lowr": 1}}, r"unknown length partition setting\(s\)"),
])
def test_impossible_settings_are_refused_before_any_work(tiny, kwargs, message):  # noqa: F811
    with pytest.raises(settings.SettingsError, match=message):
        experiments.finetune(**{"dataset": "Beauty", "profile": tiny, "log": quiet, **kwargs})
    assert ledger.records() == [] and not paths.runs_dir().exists()  # nothing trained, nothing cached


def test_stage_1_settings_are_checked_too(tiny):  # noqa: F811
    for kwargs, message in [({"objective": "s3rec"}, "objective='s3rec' is not allowed"),
                            ({"encoder": "bert"}, "encoder='bert' is not allowed"),
                            ({"train": {"patience": -1}}, "patience=-1 is not allowed"),
                            ({"encoder_params": {"hiden_size": 32}}, r"unknown sasrec encoder setting")]:
        with pytest.raises(settings.SettingsError, match=message):
            experiments.pretrain(**{"dataset": "Beauty", "profile": tiny, "log": quiet, **kwargs})
    assert ledger.records() == []


def test_a_negative_seed_on_the_command_line_says_what_is_allowed(capsys):
    assert main(["pretrain", "--seed", "-1"]) == 2
    assert "seed=-1 is not allowed: expected an integer in 0..4294967295" in capsys.readouterr().err


def test_a_partition_smaller_than_k_is_refused_before_training(tiny):  # noqa: F811
    from rasekit.stages.finetuning import RaSeRecTask
    data = experiments.load_data({"dataset": "Beauty"}, experiments.profiles.get(tiny))
    keep_ten = lambda bank: bank.subset(np.arange(len(bank)) < 10)  # noqa: E731
    with pytest.raises(settings.SettingsError, match="holds only 10 memories after the partition"):
        RaSeRecTask(make_encoder("sasrec", data.n_items), data, settings.RamConfig(k=20, index="exact"), bank_filter=keep_ten)


# --- 4. a stage-1 checkpoint from another encoder: one loading path, one clear error -----------------------

@pytest.mark.parametrize("other, message", [
    (dict(name="sasrec", hidden_size=32), "has shape"),
    (dict(name="gru4rec"), "parameters differ"),
])
def test_a_stage_1_checkpoint_of_another_shape_is_refused(tmp_kit, other, message):
    config = experiments.pretrain_config("Beauty", "sasrec", "duorec", 1, experiments.profiles.get("smoke"))
    rec = {"key": "older", "config": config, "epochs_run": 1, "best_epoch": 0}
    encoder = make_encoder(other.pop("name"), 50, **other)
    meta = {"key": "older", "dataset": "Beauty", "n_items": 50}
    save_atomic({"meta": meta, "model": encoder.state_dict()}, experiments.run_dir("older") / "best.pt")
    save_atomic({"meta": meta, "model": {}, "loop": {"epoch": 0, "best_epoch": 0}},  # a finished run
                experiments.run_dir("older") / "last.pt")
    with pytest.raises(CheckpointError, match=message):
        experiments.load_pretrained(rec, "cpu")


def test_a_resume_checkpoint_without_optimizer_state_is_named(tmp_path):
    task = ToyTask()
    save_atomic({"meta": META, "model": task.model.state_dict()}, tmp_path / "run" / "last.pt")
    config = TrainConfig(epochs=2, batch_size=32, lr=0.05, valid_metric="HR@5")
    with pytest.raises(CheckpointError, match="not a resumable checkpoint .*lacks optimizer, torch_rng, "
                                              "numpy_rng, loop.*delete it"):
        fit(task, config, tmp_path / "run", META, seed=3, log=quiet)


# --- 5. concurrent ledger writers: the larger profile always wins -----------------------------------------

def _write_many(output, profile, keys, start):
    import os
    os.environ["RASEKIT_OUTPUT"] = output
    start.wait()
    for key in keys:
        try:
            ledger.put(record(key=key, profile=profile, hr=0.1 if profile == "full" else 0.9))
        except ledger.LedgerError:
            pass  # the smoke writer is refused where a full record is already there


def test_concurrent_writers_never_let_a_smaller_profile_replace_a_larger_one(tmp_path):
    keys = [f"k{i:03d}" for i in range(400)]
    context = multiprocessing.get_context("fork")
    start = context.Event()
    writers = [context.Process(target=_write_many, args=(str(tmp_path), p, keys, start))
               for p in ("full", "smoke")]
    for w in writers:
        w.start()
    start.set()
    for w in writers:
        w.join(60)
        assert w.exitcode == 0
    held = {json.loads(p.read_text())["profile"] for p in (tmp_path / "results" / "ledger").glob("*.json")}
    assert held == {"full"} and len(list((tmp_path / "results" / "ledger").glob("*.json"))) == 400


# --- 6. leftovers and unclear messages ---------------------------------------------------------------------

def test_a_failed_ledger_write_leaves_no_temporary_file(tmp_kit, monkeypatch):
    folder = paths.ledger_dir()
    folder.mkdir(parents=True)
    (folder / ".dead.json.x1.tmp").write_text("{")  # what a writer killed with -9 leaves
    monkeypatch.setattr(ledger.json, "dump", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        ledger.put(record())
    assert sorted(p.name for p in folder.iterdir()) == [ledger.LOCK]  # the stale one is gone too
    for leftover in ("results/ledger/.abc.json.x1.tmp", "results/ledger/.lock"):  # never committed
        assert subprocess.run(["git", "check-ignore", "-q", leftover], cwd=paths.REPO_ROOT).returncode == 0


def test_results_names_every_unreadable_ledger_file(tmp_kit, capsys):
    ledger.put(record())
    (paths.ledger_dir() / "bad1.json").write_text("{")
    (paths.ledger_dir() / "bad2.json").write_bytes(b"\xff\xfe")
    assert main(["results"]) == 2
    err = capsys.readouterr().err
    assert "2 unreadable ledger file(s)" in err and "bad1.json" in err and "bad2.json" in err


def test_batch_with_an_unknown_notebook_leaves_no_run_folder(tmp_path):
    with pytest.raises(ValueError, match="unknown notebook"):
        runner.run_batch("smoke", ["99_nothing"], out_root=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_binary_garbage_and_a_cut_last_line_are_named(tmp_path):
    garbage = tmp_path / "garbage.txt"
    garbage.write_bytes(b"1 2 3\n\x89PNG\r\n\x1a\n\x00\xff")
    with pytest.raises(DataFormatError, match=f"{garbage}:2: not UTF-8 text"):
        load_file(garbage)
    cut = tmp_path / "cut.txt"
    cut.write_text("1 1 2 3\n2 2 3 4 1\n3 4 5 1")
    with pytest.raises(DataFormatError, match=f"{cut}:3: the last line has no line end"):
        load_file(cut)


def test_ratings_csv_header_and_duplicates(tmp_path):
    rows = [f"u{u},i{i},5.0,{t}" for u in range(6) for t, i in enumerate(range(6))]
    plain = tmp_path / "plain.csv"
    plain.write_text("\n".join(rows) + "\n")
    headed = tmp_path / "headed.csv"
    headed.write_text("user,item,rating,timestamp\n" + "\n".join(rows) + "\n")
    assert load_file(headed).statistics()["interactions"] == load_file(plain).statistics()["interactions"]
    repeated = tmp_path / "repeated.csv"
    repeated.write_text("\n".join(rows + ["u0,i0,4.0,99", "u0,i0,3.0,100"]) + "\n")
    with pytest.warns(UserWarning, match="2 repeated .user, item. interactions kept"):
        kept = load_file(repeated)
    with pytest.warns(UserWarning, match="2 repeated .user, item. interactions dropped"):
        dropped = load_file(repeated, duplicates="drop")
    assert kept.statistics()["interactions"] == dropped.statistics()["interactions"] + 2


# --- 7. the evaluation chunk moves a rank only at a float near-tie ------------------------------------------

def test_chunk_size_moves_a_rank_only_by_one_and_only_at_a_near_tie(beauty):
    from rasekit.models.objectives import make_objective
    from rasekit.stages.pretraining import PretrainTask
    from rasekit.stages.loop import evaluate_part

    torch.manual_seed(0)
    task = PretrainTask(make_encoder("sasrec", beauty.n_items), make_objective("ce"), beauty, "cpu")
    test = np.arange(3000)
    task.targets = lambda part: beauty.test.targets[test]  # the first 3000 test instances
    reference = evaluate_part(task, "test", 1024)
    scores = torch.cat([task.scores("test", test[i:i + 1024]) for i in range(0, len(test), 1024)])
    for chunk in (2, 37, 700):
        ranks = evaluate_part(task, "test", chunk)
        assert metrics(ranks) == metrics(reference)
        moved = np.nonzero(ranks != reference)[0]
        assert len(moved) <= len(test) // 100 and np.abs(ranks - reference).max(initial=0) <= 1
        for i in moved:  # another item within float32 rounding of the target's score
            s = scores[i, 1:]
            target = scores[i, beauty.test.targets[i]]
            gap = (s - target).abs()
            gap[beauty.test.targets[i] - 1] = np.inf
            assert gap.min() <= 1e-5 * target.abs().clamp(min=1)


class _Exploit:
    def __reduce__(self):
        import os
        return (os.makedirs, ("PWNED_BY_PICKLE",))


def test_a_malicious_pickle_is_refused_and_runs_no_code(tmp_path, monkeypatch):
    from rasekit.stages.loop import load_checkpoint
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    torch.save({"meta": META, "model": _Exploit()}, path)
    with pytest.raises(CheckpointError, match="evil.pt: not a readable checkpoint"):
        load_checkpoint(path, META)
    assert not (tmp_path / "PWNED_BY_PICKLE").exists()
