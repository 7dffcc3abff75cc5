"""No half-written file, every stored file hashed: a full disk or a failed write leaves the old file and
no temporary one, with an error that names the file and the disk; ranks carry their sha256, checked at
every read and by `promote`; `promote` and `migrate` killed at any point complete when run again;
`verify` names every problem of a store."""
import errno
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from rasekit import report
from rasekit.cli import main
from rasekit.data.registry import sha256_of
from rasekit.evaluate import metrics
from rasekit.runs import experiments, keys, ledger, profiles, runner, store
from rasekit.files import atomic, paths
from rasekit.stages.loop import load_checkpoint, save_atomic

from .test_keys import RANKS, _schema_1
from .test_ledger import record as make_record

quiet = lambda *_: None  # noqa: E731


def _key(name: str) -> str:
    return keys.run_key(_config(name))


def _config(name: str) -> dict:
    return {"stage": "variant", "name": name}  # a configuration whose key is the run's own, as migrate wants


def _run(name: str, root, ranks, weights: float | None = None, profile: str = "full",
         config: dict | None = None) -> dict:
    """A finished run stored by hand under `root`: ranks (and weights), then its record."""
    config = config or _config(name)
    key = keys.run_key(config)
    record = {**make_record(key=key, profile=profile), "config": config, "metrics": metrics(ranks),
              "ranks": store.save_ranks(key, {"test": ranks}, root)}
    if weights is not None:
        record["weights"] = store.export_weights(key, {"key": key}, {"w": torch.full((3,), weights)}, root)
    ledger.put(record, root)
    return record


def _older_run(name: str, root, ranks) -> dict:
    """A run stored as the kit did before ranks were hashed: the record names no sha256 of them."""
    key = _key(name)
    paths.ranks_dir(root).mkdir(parents=True, exist_ok=True)
    np.savez_compressed(paths.ranks_dir(root) / f"{key}.npz", test=ranks)
    record = {**make_record(key=key), "config": _config(name), "metrics": metrics(ranks)}
    ledger.put(record, root)
    return record


def _files_hold(root) -> None:
    """Every record under `root` names files that are there and match their sha256."""
    for record in ledger.records(root):
        store.ranks_path(record, root)
        assert not record.get("weights") or store.weights_path(record, root) is not None, record["key"]


def _temporary(folder) -> list:
    return [p for p in folder.rglob("*") if p.name.endswith(atomic.SUFFIX)] if folder.exists() else []


# --- no half-written file -----------------------------------------------------------------------------------

def _full_disk(*_):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _figure():
    import matplotlib.pyplot as plt
    fig = plt.figure()
    plt.plot([1, 2])
    return fig


def _table():
    import pandas as pd
    return pd.DataFrame({"a": [1.0]})


WRITERS = {  # what the kit writes, each under the folder it is given (or the output root)
    "record": lambda folder: ledger.put(make_record(key="abc"), folder),
    "ranks": lambda folder: store.save_ranks("abc", {"test": RANKS}, folder),
    "weights": lambda folder: store.export_weights("abc", {"key": "abc"}, {"w": torch.ones(3)}, folder),
    "checkpoint": lambda folder: save_atomic({"model": {"w": torch.ones(3)}}, folder / "last.pt"),
    "table": lambda folder: report.save_table(_table(), "abc", "smoke", {}),
    "figure": lambda folder: report.save_figure(_figure(), "abc", "smoke", {}),
    "copy": lambda folder: atomic.copy(__file__, folder / "copy.py"),
}


@pytest.mark.parametrize("what", sorted(WRITERS))
def test_a_full_disk_names_the_file_and_the_disk_and_leaves_no_partial_file(tmp_kit, monkeypatch, what):
    folder = tmp_kit["output"]
    monkeypatch.setattr(os, "fsync", _full_disk)  # where a disk that filled up says so at the latest
    with pytest.raises(atomic.WriteError, match=r"not written, the disk is full .* the disk mounted at /\S*, "
                                                r"which holds .* MB free") as error:
        WRITERS[what](folder)
    assert str(error.value).startswith(str(folder)) and error.value.errno == errno.ENOSPC
    assert [p for p in folder.rglob("*") if p.is_file() and p.name != ledger.LOCK] == []  # nothing, half or whole


def test_a_failed_write_keeps_the_file_it_would_have_replaced(tmp_kit, monkeypatch):
    entry = store.save_ranks("abc", {"test": RANKS}, tmp_kit["output"])
    monkeypatch.setattr(os, "fsync", _full_disk)
    with pytest.raises(atomic.WriteError, match="abc.npz: not written"):
        store.save_ranks("abc", {"test": RANKS + 1}, tmp_kit["output"])
    assert sha256_of(tmp_kit["output"] / entry["file"]) == entry["sha256"]
    assert _temporary(tmp_kit["output"]) == []


