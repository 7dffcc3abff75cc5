"""The run plan: every training run the notebooks need, as a graph (a stage-2 run after the stage-1 run it
builds on), what the ledger already holds, an estimate of the CPU time of the rest, and its execution with
local worker processes or on a Ray cluster.

The notebooks take their runs from the functions here (`NOTEBOOK_RUNS`), so the plan and the notebooks
cannot disagree on what a table needs."""
from __future__ import annotations

import inspect
import os
import re
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context

from rasekit.runs import experiments, ledger, profiles, sweeps
from rasekit.files import paths
from rasekit import settings
from rasekit.data import registry, sources
from rasekit.data.noise import RATIOS, training_noise
from rasekit.runs import notebook_parameters
from rasekit.runs.keys import run_key
from rasekit.runs.provenance import device_name, processor
from rasekit.runs.threads import choose as choose_threads
from rasekit.runs.threads import release as release_threads


BASELINE_NAMES = {"popularity": "Popularity", "transition": "ItemTransition"}  # as rasekit.models.baselines names them


@dataclass(frozen=True)
class Run:
    """One run: stage 1 (`encoder` trained with `objective`), stage 2 (RaSeRec on the stage-1 run of
    `backbone`) or a training-free `baseline` (seconds, no seed). Settings not named here are the profile's."""
    stage: str                        # "pretrain", "finetune" or "baseline"
    dataset: str
    seed: int
    profile: str
    encoder: str = "sasrec"           # stage 1
    objective: str = "duorec"         # stage 1
    backbone: str | None = None       # stage 2
    train: tuple = ()                 # training settings that differ, as sorted (name, value) pairs
    noise: tuple = ()                 # training-data noise, as sorted (name, value) pairs (both stages)
    base_train: tuple = ()            # stage 2: the training settings of the stage-1 run that differ
    ram: tuple = ()                   # stage 2: the RAM settings that differ from the official ones
    baseline: str | None = None       # "popularity" or "transition"
    transition: tuple = ()            # the item-transition heuristic's settings that differ

    def __post_init__(self):
        settings.choice("stage", self.stage, ("pretrain", "finetune", "baseline"))
        if self.stage == "finetune":
            settings.choice("backbone", self.backbone, tuple(experiments.BACKBONES))
        if self.stage == "baseline":
            settings.choice("baseline", self.baseline, experiments.BASELINES)

    @property
    def base(self) -> "Run | None":
        """The stage-1 run a stage-2 run builds on."""
        if self.stage != "finetune":
            return None
        encoder, objective = experiments.BACKBONES[self.backbone]
        return Run("pretrain", self.dataset, self.seed, self.profile, encoder, objective,
                   train=self.base_train, noise=self.noise)

    @property
    def config(self) -> dict:
        """The run's configuration, as `experiments` hashes it into its key."""
        prof = profiles.get(self.profile)
        if self.stage == "baseline":
            return experiments.baseline_config(self.dataset, self.baseline, prof, dict(self.transition) or None)
        if self.stage == "pretrain":
            return experiments.pretrain_config(self.dataset, self.encoder, self.objective, self.seed, prof,
                                               train=dict(self.train), noise=self.noise_spec)
        base = {"key": self.base.key, **sources.resolve(self.dataset).config,
                **({"noise": self.noise_spec} if self.noise_spec else {})}
        return experiments.finetune_config(base, self.backbone, self.seed, prof, ram=dict(self.ram),
                                           train=dict(self.train))

    @property
    def key(self) -> str:
        return run_key(self.config)

    @property
    def noise_spec(self) -> dict | None:
        return training_noise(dict(self.noise))

    @property
    def model(self) -> str:
        if self.stage == "baseline":
            return BASELINE_NAMES[self.baseline]
        if self.stage == "finetune":
            changed = experiments.variant_label(dict(self.base_train), {})
            return f"RaSeRec({self.base.model}{changed})"
        return experiments.MODEL_NAMES.get((self.encoder, self.objective), f"{self.encoder}+{self.objective}")

    def label(self) -> str:
        changed = experiments.variant_label({**dict(self.ram), **dict(self.train), **dict(self.transition),
                                             **experiments.noise_label(self.noise_spec)},
                                            {})  # e.g. " [valid_metric=NDCG@10]"
        seed = "" if self.stage == "baseline" else f", seed {self.seed}"
        return f"{self.model}{changed} on {self.dataset}{seed} ({self.profile})"

    def execute(self, reuse_only: bool = False, log=print, need_weights: bool = False) -> dict | None:
        """The run's ledger record: reused, or trained now (None with `reuse_only` if not in the ledger).
        `need_weights`: the trained model must be loadable here (stored weights or a checkpoint); a run
        without them is trained again with its recorded settings, or, with `reuse_only`, left out (None)."""
        if self.stage == "baseline":
            return experiments.baseline(self.dataset, self.baseline, self.profile, dict(self.transition) or None,
                                        reuse_only, log)
        common = dict(train=dict(self.train) or None, noise=self.noise_spec, reuse_only=reuse_only,
                      need_checkpoint=need_weights, log=log)
        if self.stage == "pretrain":
            record = experiments.pretrain(self.dataset, self.encoder, self.objective, self.seed, self.profile,
                                          **common)
        else:
            record = experiments.finetune(self.dataset, self.backbone, self.seed, self.profile,
                                          ram=dict(self.ram) or None, pretrain_train=dict(self.base_train) or None,
                                          **common)
        if record is not None and need_weights and not experiments.loadable(record):  # only with reuse_only
            return None
        return record


