"""The kit's notebooks as files: which ones are the kit's own (those whose checked values the tests hold in
tests/expected/), the text their checked cell prints, and their sources without outputs.

The sources carry no outputs: running a notebook in JupyterLab saves its outputs into the file, and git's
clean filter (`strip`, configured by scripts/setup.sh through `configure_git`) hands git the notebook
without them, so git never stores them and the user still sees them on reopening it; JupyterLab's
post-save hook (`refresh_git_index`) keeps `git status` from listing a notebook whose outputs alone changed.

    python -m rasekit.runs.notebook_files strip           git's clean filter: a notebook on stdin, stripped
    python -m rasekit.runs.notebook_files configure-git   set it up in the clone holding the current folder
"""
from __future__ import annotations

import configparser
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

from rasekit.files import paths

NOTEBOOKS = paths.REPO_ROOT / "notebooks"
EXPECTED = paths.REPO_ROOT / "tests" / "expected"
SANITIZE = EXPECTED / "sanitize.cfg"
CHECKED_TAG = "checked"  # the cell whose printed text the tests compare with tests/expected/<notebook>.txt
FILTER = "rasekit-notebook"  # the filter's name in .gitattributes
# Cell and notebook metadata that running or viewing a notebook writes, not its author.
RUN_METADATA = ("collapsed", "scrolled", "execution", "ExecuteTime", "jupyter", "papermill")


def kit_notebooks() -> list[Path]:
    """The kit's own notebooks: those with checked values in tests/expected/. A scratch notebook saved
    beside them (Untitled.ipynb, a copy of one) has none, and no test runs it."""
    return sorted(p for p in NOTEBOOKS.glob("*.ipynb") if expected_path(p).exists())


def notebook_paths(names=None) -> list[Path]:
    """The notebooks named (any NN_name.ipynb), or by default the kit's own: a copy or a scratch notebook
    saved beside them runs only when named."""
    found = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if not names:
        return kit_notebooks()
    by_name = {p.stem: p for p in found} | {p.name: p for p in found}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise ValueError(f"unknown notebook(s) {missing}; available: {[p.stem for p in found]}")
    return [by_name[n] for n in names]


def expected_path(notebook) -> Path:
    """tests/expected/<notebook>.txt: what the notebook's checked cell prints on the smoke profile."""
    return EXPECTED / f"{Path(notebook).stem}.txt"


def sanitize(text: str) -> str:
    """`text` with what differs between runs (durations, scratch paths) replaced, by the rules of
    tests/expected/sanitize.cfg."""
    rules = configparser.ConfigParser()
    rules.read(SANITIZE)
    for section in rules.sections():
        text = re.sub(rules[section]["regex"], rules[section]["replace"], text)
    return text


def checked_text(nb: dict) -> str:
    """What the notebook's one `checked` cell printed (stdout), sanitized."""
    cells = [c for c in nb["cells"] if CHECKED_TAG in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ValueError(f"expected one cell tagged {CHECKED_TAG!r}, found {len(cells)}")
    printed = [_text(out["text"]) for out in cells[0].get("outputs", [])
               if out.get("output_type") == "stream" and out.get("name") == "stdout"]
    return sanitize("".join(printed))


def strip(text: str) -> str:
    """A notebook's JSON without outputs, execution counts and the metadata a run writes, in the layout
    Jupyter saves (so a source saved by JupyterLab strips to itself). Text that is not a notebook (a file
    with merge conflict markers) comes back as it is."""
    try:
        nb = json.loads(text)
        cells = nb["cells"]
    except (ValueError, KeyError, TypeError):
        return text
    for cell in cells:
        if cell.get("cell_type") == "code":
            cell["outputs"], cell["execution_count"] = [], None
        for key in RUN_METADATA:
            cell.get("metadata", {}).pop(key, None)
        if isinstance(cell.get("source"), str):
            cell["source"] = cell["source"].splitlines(keepends=True)
    meta = nb.get("metadata", {})
    for key in ("papermill", "widgets"):
        meta.pop(key, None)
    if "name" in meta.get("language_info", {}):
        meta["language_info"] = {"name": meta["language_info"]["name"]}  # not the version that ran it
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False, separators=(",", ": ")) + "\n"


def configure_git(root: Path) -> bool:
    """Configure `strip` as the clean filter that .gitattributes names for the notebooks, in the clone
    holding `root`; False (and nothing done) where git is missing or `root` is not in a git work tree."""
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)

    try:
        if git("rev-parse", "--is-inside-work-tree").stdout.strip() != "true":
            return False
    except FileNotFoundError:
        return False
    command = f"{shlex.quote(sys.executable)} -m rasekit.runs.notebook_files strip"
    for key, value in ((f"filter.{FILTER}.clean", command), (f"filter.{FILTER}.smudge", "cat")):
        git("config", key, value).check_returncode()
    return True


def refresh_git_index(os_path: str, **kwargs) -> None:
    """JupyterLab's post-save hook (scripts/setup.sh configures it): a tracked notebook saved with nothing
    but its outputs changed has its new size and time noted in git's index, so that `git status` shows it
    unchanged (git takes a file whose size changed for a modified one without asking the clean filter).
    Only where git would store the very blob it holds, so nothing is ever staged; never raises."""
    path = Path(os_path)
    if path.suffix != ".ipynb":
        return
    git = ["git", "-C", str(path.parent)]
    try:
        held = subprocess.run([*git, "rev-parse", "-q", "--verify", f":./{path.name}"],
                              capture_output=True, text=True)
        would = subprocess.run([*git, "hash-object", "--", path.name], capture_output=True, text=True)  # filtered
        if held.returncode == 0 and would.returncode == 0 and held.stdout == would.stdout:
            subprocess.run([*git, "update-index", "-q", "--", path.name], capture_output=True)
    except OSError:  # no git
        pass


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else value


def main(argv: list[str]) -> int:
    if argv == ["strip"]:
        sys.stdout.buffer.write(strip(sys.stdin.buffer.read().decode("utf-8")).encode("utf-8"))
        return 0
    if argv == ["configure-git"]:
        configure_git(Path.cwd())
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