def test_a_write_the_system_cuts_short_leaves_no_partial_file(tmp_path):
    """A real failed write (the file-size limit): torch's "enforce fail" and numpy's cut archive are gone."""
    script = textwrap.dedent(f"""
        import resource, signal, numpy as np, torch
        from pathlib import Path
        from rasekit.runs import store
        from rasekit.stages.loop import save_atomic
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))
        for write in (lambda: save_atomic({{"w": torch.ones(100_000)}}, Path({str(tmp_path)!r}) / "last.pt"),
                      lambda: store.save_ranks("abc", {{"test": np.arange(100_000)}}, Path({str(tmp_path)!r}))):
            try:
                write()
            except OSError as err:
                print(type(err).__name__, err)
        """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "RASEKIT_THREADS": "1"})
    lines = out.stdout.splitlines()
    assert len(lines) == 2 and "enforce fail" not in out.stdout, out.stdout + out.stderr
    for line, name in zip(lines, ("last.pt", "abc.npz")):
        assert line.startswith(f"WriteError {tmp_path}") and f"{name}: not written, File too large" in line
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_an_interrupted_batch_folder_says_so_and_holds_no_half_notebook(tmp_kit, monkeypatch):
    written = []

    def execute(source, target, parameters, **_):
        written.append(target)
        if source.endswith("01_main_results.ipynb"):
            raise KeyboardInterrupt  # the batch stopped in the middle of this notebook
        with open(target, "w") as fh:
            fh.write("{}")
    monkeypatch.setattr("papermill.execute_notebook", execute)
    out = tmp_kit["output"] / "x"
    with pytest.raises(KeyboardInterrupt):
        runner.run_batch("smoke", ["00_datasets", "01_main_results"], out_root=out)
    folder, = out.iterdir()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["complete"] is False and manifest["running"] == "01_main_results.ipynb"
    assert [n["name"] for n in manifest["notebooks"]] == ["00_datasets.ipynb"]
    assert sorted(p.name for p in folder.iterdir()) == ["00_datasets.ipynb", "manifest.json"]
    assert all(t.endswith(atomic.SUFFIX) for t in written)  # papermill writes a temporary name
    finished = runner.run_batch("smoke", ["00_datasets"], out_root=tmp_kit["output"] / "y")
    manifest = json.loads((finished / "manifest.json").read_text())
    assert manifest["complete"] is True and "running" not in manifest


# --- every stored file hashed ---------------------------------------------------------------------------------

def test_a_ranks_file_copied_over_another_runs_is_refused_by_every_reader_and_by_promote(tmp_kit):
    own = tmp_kit["output"]
    a, b = _run("a", own, RANKS), _run("b", own, RANKS + 1)
    path = own / f"results/ranks/{b['key']}.npz"
    assert b["ranks"] == {"file": f"results/ranks/{b['key']}.npz", "sha256": sha256_of(path),
                          "bytes": path.stat().st_size}
    assert np.array_equal(experiments.ranks(b), RANKS + 1)
    path.write_bytes((own / a["ranks"]["file"]).read_bytes())
    with pytest.raises(store.IntegrityError, match=rf"{b['key']}.npz: sha256 \w+ does not match its ledger record's"):
        experiments.ranks(b)
    with pytest.raises(store.IntegrityError, match=f"{b['key']}.npz: sha256"):
        store.promote([b["key"]])
    assert ledger.records(tmp_kit["reference"]) == []  # nothing was promoted
    assert store.promote([a["key"]], log=quiet) == [a["key"]] and ledger.get(a["key"], tmp_kit["reference"]) == a


def test_an_older_record_without_the_sha256_of_its_ranks_reads_and_is_checked_against_its_metrics(tmp_kit):
    own = tmp_kit["output"]
    a, b = _older_run("a", own, RANKS), _older_run("b", own, RANKS + 1)
    assert np.array_equal(experiments.ranks(a), RANKS)  # an old store does not break
    ranks = paths.ranks_dir(own)
    assert store.promote([a["key"]], log=quiet) == [a["key"]]  # the reference gets the hash
    assert ledger.get(a["key"], tmp_kit["reference"])["ranks"] == store.file_entry(ranks / f"{a['key']}.npz", own)
    (ranks / f"{b['key']}.npz").write_bytes((ranks / f"{a['key']}.npz").read_bytes())
    with pytest.raises(store.IntegrityError, match=rf"{b['key']}.npz: its test ranks give \S+ = [\d.]+, the ledger "
                                                   rf"record of run {b['key']} says [\d.]+; the file belongs to"):
        experiments.ranks(b)
    with pytest.raises(store.IntegrityError, match=f"{b['key']}.npz: its test ranks give"):
        keys.migrate(own, checkpoints=False, log=quiet)  # never hashes another run's file into a record


