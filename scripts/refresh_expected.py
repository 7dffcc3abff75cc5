"""Refresh the expected outputs that nbval compares: run each notebook on the smoke profile with
papermill and copy the outputs of its `nbval-check-output` cells into the source notebook; every other
output stays cleared, so the sources hold no stale results.

    RASEKIT_DATA_DIR=../shared/data .venv/bin/python scripts/refresh_expected.py [notebook names]
"""
import os
import sys
import tempfile
from pathlib import Path

import nbformat
import papermill

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def refresh(source: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.update(RASEKIT_OUTPUT=tmp, RASEKIT_CACHE=str(Path(tmp) / "cache"), TQDM_DISABLE="1")
        executed = papermill.execute_notebook(str(source), str(Path(tmp) / source.name),
                                              parameters={"profile": "smoke"}, cwd=str(NOTEBOOKS),
                                              progress_bar=False)
    nb = nbformat.read(source, as_version=4)
    ran = [c for c in executed.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    for cell, done in zip(nb.cells, ran):
        if cell.cell_type != "code":
            continue
        checked = "nbval-check-output" in cell.metadata.get("tags", [])
        cell.outputs = done.outputs if checked else []
        cell.execution_count = done.execution_count if checked else None  # nbval skips unrun cells
    nbformat.write(nb, source)
    print(f"refreshed {source.name}")


if __name__ == "__main__":
    names = sys.argv[1:]
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        if not names or path.stem in names:
            refresh(path)