# ---- what each notebook needs -------------------------------------------------------------------------

def _grid(profile: str, datasets, seeds):
    prof = profiles.get(profile)
    return prof.name, list(datasets or prof.datasets), list(seeds or prof.seeds)


def main_results_runs(profile: str, datasets=None, seeds=None) -> list[tuple[Run, Run]]:
    """Notebook 01: (DuoRec, RaSeRec on it) for every dataset and seed."""
    profile, datasets, seeds = _grid(profile, datasets, seeds)
    return [(Run("pretrain", d, s, profile, "sasrec", "duorec"), Run("finetune", d, s, profile, backbone="duorec"))
            for d in datasets for s in seeds]


STAGE1_MODELS = (("sasrec", "ce"), ("sasrec", "duorec"), ("sasrec", "cl4srec"), ("gru4rec", "ce"))


def stage1_runs(profile: str, datasets=None, seeds=None, models=STAGE1_MODELS) -> list[Run]:
    """Notebook 02: every stage-1 model on every dataset and seed."""
    profile, datasets, seeds = _grid(profile, datasets, seeds)
    return [Run("pretrain", d, s, profile, encoder, objective)
            for d in datasets for encoder, objective in models for s in seeds]


# The Sports gap: DuoRec stopped by MRR@10 (official) ends 5 to 6% below the reported numbers
# on Sports; these runs change one thing each: the stopping metric, or the batch size of raserec.sh.
GAP_SETTINGS = ((("valid_metric", "NDCG@10"),), (("valid_metric", "HR@10"),), (("batch_size", 1024),))


def stopping_runs(profile: str, datasets=None, seeds=None) -> list[Run]:
    """Notebook 02's Sports-gap runs: DuoRec with each of GAP_SETTINGS, on `datasets` (default: Sports if
    the profile has it) for the first of `seeds`, then RaSeRec on each (is the paper's RaSeRec, too, what
    stage 2 gives on a longer-trained DuoRec?)."""
    prof = profiles.get(profile)
    if datasets is None:
        datasets = [d for d in prof.datasets if d == "Sports_and_Outdoors"]
    seeds = list(seeds or prof.seeds)[:1]
    stage1 = [Run("pretrain", d, s, prof.name, "sasrec", "duorec", train=change)
              for d in datasets for s in seeds for change in GAP_SETTINGS]
    return stage1 + [Run("finetune", r.dataset, r.seed, prof.name, backbone="duorec", base_train=r.train)
                     for r in stage1]


def pretraining_all(profile: str, datasets=None, seeds=None, models=STAGE1_MODELS, gap_datasets=None) -> list[Run]:
    return stage1_runs(profile, datasets, seeds, models) + stopping_runs(profile, gap_datasets, seeds)


def main_results_all(profile: str, datasets=None, seeds=None) -> list[Run]:
    return [run for pair in main_results_runs(profile, datasets, seeds) for run in pair]


def long_tail_runs(profile: str, datasets=None, seeds=None) -> dict[str, list[Run]]:
    """Notebooks 03 and 05: SASRec, DuoRec and RaSeRec on it, for every dataset and seed."""
    pairs = main_results_runs(profile, datasets, seeds)
    return {"SASRec": stage1_runs(profile, datasets, seeds, models=[("sasrec", "ce")]),
            "DuoRec": [base for base, _ in pairs], "RaSeRec": [augmented for _, augmented in pairs]}