def test_migrate_gives_older_records_the_sha256_of_their_ranks_and_changes_nothing_else(tmp_kit):
    own = tmp_kit["output"]
    before = [_older_run("a", own, RANKS), _older_run("b", own, RANKS + 1), _run("c", own, RANKS)]
    messages = []
    assert keys.migrate(own, checkpoints=False, log=messages.append) == {}
    assert messages == [f"2 records under {own} now name the sha256 of their ranks"]
    after = {record["key"]: record for record in ledger.records(own)}
    for record in before:
        entry = store.file_entry(paths.ranks_dir(own) / f"{record['key']}.npz", own)
        assert after[record["key"]] == {**record, "ranks": entry}
    files = {p: p.read_bytes() for p in paths.ledger_dir(own).glob("*.json")}
    assert keys.migrate(own, checkpoints=False, log=quiet) == {}  # once is enough
    assert {p: p.read_bytes() for p in paths.ledger_dir(own).glob("*.json")} == files


def test_the_committed_reference_verifies():
    count, problems = store.verify(paths.REPO_ROOT)
    assert count == len(list(paths.ledger_dir(paths.REPO_ROOT).glob("*.json"))) > 0 and problems == []
    assert all("ranks" in record for record in ledger.records(paths.REPO_ROOT))


def test_verify_names_every_problem_of_a_store(tmp_kit, capsys):
    own = tmp_kit["output"]
    runs = {key: _run(key, own, RANKS + i, weights=float(i)) for i, key in enumerate("abcde")}
    assert main(["verify"]) == 0
    assert capsys.readouterr().out == f"5 records under {own}: every file present and matching its sha256\n"
    a, b, c, d, e = (runs[name] for name in "abcde")
    weights = own / a["weights"]["file"]
    weights.write_bytes(weights.read_bytes()[:100])  # cut short
    (own / b["ranks"]["file"]).write_bytes((own / c["ranks"]["file"]).read_bytes())
    (own / d["ranks"]["file"]).unlink()
    ledger.put({**e, "weights": {**e["weights"], "file": "results/weights/gone.pt"}}, own)
    (paths.ranks_dir(own) / "orphan.npz").write_bytes(b"")
    (paths.ledger_dir(own) / "empty.json").write_text("{}")
    (paths.weights_dir(own) / ".e.pt.x1.tmp").write_bytes(b"")  # a writer killed long ago
    ledger.put({**c, "config": {**c["config"], "backbone_key": "gone-stage-1"}}, own)  # neither here nor in the reference
    assert main(["verify"]) == 1
    out = capsys.readouterr().out.splitlines()
    expected = [f"{weights}: sha256", f"{own / b['ranks']['file']}: sha256",
                f"{own / d['ranks']['file']}: per-instance ranks of run {d['key']} are missing",
                f"{own}/results/weights/gone.pt: missing (weights of run {e['key']})",
                f"{own / e['weights']['file']}: no ledger record names it",
                f"{own}/results/ranks/orphan.npz: no ledger record names it",
                f"{own}/results/ledger/empty.json: not a ledger record: it lacks 'key', 'dataset'",
                f"{own}/results/weights/.e.pt.x1.tmp: temporary file left by an interrupted write",
                f"{own}/results/ledger/{c['key']}.json: run {c['key']} ({c['model']}) is built on run gone-stage-1"]
    for start in expected:
        assert sum(line.startswith(start) for line in out) == 1, (start, out)
    assert out[-1] == f"6 records under {own}: {len(expected)} problem(s)" and len(out) == len(expected) + 1


# --- promote and migrate, killed at any point ---------------------------------------------------------------

def _killed_after(operations: int, command) -> int:
    """The exit code of `command` in a forked process that kills itself (SIGKILL) after that many file
    operations (rasekit.files.atomic)."""
    def child():
        os.environ["RASEKIT_KILL_AFTER"] = str(operations)
        atomic._operations = 0
        command()
    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(60)
    return process.exitcode


