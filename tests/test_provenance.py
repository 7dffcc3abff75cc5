"""The commit in provenance: '-dirty' for changed code, not for regenerated outputs."""
import shutil
import subprocess

import pytest

from rasekit.runs import ledger, provenance
from rasekit.files import paths


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_regenerated_outputs_do_not_make_the_commit_dirty(tmp_path, monkeypatch):
    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path,
                       check=True, capture_output=True)
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "f.png").write_text("old")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "start")
    monkeypatch.setattr(paths, "REPO_ROOT", tmp_path)
    clean = provenance.git_commit()
    assert len(clean) == 40
    (tmp_path / "figures" / "f.png").write_text("new")
    assert provenance.git_commit() == clean
    (tmp_path / "code.py").write_text("x = 2\n")
    assert provenance.git_commit() == clean + "-dirty"


def test_a_result_built_from_ledger_runs_names_where_they_were_trained(tmp_path, monkeypatch):
    monkeypatch.setenv("RASEKIT_OUTPUT", str(tmp_path))
    ledger.put({"key": "k1", "dataset": "Beauty", "model": "DuoRec", "seed": 2, "profile": "full",
                "metrics": {}, "provenance": {"git_commit": "abc", "device": "gpu", "train_seconds": 9.5,
                                              "finished_at": "2026-01-01T00:00:00+00:00"}})
    prov = provenance.record([], runs=["k1", "missing"])
    assert prov["run_provenance"] == {"k1": {"model": "DuoRec", "seed": 2, "profile": "full",
                                             "git_commit": "abc", "device": "gpu", "train_seconds": 9.5,
                                             "finished_at": "2026-01-01T00:00:00+00:00"}}
