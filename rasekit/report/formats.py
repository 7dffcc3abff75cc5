"""How a number reads in a table a person reads (Markdown, LaTeX, the report). The CSV beside each table
keeps full precision; these rules only shape what is shown, chosen by the column's name:

- a relative difference or a share in percent ("... %", "gap (pp)"): one decimal;
- a ratio in [0, 1] ("recall@K", "ratio", "share ..."): shown as a percentage with one decimal;
- a p-value ("p ...", "... p vs ..."): two significant digits;
- a spread ("... std"): as the column it spreads; over a single seed "–", since one seed has no spread;
- an identifier (user, item, instance, seed): the number as it is;
- a column whose values are all whole numbers (counts, epochs): an integer with thousands separators;
- a measurement in a unit (" s", " ms", "MB", "GB", ".../s", epochs, an exponent): four significant
  digits, and from 1,000 up a whole number with thousands separators;
- anything else: the table's own format (four decimals for ranking metrics)."""
from __future__ import annotations

import re
from typing import Callable

import numpy as np
import pandas as pd

NOT_APPLICABLE = "–"
RATIOS = ("recall@K", "ratio")
IDENTIFIERS = ("instance", "user", "memory", "target", "item", "seed")  # numbers that name, never counted
MEASURES = re.compile(r"(^| )(s|ms|MB|GB)( |/|$)|/s\b|epoch|exponent")  # a unit in a column's name
FINE_PERCENTS = ("sparsity",)  # every dataset here is above 99.9% sparse: two decimals tell them apart


def pct(value: float) -> str:
    """A relative difference in percent with one decimal and its sign."""
    return f"{value:+.1f}%"


def seeds(counts) -> str:
    """'1 seed', '3 seeds' or '1 to 3 seeds' (rows of one statement may rest on different numbers)."""
    counts = pd.Series(counts).astype(int)
    low, high = counts.min(), counts.max()
    return f"{low} seed" if high == 1 else f"{low} seeds" if low == high else f"{low} to {high} seeds"


def pvalue(value: float) -> str:
    """A p-value with two significant digits."""
    return np.format_float_positional(float(value), precision=2, fractional=False, trim="-")


def kind(column) -> str:
    """What the values of `column` are: p, identifier, spread, percent, ratio, measure or plain."""
    name = str(column)
    if name.startswith("p ") or name == "p" or " p vs " in name:
        return "p"
    if name in IDENTIFIERS:
        return "identifier"
    if name.endswith(" std"):
        return "spread"
    if "%" in name or "(pp)" in name or name in FINE_PERCENTS:
        return "percent"
    if name in RATIOS or name.startswith("share"):
        return "ratio"
    if MEASURES.search(name) and "@" not in name:
        return "measure"
    return "plain"


def _number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def _whole(values: pd.Series) -> bool:
    numbers = [float(v) for v in values if _number(v) and v == v]
    return bool(numbers) and all(v.is_integer() for v in numbers)


def _measured(table: pd.DataFrame, spread: str) -> str:
    """The column whose spread `spread` is: "gap std" -> "gap (pp)", "NDCG@10 std" -> "NDCG@10"."""
    base = spread[:-len(" std")]
    return next((str(c) for c in table.columns if str(c) == base or str(c).startswith(base + " (")), base)


def formatter(table: pd.DataFrame, column, float_format: str) -> Callable[[object], str]:
    """The function that shows one cell of `column` (NaN: "–", not applicable to this row)."""
    name, what = str(column), kind(column)
    if what == "percent":
        shown = "{:.2f}".format if name in FINE_PERCENTS else "{:.1f}".format
    elif what == "ratio":
        shown = lambda v: f"{100 * v:.1f}%"  # noqa: E731
    elif what == "p":
        shown = pvalue
    elif what == "spread" and kind(_measured(table, name)) == "percent":
        shown = "{:.1f}".format  # a spread reads like what it spreads
    elif what == "identifier":
        shown = lambda v: str(int(v)) if float(v).is_integer() else str(v)  # noqa: E731
    elif what == "measure" and not _whole(table[column]):
        shown = lambda v: f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"  # noqa: E731
    elif what in ("plain", "measure") and "@" not in name and _whole(table[column]):
        shown = "{:,.0f}".format  # counts, epochs, seeds (floats only where a row has none)
    else:
        shown = float_format.__mod__

    def cell(v) -> str:
        if not _number(v):
            return str(v)
        return NOT_APPLICABLE if v != v else shown(v)
    return cell


def shown(table: pd.DataFrame, float_format: str = "%.4f") -> pd.DataFrame:
    """`table` with every cell as the text a person reads; a spread over a single seed is "–"."""
    out = pd.DataFrame({c: table[c].map(formatter(table, c, float_format)) for c in table.columns},
                       index=table.index)
    if "seeds" in table.columns:
        single = pd.to_numeric(table["seeds"], errors="coerce") == 1
        for c in table.columns:
            if kind(c) == "spread":
                out.loc[single, c] = NOT_APPLICABLE
    return out
