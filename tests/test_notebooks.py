"""Every notebook of the kit, executed as a user would (papermill, smoke profile, the kernel's own
backend), prints in its checked cell what tests/expected/<notebook>.txt holds, shows each of its figures
inline, and saves no widget that a reopened notebook could not display. The checked values live outside
the notebooks, so a notebook saved with the outputs of any run changes no test."""
import nbformat
import pytest

from rasekit.runs import notebook_files
from rasekit.files import paths

NOTEBOOKS = notebook_files.kit_notebooks()


@pytest.mark.parametrize("source", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_notebook_prints_its_expected_numbers_and_shows_its_figures_inline(source, tmp_path, data_dir,
                                                                                  monkeypatch):
    import papermill

    monkeypatch.delenv("MPLBACKEND", raising=False)  # as in JupyterLab: the kernel picks inline
    target = tmp_path / source.name
    papermill.execute_notebook(str(source), str(target), parameters={"profile": "smoke"},
                               cwd=str(paths.REPO_ROOT / "notebooks"), progress_bar=False)
    executed = nbformat.read(target, as_version=4)
    expected = notebook_files.expected_path(source)
    assert notebook_files.checked_text(executed) == expected.read_text(encoding="utf-8"), (
        f"{source.name}: the checked cell printed something else than {expected.relative_to(paths.REPO_ROOT)}; "
        f"after a deliberate change: scripts/refresh_expected.py {source.stem}")
    cells = [c for c in executed.cells if c.cell_type == "code"]
    drawing = [c for c in cells if "save_figure" in c.source]
    assert drawing, f"{source.name} draws no figure"
    for cell in drawing:
        kinds = {kind for out in cell.outputs for kind in out.get("data", {})}
        assert "image/png" in kinds, f"{source.name}: no inline image under\n{cell.source}"
    for cell in cells:
        kinds = {kind for out in cell.outputs for kind in out.get("data", {})}
        assert "application/vnd.jupyter.widget-view+json" not in kinds, f"{source.name}: a widget output"
