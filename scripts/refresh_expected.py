"""Refresh the checked values of the notebooks: run each notebook on the smoke profile with papermill and
write what its `checked` cell prints into tests/expected/<notebook>.txt, which tests/test_notebooks.py
compares with. The notebooks themselves keep no outputs. Without names, every notebook that has such a
file; a new notebook named here gets one, and so becomes one of the notebooks the tests run.

    RASEKIT_DATA_DIR=../shared/data .venv/bin/python scripts/refresh_expected.py [notebook names]
"""
import os
import sys
import tempfile
from pathlib import Path

import nbformat
import papermill

from rasekit.runs import notebook_files


def refresh(source: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.update(RASEKIT_OUTPUT=tmp, RASEKIT_CACHE=str(Path(tmp) / "cache"), TQDM_DISABLE="1")
        papermill.execute_notebook(str(source), str(Path(tmp) / source.name), parameters={"profile": "smoke"},
                                   cwd=str(source.parent), progress_bar=False)
        text = notebook_files.checked_text(nbformat.read(Path(tmp) / source.name, as_version=4))
    expected = notebook_files.expected_path(source)
    expected.write_text(text, encoding="utf-8")
    print(f"refreshed {expected}")


if __name__ == "__main__":
    names = sys.argv[1:]
    named = [notebook_files.NOTEBOOKS / f"{Path(n).stem}.ipynb" for n in names]
    for path in named or notebook_files.kit_notebooks():
        refresh(path)
