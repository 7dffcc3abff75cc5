"""The first lines of every notebook, written once: check the parameters papermill (or the user) set, fill
in the profile's datasets and seeds where they are None, set the figure style and start the clock whose
reading each table's provenance records as its wall time."""
from __future__ import annotations

import time

from rasekit import report
from rasekit.runs import notebook_parameters, profiles


def begin(notebook: str, scope: dict, datasets_from: str | None = "datasets"):
    """(the profile, the datasets, the seeds, the start time) of a notebook whose parameters are in `scope`
    (its `globals()`). Datasets left None take the profile's attribute `datasets_from` (None: stay None, for
    notebooks whose runs choose them); seeds left None take the profile's seeds."""
    notebook_parameters.check_notebook(notebook, scope)  # every parameter, by name, type and range
    profile = profiles.get(scope.get("profile"))
    datasets = scope.get("datasets")
    if datasets is None and datasets_from is not None:
        datasets = getattr(profile, datasets_from)
    seeds = scope.get("seeds") or profile.seeds
    report.style()
    return profile, datasets if datasets is None else list(datasets), list(seeds), time.perf_counter()