def long_tail_all(profile: str, datasets=None, seeds=None) -> list[Run]:
    return [run for runs in long_tail_runs(profile, datasets, seeds).values() for run in runs]


def noise_trained_runs(profile: str, datasets=None, seeds=None, ratios=RATIOS, mode: str = "replace",
                       noise_seed: int = 0) -> dict[str, list[Run]]:
    """Notebook 05's training-time noise: SASRec, DuoRec and RaSeRec trained again on data whose inputs are
    noisy at each ratio above 0, for the first of `seeds` (each costs a full stage 1, and stage 2)."""
    prof = profiles.get(profile)
    datasets, seeds = list(datasets or prof.datasets), list(seeds or prof.seeds)[:1]
    noises = [tuple(sorted({"ratio": r, "mode": mode, "seed": noise_seed}.items())) for r in ratios if r > 0]
    runs = {"SASRec": [], "DuoRec": [], "RaSeRec": []}
    for d in datasets:
        for s in seeds:
            for noise in noises:
                augmented = Run("finetune", d, s, prof.name, backbone="duorec", noise=noise)
                runs["SASRec"].append(Run("pretrain", d, s, prof.name, "sasrec", "ce", noise=noise))
                runs["DuoRec"].append(augmented.base)
                runs["RaSeRec"].append(augmented)
    return runs


def noise_all(profile: str, datasets=None, seeds=None, ratios=RATIOS, mode: str = "replace", noise_seed: int = 0,
              trained_on_noise: bool = False) -> list[Run]:
    """Notebook 05: the clean-trained runs (test-time noise), and with `trained_on_noise` the runs trained
    on noisy data."""
    trained = noise_trained_runs(profile, datasets, seeds, ratios, mode, noise_seed) if trained_on_noise else {}
    return long_tail_all(profile, datasets, seeds) + [run for runs in trained.values() for run in runs]


# Notebook 06's trained models in the order of its table, as (encoder, objective); DuoRec and RaSeRec get
# every seed of the profile, the other trained baselines `baseline_seeds` (CPU time is the scarce thing).
COMPARISON_MODELS = (("gru4rec", "ce"), ("sasrec", "bpr"), ("sasrec", "ce"), ("bert4rec", "cloze"),
                     ("sasrec", "cl4srec"), ("sasrec", "duorec"))
BACKBONE_NAMES = ("gru4rec", "sasrec", "cl4srec", "duorec")


def _comparison_grid(profile: str, datasets, seeds, baseline_seeds):
    prof = profiles.get(profile)
    seeds = list(seeds or prof.seeds)
    return prof.name, list(datasets or prof.comparison_datasets), seeds, list(baseline_seeds or seeds[:1])


def comparison_runs(profile: str, datasets=None, seeds=None, baseline_seeds=None,
                    transition: dict | None = None) -> dict[str, list[Run]]:
    """Notebook 06: every model of the comparison by name, the training-free baselines first (with the
    item-transition settings that differ) and RaSeRec on DuoRec last."""
    profile, datasets, seeds, baseline_seeds = _comparison_grid(profile, datasets, seeds, baseline_seeds)
    changed = tuple(sorted((transition or {}).items()))
    runs = {}
    for name in experiments.BASELINES:
        these = [Run("baseline", d, 0, profile, baseline=name, transition=changed if name == "transition" else ())
                 for d in datasets]
        runs[these[0].model + experiments.variant_label(dict(these[0].transition), {})] = these
    for encoder, objective in COMPARISON_MODELS:
        model_seeds = seeds if objective == "duorec" else baseline_seeds
        runs[experiments.MODEL_NAMES[(encoder, objective)]] = [
            Run("pretrain", d, s, profile, encoder, objective) for d in datasets for s in model_seeds]
    runs["RaSeRec"] = [Run("finetune", d, s, profile, backbone="duorec") for d in datasets for s in seeds]
    return runs


def comparison_all(profile: str, datasets=None, seeds=None, baseline_seeds=None, transition=None) -> list[Run]:
    return [run for runs in comparison_runs(profile, datasets, seeds, baseline_seeds, transition).values()
            for run in runs]


