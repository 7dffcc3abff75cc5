"""The run plan: every training run the notebooks need (`notebook_runs`), as a graph (a stage-2 run after
the stage-1 run it builds on), what the ledger already holds, and an estimate of the CPU time of the rest.
`executors` runs it."""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field

from rasekit.data import registry, sources
from rasekit.files import paths
from rasekit.runs import experiments, ledger, notebook_parameters, profiles
from rasekit.runs.notebook_runs import NEEDS_WEIGHTS, NOTEBOOK_RUNS
from rasekit.runs.provenance import device_name, processor
from rasekit.runs.record import Record
from rasekit.runs.spec import Run


def reusable_runs(profile: str, notebook: str, parameters: dict | None = None) -> list[str]:
    """Keys of the notebook's runs (of the stage it needs, if one) in the ledger that it can use without
    training: their trained models loadable here, or test-time variants of them recorded (the notebook
    then checks that all it evaluates are; `variants.available`)."""
    stage = NEEDS_WEIGHTS.get(notebook)
    parents = {r.get("parent") for r in ledger.records() if r.get("stage") == "variant"}
    # (not step.done: for these notebooks it also asks for the weights)
    return [key for key, step in build(profile, [notebook], parameters).items()
            if (stage is None or step.run.stage == stage) and (record := ledger.get(key)) is not None
            and (key in parents or experiments.loadable(record))]


# ---- the plan ------------------------------------------------------------------------------------------

@dataclass
class Step:
    run: Run
    key: str
    done: bool                              # the ledger holds its record
    needs: list[str] = field(default_factory=list)   # keys of the steps it waits for
    estimate_s: float | None = None         # CPU seconds (seconds x threads) it is expected to take
    in_reference: bool = False              # the committed reference holds it (a user's ledger may not)
    from_reference: bool = False            # its profile takes it from the reference: copied, not trained
    weights_missing: bool = False           # recorded, but a notebook loads it again and its weights are
                                            # not here: trained again with its recorded settings


def build(profile: str, notebooks=None, parameters: dict | None = None) -> dict[str, Step]:
    """The steps the notebooks need (by default all notebooks that train, of those the profile's batch
    runs), each once, stage 1 before the stage 2 built on it, in dependency order."""
    chosen = profiles.get(profile).notebooks
    names = list(notebooks or [n for n in NOTEBOOK_RUNS if chosen is None or n in chosen])
    unknown = [n for n in names if n not in NOTEBOOK_RUNS]
    if unknown:
        raise ValueError(f"no run list for notebook(s) {unknown}; notebooks that train: {list(NOTEBOOK_RUNS)}")
    notebook_parameters.check(names, parameters, profiles.get(profile).name)
    runs, loaded = [], set()
    for name in names:
        runs_of = NOTEBOOK_RUNS[name]
        accepted = inspect.signature(runs_of).parameters  # a notebook's other parameters (reuse_only, ...)
        wanted = {k: v for k, v in (parameters or {}).items() if k in accepted and k != "profile"}
        runs_here = runs_of(profile, **wanted)
        runs += runs_here
        if name in NEEDS_WEIGHTS:
            stage = NEEDS_WEIGHTS[name]
            loaded |= {r.key for r in runs_here if stage is None or r.stage == stage}
    return steps_of(runs, loaded)


def steps_of(runs: list[Run], loaded: set[str] = frozenset()) -> dict[str, Step]:
    """The steps of `runs` and of the stage-1 runs they build on, each once, in dependency order, with what
    the ledger holds, what the profile takes from the reference, and an estimate of the rest. A run in
    `loaded` (keys), and the stage-1 run under it, counts as done only if its trained model is loadable
    here."""
    steps: dict[str, Step] = {}

    def add(run: Run) -> str:
        key = run.key
        if key not in steps:
            needs = [add(run.base)] if run.base else []
            steps[key] = Step(run, key, experiments.held(key, profiles.get(run.profile)) is not None, needs)
        return key

    for run in runs:
        add(run)
    for key in loaded:
        step = steps[key]
        if step.done and not experiments.loadable(ledger.get(key)):
            for k in [key] + step.needs:  # a stage-2 run is loadable only with its backbone's weights
                if k == key or not experiments.has_weights(ledger.get(k)):
                    steps[k].done, steps[k].weights_missing = False, True
    records = ledger.records()
    reference = [] if paths.is_reference() else ledger.records(paths.reference_dir())
    in_reference = {r["key"] for r in reference}
    records += [r for r in reference if r["key"] not in {o["key"] for o in records}]  # times to learn from
    records = [Record.of(r) for r in records]
    here = processor(device_name())
    for step in steps.values():
        step.in_reference = step.key in in_reference
        step.from_reference = not step.done and experiments.from_reference(
            step.run.config, step.key, profiles.get(step.run.profile)) is not None
        if not step.done:
            step.estimate_s = 0.0 if step.from_reference else estimate(step.run, records, here)
    return steps


