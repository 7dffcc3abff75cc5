"""One figure style and one way to save figures (PNG + PDF) and tables (CSV + Markdown + LaTeX), each
with a provenance file beside it that says which run produced it."""
from __future__ import annotations

import json
from pathlib import Path

# No backend is forced here: in a notebook the kernel's inline backend shows every figure under its cell
# (under papermill and nbval too), and a process without a display falls back to agg by itself.
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from rasekit.files import atomic, paths
from rasekit.report import formats


def style() -> None:
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.1)
    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 200, "savefig.bbox": "tight"})


def _write_provenance(path: Path, provenance: dict) -> None:
    atomic.write_text(path, json.dumps(provenance, indent=1, sort_keys=True, default=str))


def _saved(folder: Path, name: str, suffixes: str) -> None:
    """One line that says where a result went (a notebook shows it under the cell)."""
    try:
        shown = folder.relative_to(paths.REPO_ROOT)
    except ValueError:
        shown = folder
    print(f"saved {shown}/{name}.{{{suffixes}}} with its provenance")


def save_figure(fig, name: str, profile: str, provenance: dict) -> None:
    folder = paths.figures_dir(profile)
    folder.mkdir(parents=True, exist_ok=True)
    for path in (folder / f"{name}.png", folder / f"{name}.pdf"):
        with atomic.replacing(path) as fh:
            fig.savefig(fh, format=path.suffix[1:])
    _write_provenance(folder / f"{name}.provenance.json", {"profile": profile, **provenance})
    _saved(folder, name, "png,pdf")


def save_table(table: pd.DataFrame, name: str, profile: str, provenance: dict,
               float_format: str = "%.4f", latex: pd.DataFrame | None = None) -> None:
    """CSV (full precision), Markdown and LaTeX (the numbers as a person reads them: `formats`) of `table`;
    `latex`: a version whose cells are already LaTeX (marks such as \\textbf), written as it is."""
    folder = paths.tables_dir(profile)
    folder.mkdir(parents=True, exist_ok=True)
    out = [folder / f"{name}.csv", folder / f"{name}.md", folder / f"{name}.tex"]
    atomic.write_text(out[0], table.to_csv(index=False))
    atomic.write_text(out[1], markdown(table, float_format))
    atomic.write_text(out[2], formats.shown(table, float_format).to_latex(index=False, escape=True)
                      if latex is None else latex.to_latex(index=False, escape=False))
    _write_provenance(folder / f"{name}.provenance.json", {"profile": profile, **provenance})
    _saved(folder, name, "csv,md,tex")


def markdown(table: pd.DataFrame, float_format: str = "%.4f") -> str:
    """A GitHub Markdown table (pandas needs the extra `tabulate` package for this)."""
    cells = formats.shown(table, float_format)
    rows = [list(map(str, table.columns)), ["---"] * len(table.columns)]
    rows += [list(row) for row in cells.itertuples(index=False)]
    return "\n".join("| " + " | ".join(r) + " |" for r in rows) + "\n"