def backbone_runs(profile: str, datasets=None, seeds=None, baseline_seeds=None,
                  backbones=BACKBONE_NAMES) -> list[tuple[Run, Run]]:
    """Notebook 07: (backbone alone, RaSeRec on it) for each backbone, dataset and seed (DuoRec over
    `seeds`, the other backbones over `baseline_seeds`)."""
    profile, datasets, seeds, baseline_seeds = _comparison_grid(profile, datasets, seeds, baseline_seeds)
    pairs = []
    for backbone in backbones:
        stage2 = lambda d, s: Run("finetune", d, s, profile, backbone=backbone)  # noqa: E731
        pairs += [(stage2(d, s).base, stage2(d, s)) for d in datasets
                  for s in (seeds if backbone == "duorec" else baseline_seeds)]
    return pairs


def backbone_all(profile: str, datasets=None, seeds=None, baseline_seeds=None, backbones=BACKBONE_NAMES):
    return [run for pair in backbone_runs(profile, datasets, seeds, baseline_seeds, backbones) for run in pair]


def _stage2(profile: str, dataset: str, seed: int, ram: dict) -> Run:
    return Run("finetune", dataset, seed, profile, backbone="duorec", ram=tuple(sorted(ram.items())))


def _second_grid(profile: str, datasets, seeds, other_datasets):
    """(datasets with every seed, other datasets with the first seed): by default the profile's first
    dataset, and its others."""
    prof = profiles.get(profile)
    datasets = list(datasets or prof.datasets[:1])
    others = list(prof.datasets[1:] if other_datasets is None else other_datasets)
    return prof.name, datasets, list(seeds or prof.seeds), others


def sensitivity_runs(profile: str, datasets=None, seeds=None, other_datasets=None,
                     parameters=None) -> dict[tuple[str, str, object], list[Run]]:
    """Notebook 08: RaSeRec on DuoRec at each point of each grid (`sweeps.grids`), by (dataset, parameter,
    value); on `other_datasets` the first seed and `sweeps.SECOND_DATASET_PARAMETERS` only."""
    profile, datasets, seeds, others = _second_grid(profile, datasets, seeds, other_datasets)
    runs = {}
    for name, values in sweeps.grids(profile, parameters).items():
        places = [(d, seeds) for d in datasets] + [
            (d, seeds[:1]) for d in others if name in sweeps.SECOND_DATASET_PARAMETERS]
        for dataset, chosen in places:
            for value in values:
                runs[(dataset, name, value)] = [_stage2(profile, dataset, s, sweeps.change(name, value))
                                                for s in chosen]
    return runs


def sensitivity_all(profile: str, datasets=None, seeds=None, other_datasets=None, parameters=None) -> list[Run]:
    runs = sensitivity_runs(profile, datasets, seeds, other_datasets, parameters)
    return list(dict.fromkeys(run for group in runs.values() for run in group))


def ablation_runs(profile: str, datasets=None, seeds=None, other_datasets=None) -> dict[tuple[str, str], list[Run]]:
    """Notebook 09: each row of `sweeps.ABLATION` by (dataset, row): the backbone alone (DuoRec) or RaSeRec
    on it with the row's settings; `other_datasets` on the first seed."""
    profile, datasets, seeds, others = _second_grid(profile, datasets, seeds, other_datasets)
    runs = {}
    for dataset, chosen in [(d, seeds) for d in datasets] + [(d, seeds[:1]) for d in others]:
        for row, ram in sweeps.ABLATION.items():
            stage2 = [_stage2(profile, dataset, s, ram or {}) for s in chosen]
            runs[(dataset, row)] = [r.base for r in stage2] if ram is None else stage2
    return runs


def ablation_all(profile: str, datasets=None, seeds=None, other_datasets=None) -> list[Run]:
    return [run for group in ablation_runs(profile, datasets, seeds, other_datasets).values() for run in group]


NOTEBOOK_RUNS = {"01_main_results": main_results_all, "02_pretraining": pretraining_all,
                 "03_long_tail": long_tail_all, "04_memory_partitions": main_results_all,
                 "05_noise_robustness": noise_all, "06_comparison": comparison_all,
                 "07_backbones": backbone_all, "08_sensitivity": sensitivity_all,
                 "09_ablation": ablation_all}