def _killed_at_every_point(make_store, command, check) -> int:
    """For n = 1, 2, ...: a fresh store, `command` killed after its n-th file operation, the files of every
    record checked, `command` run again, `check` the result; until a run is not killed. Returns the
    number of points at which it was killed."""
    for n in range(1, 100):
        root = make_store()
        code = _killed_after(n, command)
        if code == 0:
            return n - 1
        assert code == -9
        _files_hold(root)
        command()
        check()
    raise AssertionError("never finished")


def test_promote_killed_at_any_point_completes_when_run_again(tmp_kit, monkeypatch):
    own, reference = tmp_kit["output"], tmp_kit["reference"]
    monkeypatch.setattr(store, "REFERENCE_WEIGHTS", ("full",))

    def make_store():
        for root in (own, reference):
            shutil.rmtree(root / "results", ignore_errors=True)
        _run("a", own, RANKS, weights=1.0)  # new: ranks and weights go
        _run("b", own, RANKS + 1, weights=2.0, profile="default")  # replaces b's ranks; its weights stay out
        _run("b", reference, RANKS + 2, profile="default")
        return reference
    promote = lambda: store.promote(log=quiet)  # noqa: E731
    make_store()
    promote()
    expected = {r["key"]: r for r in ledger.records(reference)}
    assert "weights" not in expected[_key("b")] and expected[_key("a")]["weights"]["sha256"]

    def check():
        assert {r["key"]: r for r in ledger.records(reference)} == expected
        assert store.verify(reference) == (2, [])
    assert _killed_at_every_point(make_store, promote, check) >= 8


def _schema_1_store(root, cache):
    """Two runs stored as schema 1 did (stage 1 with weights and checkpoints, stage 2 on it)."""
    for folder in (root, cache):
        shutil.rmtree(folder, ignore_errors=True)
    paths.ranks_dir(root).mkdir(parents=True)
    stage1_config = experiments.pretrain_config("Beauty", "sasrec", "duorec", 1, profiles.get("full"))
    stage1 = _schema_1(root, cache, {**make_record(), "stage": "pretrain", "config": stage1_config},
                       with_weights=True)
    stage2_config = experiments.finetune_config({"key": stage1["key"], "dataset": "Beauty"}, "duorec", 1,
                                                profiles.get("full"))
    _schema_1(root, cache, {**make_record(), "stage": "finetune", "config": stage2_config,
                            "model": "RaSeRec(DuoRec)"}, with_weights=False)
    return root


def test_migrate_killed_at_any_point_completes_when_run_again(tmp_path):
    root, cache = tmp_path / "store", tmp_path / "cache"
    migrate = lambda: keys.migrate(root, cache, log=quiet)  # noqa: E731
    _schema_1_store(root, cache)
    migrate()
    expected = {r["key"]: r for r in ledger.records(root)}

    def check():
        assert {r["key"]: r for r in ledger.records(root)} == expected
        assert store.verify(root) == (2, [])
        assert sorted(p.name for p in cache.iterdir()) == sorted(expected)
        for key in expected:
            assert load_checkpoint(cache / key / "last.pt", {"key": key})["loop"] == {"epoch": 3}
    assert _killed_at_every_point(lambda: _schema_1_store(root, cache), migrate, check) >= 10


def test_migrate_never_renames_a_run_over_another_runs_record(tmp_path):
    root, cache = tmp_path / "store", tmp_path / "cache"
    _schema_1_store(root, cache)
    stage1 = next(r for r in ledger.records(root) if r["stage"] == "pretrain")
    new = keys.run_key(stage1["config"])
    held = _run("held", root, RANKS + 5, config=stage1["config"])  # already under the key the old one takes
    assert held["key"] == new
    messages = []
    renamed = keys.migrate(root, cache, log=messages.append)
    assert stage1["key"] not in renamed
    assert f"{stage1['key']} not renamed: its new key {new} is held by another record" in messages[0]
    assert ledger.get(new, root) == held and ledger.get(stage1["key"], root) == stage1
    assert np.array_equal(experiments.ranks(held, root=root), RANKS + 5)
    _files_hold(root)


def test_a_run_trained_again_under_a_key_that_migrate_renamed_keeps_the_runs_built_on_it(tmp_path):
    root = tmp_path / "store"
    official = _run("official", root, RANKS)  # trained after migrate gave its exact-rule run a new key
    exact = _run("exact", root, RANKS + 1)
    ledger.put({**exact, "previous_keys": [official["key"]]}, root)
    child = _run("child", root, RANKS, config={"stage": "variant", "parent": official["key"], "variant": {}})
    assert keys.migrate(root, checkpoints=False, log=quiet) == {}
    assert ledger.get(child["key"], root) == child