def estimate(run: Run, records: list[Record], here: str | None = None) -> float | None:
    """CPU seconds of a run, from the recorded runs most like it (the user's and the reference's): the same
    model, dataset and profile (or a profile that trains alike: `default` and `full`);
    else the same model and profile on another dataset, scaled by the size of the data; else the same
    stage and profile, scaled likewise. None when nothing alike was ever recorded. Among the alike, those
    recorded on the processor `here` (this machine's, see `provenance.processor`) are used if any: the same run
    takes twice as long on one of the project's CPUs as on another. Runs trained with the same kernels
    (`TrainConfig.kernels`) are preferred likewise: the fast ones take less time; and so are runs whose CPU
    time was measured, since an older record's wall time counts the time its run was paused."""
    source = sources.resolve(run.dataset)
    kernels = dict(run.train).get("kernels", "exact")
    size = source.size()

    def scaled(rec: Record):
        cpu = rec.cpu_seconds
        other = registry.DATASETS.get(sources.Source(rec.dataset).base)  # a held-out change scales as its base
        return None if cpu is None or other is None else cpu * size / other.sequences.size

    tiers = [lambda r: r.model == run.identity and r.dataset == source.name,
             lambda r: r.model == run.identity,
             lambda r: r.stage == run.stage]
    for alike in tiers:
        found = [(r, v) for r in records if trains_alike(r.profile, run.profile) and alike(r)
                 for v in [scaled(r)] if v]
        if found:
            found = [(r, v) for r, v in found if r.kernels == kernels] or found
            found = [(r, v) for r, v in found if r.cpu_measured] or found
            mine = [v for r, v in found if processor(r.provenance.get("device") or "") == here]
            values = sorted(mine or [v for _, v in found])
            return values[len(values) // 2]  # the median
    return None


def trains_alike(a: str, b: str) -> bool:
    """Whether runs of profiles `a` and `b` train alike (the same users and training settings, as `default`
    and `full` do); a profile no longer known is alike only to itself."""
    if a == b:
        return True
    if a not in profiles.PROFILES or b not in profiles.PROFILES:
        return False
    first, second = profiles.PROFILES[a], profiles.PROFILES[b]
    return first.users == second.users and all(
        {**defaults, **getattr(first, stage)} == {**defaults, **getattr(second, stage)}
        for stage, defaults in (("pretrain", experiments.PRETRAIN), ("finetune", experiments.FINETUNE)))


def longest_chain_s(steps: dict[str, Step]) -> float:
    """CPU seconds of the longest dependency chain still to run: the least time the plan can take."""
    return max(downstream_s(steps).values(), default=0.0)


def downstream_s(steps: dict[str, Step]) -> dict[str, float]:
    """Per step, the CPU seconds of the longest chain it starts: its own estimate and the longest one of
    the steps that wait for it (unknown estimates count as 0)."""
    waiting: dict[str, list[str]] = {k: [] for k in steps}
    for key, step in steps.items():
        for need in step.needs:
            waiting[need].append(key)
    memo: dict[str, float] = {}

    def chain(key: str) -> float:
        if key not in memo:
            step = steps[key]
            own = 0.0 if step.done else (step.estimate_s or 0.0)
            memo[key] = own + max((chain(k) for k in waiting[key]), default=0.0)
        return memo[key]
    return {k: chain(k) for k in steps}


def cost(steps: dict[str, Step], cores: int = 2) -> str:
    """What a plan costs in CPU time: its finished runs as recorded, the estimate of the rest, and the
    wall time on `cores` cores with one run per core."""
    recorded = sum(Record.of(rec).cpu_seconds or 0.0 for k, s in steps.items()
                   if s.done and (rec := ledger.get(k)) is not None)
    todo = [s for s in steps.values() if not s.done]
    estimated = sum(s.estimate_s or 0.0 for s in todo)
    return (f"{len(steps)} trained runs: {recorded / 3600:.1f} CPU-h recorded, {estimated / 3600:.1f} CPU-h "
            f"estimated for the {len(todo)} still to run; about {(recorded + estimated) / 3600 / cores:.0f} h "
            f"on {cores} cores")


def _hours(seconds: float | None) -> str:
    if seconds is None:
        return "no estimate"
    return f"{seconds / 3600:.1f} CPU-h" if seconds >= 3600 else f"{seconds / 60:.0f} CPU-min"


def describe(steps: dict[str, Step], profile: str) -> str:
    """The plan as text: the graph (stage-2 runs under their stage-1 run), status and estimates."""
    todo = [s for s in steps.values() if not s.done]
    known = [s.estimate_s for s in todo if s.estimate_s is not None]
    taken = [s for s in todo if s.from_reference]
    lines = [f"plan for profile {profile}: {len(steps)} runs, {len(steps) - len(todo)} in the ledger, "
             f"{len(todo)} to run" + (f": {len(taken)} taken from the reference (copied and checked, not "
                                      f"trained), {len(todo) - len(taken)} to train" if taken else "")]
    if todo and not known:
        lines.append("estimated: no estimate (the ledger holds no run like these)")
    elif todo:
        unknown = len(todo) - len(known)
        lines.append(f"estimated: {_hours(sum(known))} in all, {_hours(longest_chain_s(steps))} on the "
                     f"longest chain" + (f" ({unknown} runs without an estimate)" if unknown else ""))
    children: dict[str, list[Step]] = {}
    for step in steps.values():
        for need in step.needs:
            children.setdefault(need, []).append(step)

    def line(step: Step, indent: str) -> str:
        if step.done or step.from_reference:
            status = "done" if step.done else "todo: taken from the reference, not trained"
        else:
            status = f"todo, {_hours(step.estimate_s)}" + (
                "; in the ledger without its trained weights" if step.weights_missing else
                "; the reference has it" if step.in_reference else "")
        return f"{indent}{step.key}  {step.run.label()}  [{status}]"
    for step in steps.values():
        if not step.needs:
            lines.append(line(step, "  "))
            lines += [line(child, "    └ ") for child in children.get(step.key, [])]
    return "\n".join(lines)