# Notebooks that load trained models again (not only their ranks), and the stage whose weights they need.
NEEDS_WEIGHTS = {"04_memory_partitions": "finetune", "05_noise_robustness": None}


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
    here = processor(device_name())
    for step in steps.values():
        step.in_reference = step.key in in_reference
        step.from_reference = not step.done and experiments.from_reference(
            step.run.config, step.key, profiles.get(step.run.profile)) is not None
        if not step.done:
            step.estimate_s = 0.0 if step.from_reference else estimate(step.run, records, here)
    return steps


def _cpu_seconds(record: dict) -> float | None:
    prov = record.get("provenance", {})
    seconds = prov.get("train_seconds") or prov.get("wall_time_s")
    threads = re.search(r"(\d+) threads", prov.get("device") or "")
    if seconds is None:
        return None
    return seconds * (int(threads.group(1)) if threads else 1)


def estimate(run: Run, records: list[dict], here: str | None = None) -> float | None:
    """CPU seconds of a run, from the recorded runs most like it (the user's and the reference's): the same
    model, dataset and profile (or a profile that trains alike: `default` and `full`);
    else the same model and profile on another dataset, scaled by the size of the data; else the same
    stage and profile, scaled likewise. None when nothing alike was ever recorded. Among the alike, those
    recorded on the processor `here` (this machine's, see `provenance.processor`) are used if any: the same run
    takes twice as long on one of the project's CPUs as on another."""
    source = sources.resolve(run.dataset)
    size = source.size()

    def scaled(rec):
        cpu = _cpu_seconds(rec)
        other = registry.DATASETS.get(rec["dataset"])
        return None if cpu is None or other is None else cpu * size / other.sequences.size

    base_model = lambda rec: rec["model"].split(" [")[0]  # noqa: E731 (variants carry " [setting=...]")
    tiers = [lambda r: base_model(r) == run.model and r["dataset"] == source.name,
             lambda r: base_model(r) == run.model,
             lambda r: r.get("stage") == run.stage]
    for alike in tiers:
        found = [(r, v) for r in records if trains_alike(r["profile"], run.profile) and alike(r)
                 for v in [scaled(r)] if v]
        if found:
            mine = [v for r, v in found if processor(r["provenance"].get("device") or "") == here]
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
    recorded = sum(_cpu_seconds(ledger.get(k) or {}) or 0.0 for k, s in steps.items() if s.done)
    todo = [s for s in steps.values() if not s.done]
    estimated = sum(s.estimate_s or 0.0 for s in todo)
    return (f"{len(steps)} trained runs: {recorded / 3600:.1f} CPU-h recorded, {estimated / 3600:.1f} CPU-h "
            f"estimated for the {len(todo)} still to run; about {(recorded + estimated) / 3600 / cores:.0f} h "
            f"on {cores} cores")


def records_of(runs: list[Run], reuse_only: bool = False, log=print) -> list[dict]:
    """The ledger records of `runs` (trained now unless `reuse_only`); the runs the ledger lacks are
    named and left out."""
    found = []
    for run in runs:
        record = run.execute(reuse_only)
        if record is None:
            log(f"not in the ledger, left out: {run.label()}")
        else:
            found.append(record)
    return found


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


# ---- execution -----------------------------------------------------------------------------------------

