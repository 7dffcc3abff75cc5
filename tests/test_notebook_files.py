"""Running a notebook never breaks the tests nor dirties the clone: a notebook saved with the outputs of
any run (JupyterLab's autosave) passes nbval, and git sees it unchanged; a scratch notebook saved beside the
kit's is not run; the kernel's `!python -m rasekit` is the kit's own."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from rasekit.runs import notebook_files
from rasekit.files import paths

GIT = shutil.which("git")
ANOTHER_RUN = "NDCG@10 of the default profile: 0.0421\n"


def autosaved(text: str) -> str:
    """The notebook `text` as JupyterLab saves it after 'Run All' on another profile: every code cell with
    outputs and an execution count, the Python version in its metadata."""
    nb = nbformat.reads(text, as_version=4)
    for count, cell in enumerate((c for c in nb.cells if c.cell_type == "code"), 1):
        cell.execution_count = count
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=ANOTHER_RUN),
                        nbformat.v4.new_output("display_data", data={"text/plain": "<Figure size 640x480>"})]
    nb.metadata["language_info"] = {"name": "python", "version": "3.11.9", "mimetype": "text/x-python",
                                    "file_extension": ".py", "codemirror_mode": {"name": "ipython", "version": 3}}
    return nbformat.writes(nb) + "\n"


def test_strip_gives_the_source_back_from_a_saved_notebook_and_leaves_other_text_alone():
    source = notebook_files.strip((notebook_files.NOTEBOOKS / "03_long_tail.ipynb").read_text(encoding="utf-8"))
    assert notebook_files.strip(autosaved(source)) == source
    assert notebook_files.strip(source) == source
    conflict = "<<<<<<< HEAD\n{}\n=======\n{}\n>>>>>>> theirs\n"
    assert notebook_files.strip(conflict) == conflict


def test_a_notebook_saved_with_another_runs_outputs_passes_nbval_and_a_scratch_notebook_is_not_run(
        tmp_path, data_dir):
    # The kit's conftest beside a notebooks folder: 00_datasets as autosaved after a run of another
    # profile, and two scratch notebooks that fail if run (a new one, and JupyterLab's copy of 00).
    shutil.copy(paths.REPO_ROOT / "conftest.py", tmp_path)
    folder = tmp_path / "notebooks"
    folder.mkdir()
    saved = autosaved((notebook_files.NOTEBOOKS / "00_datasets.ipynb").read_text(encoding="utf-8"))
    (folder / "00_datasets.ipynb").write_text(saved, encoding="utf-8")
    scratch = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('raise RuntimeError("scratch ran")')])
    scratch.metadata = nbformat.reads(saved, as_version=4).metadata
    for name in ("Untitled.ipynb", "00_datasets-Copy1.ipynb"):
        nbformat.write(scratch, folder / name)
    env = {**os.environ, "RASEKIT_PROFILE": "smoke", "RASEKIT_DATA_DIR": str(data_dir), "TQDM_DISABLE": "1",
           "RASEKIT_OUTPUT": str(tmp_path / "out"),
           "RASEKIT_CACHE": os.environ.get("RASEKIT_CACHE", str(tmp_path / "cache"))}  # test.sh's: data cached
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "--nbval-lax", "-p", "no:cacheprovider",
                           "notebooks"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    code_cells = sum(c.cell_type == "code" for c in nbformat.reads(saved, as_version=4).cells)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"{code_cells} passed" in done.stdout, done.stdout[-3000:]


def test_nbval_compares_no_stored_output_of_any_notebook_and_each_has_one_checked_cell():
    for source in notebook_files.kit_notebooks():
        nb = nbformat.read(source, as_version=4)
        compared = [c for c in nb.cells if "nbval-check-output" in c.metadata.get("tags", [])
                    or "NBVAL_CHECK_OUTPUT" in c.source]
        assert not compared, f"{source.name}: nbval would compare stored outputs; tag the cell 'checked' instead"
        notebook_files.checked_text(nb)  # exactly one checked cell


def git(repo: Path, *args: str) -> str:
    return subprocess.run([GIT, "-C", str(repo), "-c", "user.name=kit", "-c", "user.email=kit@example.org",
                           "-c", "commit.gpgsign=false", *args], check=True, capture_output=True, text=True).stdout


@pytest.mark.skipif(GIT is None, reason="git is not installed")
def test_git_sees_a_notebook_saved_with_outputs_as_unchanged_and_the_user_keeps_them(tmp_path):
    repo = tmp_path / "clone"
    (repo / "notebooks").mkdir(parents=True)
    shutil.copy(paths.REPO_ROOT / ".gitattributes", repo)
    notebook = repo / "notebooks" / "03_long_tail.ipynb"
    source = notebook_files.strip((notebook_files.NOTEBOOKS / notebook.name).read_text(encoding="utf-8"))
    notebook.write_text(source, encoding="utf-8")
    git(repo, "init", "-q")
    assert notebook_files.configure_git(repo)  # as scripts/setup.sh does
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "the kit")

    notebook.write_text(autosaved(source), encoding="utf-8")  # JupyterLab saves, then runs its post-save hook
    assert git(repo / "notebooks", "diff") == ""  # the filter alone: no difference, but a new size
    notebook_files.refresh_git_index(os_path=str(notebook), model={"type": "notebook"}, contents_manager=None)
    assert git(repo, "status", "--porcelain") == ""
    assert ANOTHER_RUN.strip() in notebook.read_text(encoding="utf-8")  # the outputs stay in the file
    git(repo, "commit", "-qam", "nothing to commit", "--allow-empty")  # and are never committed
    assert ANOTHER_RUN.strip() not in git(repo, "show", "HEAD:notebooks/03_long_tail.ipynb")

    notebook.write_text(notebook.read_text(encoding="utf-8").replace("n_groups = 5", "n_groups = 4"),
                        encoding="utf-8")
    notebook_files.refresh_git_index(os_path=str(notebook), model={"type": "notebook"}, contents_manager=None)
    assert git(repo, "status", "--porcelain").split() == ["M", "notebooks/03_long_tail.ipynb"]  # an edit shows,
    assert git(repo, "diff", "--cached") == ""  # and the hook staged nothing


def test_jupyterlab_runs_the_post_save_hook():
    from jupyter_server.utils import import_item

    config = json.loads((Path(sys.prefix) / "etc" / "jupyter" / "jupyter_server_config.json").read_text())
    assert import_item(config["ContentsManager"]["post_save_hook"]) is notebook_files.refresh_git_index


def test_configuring_git_does_nothing_outside_a_clone_or_without_git(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    assert not notebook_files.configure_git(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))  # no git on it
    assert not notebook_files.configure_git(tmp_path)


@pytest.mark.skipif(GIT is None, reason="git is not installed")
def test_the_committed_notebooks_carry_no_outputs_and_each_has_its_checked_values():
    try:
        tracked = git(paths.REPO_ROOT, "ls-files", "notebooks/*.ipynb").split()
    except subprocess.CalledProcessError:
        pytest.skip("not a git clone")
    assert tracked
    for path in tracked:
        committed = git(paths.REPO_ROOT, "show", f":{path}")
        assert notebook_files.strip(committed) == committed, f"{path} is committed with outputs"
        assert notebook_files.expected_path(path).exists(), f"{path}: no checked values (scripts/refresh_expected.py)"


def test_the_kernel_runs_the_kits_command_line():
    from jupyter_client.manager import start_new_kernel

    venv_bin = str(Path(sys.prefix) / "bin")
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p != venv_bin)
    manager, client = start_new_kernel(kernel_name="rasekit", cwd=str(notebook_files.NOTEBOOKS),
                                       env={**os.environ, "PATH": path})
    printed = []
    try:
        client.execute_interactive("!python -m rasekit --help", timeout=120,
                                   output_hook=lambda msg: printed.append(msg["content"].get("text", "")))
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    assert "usage: python -m rasekit" in "".join(printed), "".join(printed)
