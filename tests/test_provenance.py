"""The commit in provenance: '-dirty' for changed code, not for regenerated outputs."""
import shutil
import subprocess

import pytest

from rasekit import paths, provenance


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