def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """Threads for each of `workers` processes so that together they use the free cores and no more:
    threads of one process that outnumber its share wait on each other when the machine is busy.
    `cores`: the cores to share (default: those the other processes leave free, or the user's
    RASEKIT_THREADS / OMP_NUM_THREADS, as `rasekit.runs.threads.choose` says)."""
    return max(1, (cores or choose_threads()) // workers)


def _execute(run: dict, threads: int, need_weights: bool, *_needs) -> str:
    """Run one step in a worker (`need_weights`: train it again if its trained model is not here;
    `_needs`: results of the steps it waits for, so Ray orders them)."""
    import torch
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = os.environ["RASEKIT_THREADS"] = str(threads)  # fit() reads these
    spec = Run(**{**run, **{k: tuple(tuple(p) for p in run[k]) for k in ("train", "noise", "base_train")}})
    record = spec.execute(log=lambda message: print(f"[{spec.label()}] {message}", flush=True),
                          need_weights=need_weights)
    return record["key"]


def _exit_with_parent() -> None:
    """In a worker: end when the plan's process is gone (killed), so that no orphan trains on beside the
    plan started again, two processes writing one run's checkpoints."""
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(2)
        os._exit(1)
    threading.Thread(target=watch, daemon=True).start()


def run_local(steps: dict[str, Step], workers: int, log=print) -> list[str]:
    """Execute the steps not in the ledger with `workers` processes, each as soon as what it needs is done.
    A failed step is reported and the steps that need it are skipped; returns the failures."""
    settings.integer("workers", workers, 1)
    threads = threads_per_worker(workers)
    todo = {k: s for k, s in steps.items() if not s.done}
    finished = {k for k, s in steps.items() if s.done}
    failures: list[str] = []
    if not todo:
        log("nothing to run: every run of the plan is in the ledger")
        return failures
    log(f"running {len(todo)} runs with {workers} workers x {threads} threads")
    downstream = downstream_s(steps)
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_exit_with_parent) as pool:
        running = {}
        while todo or running:
            blocked = [k for k, s in todo.items() if any(n in failures for n in s.needs)]
            for key in blocked:
                failures.append(key)
                log(f"skipped {todo.pop(key).run.label()}: a run it needs failed")
            ready = [k for k, s in todo.items() if all(n in finished for n in s.needs)]
            ready.sort(key=lambda k: -downstream[k])  # the longest chain first: it bounds the wall time
            for key in ready[:workers - len(running)]:  # the pool's queue would hide which runs train
                step = todo.pop(key)
                log(f"{'take' if step.from_reference else 'start'} {step.run.label()} ({key})")
                future = pool.submit(_execute, asdict(step.run), threads, step.weights_missing)
                running[future] = (key, time.perf_counter())
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                key, start = running.pop(future)
                try:
                    future.result()
                    finished.add(key)
                    log(f"done  {steps[key].run.label()} in {time.perf_counter() - start:.0f} s")
                except Exception as err:  # noqa: BLE001 (reported, and the rest of the plan goes on)
                    failures.append(key)
                    log(f"FAILED {steps[key].run.label()}: {type(err).__name__}: {err}")
    release_threads()
    return failures


def run_ray(steps: dict[str, Step], address: str | None, cpus_per_run: int = 1, gpus_per_run: float = 0,
            log=print) -> list[str]:
    """Execute the steps not in the ledger as Ray tasks, each asking for `cpus_per_run` CPUs (and a
    `gpus_per_run` share of a GPU); a task waits for the tasks of the runs it needs. The ledger and the
    checkpoints must be on storage every worker shares: RASEKIT_OUTPUT and RASEKIT_CACHE are passed on."""
    settings.integer("cpus_per_run", cpus_per_run, 1)
    if not 0 <= gpus_per_run <= 1:
        raise settings.SettingsError(f"gpus_per_run={gpus_per_run!r} is not allowed: expected a share of one "
                                     f"GPU, 0 to 1")
    try:
        import ray
    except ImportError:
        raise RuntimeError("Ray is an optional extra: pip install 'rasekit[ray]'") from None
    env = {k: v for k, v in os.environ.items() if k.startswith("RASEKIT_") or k == "TQDM_DISABLE"}
    started_here = not ray.is_initialized()
    if started_here:
        local = address in (None, "local")  # a fresh single-machine Ray, without its web dashboard
        try:
            ray.init(address=None if local else address, runtime_env={"env_vars": env},
                     **({"include_dashboard": False} if local else {}))
        except Exception as err:  # Ray's own message names neither the address nor a way out
            raise RuntimeError(f"Ray did not start ({'a local node' if local else address}): {err} "
                               "A local node has a fixed 30 s to start, which a machine whose cores are "
                               "all busy can miss; run the plan with --workers instead.") from err
    remote = ray.remote(num_cpus=cpus_per_run, num_gpus=gpus_per_run, max_retries=0)(_execute)
    refs: dict[str, object] = {}
    for key, step in steps.items():  # dependency order: a stage-1 step comes before its stage-2 steps
        if not step.done:
            needs = [refs[n] for n in step.needs if n in refs]
            refs[key] = remote.remote(asdict(step.run), cpus_per_run, step.weights_missing, *needs)
    log(f"submitted {len(refs)} runs to Ray ({cpus_per_run} CPUs each)")
    failures = []
    for key, ref in refs.items():
        try:
            ray.get(ref)
            log(f"done  {steps[key].run.label()}")
        except Exception as err:  # noqa: BLE001 (Ray wraps the run's error; report and go on)
            failures.append(key)
            log(f"FAILED {steps[key].run.label()}: {type(err).__name__}: {str(err).splitlines()[0]}")
    if started_here:
        ray.shutdown()
    return failures
