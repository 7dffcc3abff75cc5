"""The papermill batch runner: executes every notebook with a named profile into a fresh run folder
(runs/<time>-<profile>/), never over the sources, and writes a manifest of what ran and how long."""
from __future__ import annotations

import datetime as dt
import json
import os
import time
import warnings
from pathlib import Path

from rasekit import settings
from rasekit.runs import notebook_files, notebook_parameters, profiles
from rasekit.files import atomic, paths
from rasekit.runs.provenance import git_commit, versions

def run_batch(profile: str = "default", notebooks=None, out_root: Path | None = None,
              parameters: dict | None = None, reference: bool = False, workers: int | None = None) -> Path:
    """Execute the notebooks (those named, else the profile's: `Profile.notebooks`) with `profile` and any
    extra notebook parameters (e.g. {"seeds": [1, 2]}); returns the folder of the executed copies. Runs
    land in the user's own store and every table sets them beside the reference. With `workers`, the
    notebooks' training runs are first trained by the plan, that many side by side (a notebook trains one
    run at a time); a failed run stops the batch before any notebook. With `reference`, nothing is
    trained: the committed tables and figures are rebuilt from the reference's runs alone. The folder's
    manifest says "complete": false, and which notebook is running, until every notebook has run."""
    prof = profiles.get(profile)
    sources = notebook_files.notebook_paths(notebooks or prof.notebooks)  # an unknown name is refused before any work
    if not notebooks and prof.notebooks is not None:
        left = [p.stem for p in notebook_files.notebook_paths() if p.stem not in prof.notebooks]
        if left:
            print(f"[batch] profile {prof.name} runs the notebooks of the paper's tables and figures; "
                  f"{', '.join(left)} run when named", flush=True)
    if workers is not None:
        settings.integer("workers", workers, 0)
    notebook_parameters.check([s.stem for s in sources], parameters, prof.name)
    if reference and (parameters or {}).get("reuse_only") is False:
        raise settings.SettingsError("reuse_only=False is not allowed: expected true or none with --reference, "
                                     "which trains nothing")
    if reference:  # the kernels inherit the environment: point their output at the reference
        saved = os.environ.get("RASEKIT_OUTPUT")
        os.environ["RASEKIT_OUTPUT"] = str(paths.reference_dir())
        try:
            return run_batch(profile, [s.stem for s in sources],
                             out_root or paths.REPO_ROOT / "runs" / "executed",
                             {**(parameters or {}), "reuse_only": True})
        finally:
            os.environ.pop("RASEKIT_OUTPUT") if saved is None else os.environ.update(RASEKIT_OUTPUT=saved)
    if workers and not (parameters or {}).get("reuse_only"):
        train_first(prof.name, [s.stem for s in sources], parameters or {}, workers)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = (out_root or paths.executed_dir()) / f"{stamp}-{prof.name}"
    out.mkdir(parents=True, exist_ok=False)
    parameters = {"profile": prof.name, **(parameters or {})}
    manifest = {"profile": prof.name, "parameters": parameters, "output": str(paths.output_dir()),
                "git_commit": git_commit(), "versions": versions(), "complete": False, "notebooks": []}
    _write_manifest(out, manifest)
    for source in sources:
        if parameters.get("reuse_only") and not _has_inputs(source.stem, prof.name, parameters):
            print(f"[batch] {source.name} skipped: none of its runs of profile {prof.name} has trained weights "
                  f"here to load, nor recorded test-time variants (it evaluates trained models again)",
                  flush=True)
            manifest["notebooks"].append({"name": source.name, "skipped": "no loadable trained weights"})
            continue
        print(f"[batch] {source.name} (profile {prof.name})", flush=True)
        start = time.perf_counter()
        _write_manifest(out, {**manifest, "running": source.name})
        _execute(source, out / source.name, _accepted(source, parameters))
        manifest["notebooks"].append({"name": source.name,
                                      "wall_time_s": round(time.perf_counter() - start, 1)})
        _write_manifest(out, manifest)
    _write_manifest(out, {**manifest, "complete": True})
    print(f"[batch] executed notebooks in {out}; figures in {paths.figures_dir(prof.name)}; "
          f"tables in {paths.tables_dir(prof.name)}")
    return out


def _write_manifest(out: Path, manifest: dict) -> None:
    atomic.write_text(out / "manifest.json", json.dumps(manifest, indent=1))


def _execute(source: Path, target: Path, parameters: dict) -> None:
    """Execute a notebook into a temporary name that becomes `target` once papermill is done, so a folder
    never holds half a notebook; a notebook whose cell failed is kept too, showing the error."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    failure = None
    with atomic.produced(target) as tmp, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The specified file .* does not end in")  # the ".tmp"
        try:
            papermill.execute_notebook(str(source), str(tmp), parameters=parameters, cwd=str(notebook_files.NOTEBOOKS),
                                       progress_bar=False, log_output=False)
        except PapermillExecutionError as err:
            failure = err
    if failure is not None:
        raise failure


def train_first(profile: str, notebooks: list[str], parameters: dict, workers: int) -> None:
    """Train the runs the notebooks need, `workers` side by side: two one-thread runs on two cores make
    more epochs per hour than one two-thread run (README, *Threads and workers*)."""
    from rasekit.runs import executors, notebook_runs, plan
    training = [n for n in notebooks if n in notebook_runs.NOTEBOOK_RUNS]
    if not training:  # (an empty list would mean every notebook to `plan.build`)
        return
    steps = plan.build(profile, training, parameters)
    for line in plan.describe(steps, profile).splitlines():
        if not line.startswith(" "):  # the counts and the estimate; the graph is `python -m rasekit plan`'s
            print(f"[batch] {line}", flush=True)
    failures = executors.run_local(steps, workers, log=lambda message: print(f"[batch] {message}", flush=True))
    if failures:
        labels = "; ".join(steps[key].run.label() for key in failures)
        raise RuntimeError(f"{len(failures)} training run(s) of the batch failed or were skipped: {labels}. "
                           f"No notebook was executed; the finished runs are kept, so the batch started "
                           f"again trains only these (their errors are above)")


def _has_inputs(notebook: str, profile: str, parameters: dict) -> bool:
    """Whether a notebook that loads trained models (notebook_runs.NEEDS_WEIGHTS) has any run to use without
    training (`plan.reusable_runs`); others always do."""
    from rasekit.runs import notebook_runs, plan
    if notebook not in notebook_runs.NEEDS_WEIGHTS:
        return True
    return bool(plan.reusable_runs(profile, notebook, notebook_parameters.of(notebook, parameters)))


def _accepted(source: Path, parameters: dict) -> dict:
    """The parameters a notebook declares (`run_batch` has refused any that none of its notebooks does)."""
    return notebook_parameters.of(source.stem, parameters)
