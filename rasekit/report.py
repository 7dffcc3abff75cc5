"""One figure style and one way to save figures (PNG + PDF) and tables (CSV + Markdown + LaTeX), each
with a provenance file beside it that says which run produced it."""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("agg")  # headless under papermill and nbval; the notebooks still show figures inline
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from . import paths  # noqa: E402


def style() -> None:
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.1)
    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 200, "savefig.bbox": "tight"})


def _write_provenance(path: Path, provenance: dict) -> None:
    path.write_text(json.dumps(provenance, indent=1, sort_keys=True, default=str))


def save_figure(fig, name: str, profile: str, provenance: dict) -> list[Path]:
    folder = paths.figures_dir(profile)
    folder.mkdir(parents=True, exist_ok=True)
    out = [folder / f"{name}.png", folder / f"{name}.pdf"]
    for path in out:
        fig.savefig(path)
    _write_provenance(folder / f"{name}.provenance.json", {"profile": profile, **provenance})
    return out


def save_table(table: pd.DataFrame, name: str, profile: str, provenance: dict,
               float_format: str = "%.4f") -> list[Path]:
    folder = paths.tables_dir(profile)
    folder.mkdir(parents=True, exist_ok=True)
    out = [folder / f"{name}.csv", folder / f"{name}.md", folder / f"{name}.tex"]
    table.to_csv(out[0], index=False, float_format=float_format)
    out[1].write_text(_markdown(table, float_format))
    out[2].write_text(table.to_latex(index=False, float_format=float_format.__mod__, escape=True))
    _write_provenance(folder / f"{name}.provenance.json", {"profile": profile, **provenance})
    return out


def _markdown(table: pd.DataFrame, float_format: str) -> str:
    """A GitHub Markdown table (pandas needs the extra `tabulate` package for this)."""
    def cell(v):
        return float_format % v if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v)
    rows = [list(map(str, table.columns)), ["---"] * len(table.columns)]
    rows += [[cell(v) for v in row] for row in table.itertuples(index=False)]
    return "\n".join("| " + " | ".join(r) + " |" for r in rows) + "\n"
