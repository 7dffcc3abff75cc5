"""Every notebook, executed as a user would (papermill, smoke profile, the kernel's own backend), shows
each of its figures inline, and saves no widget that a reopened notebook could not display."""
import nbformat
import pytest

from rasekit.runs import paths, runner

NOTEBOOKS = runner.notebook_paths()


@pytest.mark.parametrize("source", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_figure_shows_inline(source, tmp_path, data_dir, monkeypatch):
    import papermill

    monkeypatch.delenv("MPLBACKEND", raising=False)  # as in JupyterLab: the kernel picks inline
    target = tmp_path / source.name
    papermill.execute_notebook(str(source), str(target), parameters={"profile": "smoke"},
                               cwd=str(paths.REPO_ROOT / "notebooks"), progress_bar=False)
    cells = [c for c in nbformat.read(target, as_version=4).cells if c.cell_type == "code"]
    drawing = [c for c in cells if "save_figure" in c.source]
    assert drawing, f"{source.name} draws no figure"
    for cell in drawing:
        kinds = {kind for out in cell.outputs for kind in out.get("data", {})}
        assert "image/png" in kinds, f"{source.name}: no inline image under\n{cell.source}"
    for cell in cells:
        kinds = {kind for out in cell.outputs for kind in out.get("data", {})}
        assert "application/vnd.jupyter.widget-view+json" not in kinds, f"{source.name}: a widget output"
