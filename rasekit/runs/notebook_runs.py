"""The runs each notebook needs, as lists of `Run`s: the plan and the notebooks take them from here, so the
two cannot disagree on what a table needs."""
from __future__ import annotations

from rasekit.data.noise import RATIOS
from rasekit.runs import experiments, profiles, sweeps
from rasekit.runs.spec import Run


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


def case_study_runs(profile: str, datasets=None, seeds=None) -> list[tuple[Run, Run]]:
    """Notebook 12: (DuoRec, RaSeRec on it) on `datasets` (default: the profile's first) for `seeds`
    (default: the profile's first)."""
    prof = profiles.get(profile)
    return main_results_runs(prof.name, list(datasets or prof.datasets[:1]), list(seeds or prof.seeds[:1]))


def case_study_all(profile: str, datasets=None, seeds=None) -> list[Run]:
    return [run for pair in case_study_runs(profile, datasets, seeds) for run in pair]


HELD_OUT = (1, 2, 3)    # each user's last interactions held out (notebook 11)
NEW_USERS = 0.1         # the share of users left out entirely (notebook 11)


def dynamic_memory_runs(profile: str, datasets=None, seeds=None, held_out=HELD_OUT,
                        new_users=NEW_USERS) -> dict[str, list[tuple[Run, Run]]]:
    """Notebook 11: (DuoRec, RaSeRec on it) trained on each older version of the data ("Beauty:last=2",
    "Beauty:users=0.1") and on the full data (retraining), on `datasets` (default: the profile's) for
    `seeds` (default: the profile's first), by scenario."""
    prof = profiles.get(profile)
    datasets, seeds = list(datasets or prof.datasets), list(seeds or prof.seeds[:1])
    scenarios = {"retraining": ""} | {f"last {h}": f":last={h}" for h in held_out}
    if new_users:
        scenarios["new users"] = f":users={new_users}"
    return {name: [(Run("pretrain", d + suffix, s, prof.name, "sasrec", "duorec"),
                    Run("finetune", d + suffix, s, prof.name, backbone="duorec")) for d in datasets for s in seeds]
            for name, suffix in scenarios.items()}


def dynamic_memory_all(profile: str, datasets=None, seeds=None, held_out=HELD_OUT, new_users=NEW_USERS) -> list[Run]:
    return [run for pairs in dynamic_memory_runs(profile, datasets, seeds, held_out, new_users).values()
            for pair in pairs for run in pair]


def audit_runs(profile: str, datasets=None, seeds=None) -> dict[str, list[Run]]:
    """Notebook 13: on each comparison dataset, the untuned item-transition heuristic, and DuoRec and
    RaSeRec on it for every seed (loaded again: the truncated inputs and the hybrid evaluate them)."""
    profile, datasets, seeds, _ = _comparison_grid(profile, datasets, seeds, None)
    return {"heuristic": [Run("baseline", d, 0, profile, baseline="transition") for d in datasets],
            "DuoRec": [Run("pretrain", d, s, profile, "sasrec", "duorec") for d in datasets for s in seeds],
            "RaSeRec": [Run("finetune", d, s, profile, backbone="duorec") for d in datasets for s in seeds]}


def audit_all(profile: str, datasets=None, seeds=None) -> list[Run]:
    return [run for runs in audit_runs(profile, datasets, seeds).values() for run in runs]


NOTEBOOK_RUNS = {"01_main_results": main_results_all, "02_pretraining": pretraining_all,
                 "03_long_tail": long_tail_all, "04_memory_partitions": main_results_all,
                 "05_noise_robustness": noise_all, "06_comparison": comparison_all,
                 "07_backbones": backbone_all, "08_sensitivity": sensitivity_all,
                 "09_ablation": ablation_all, "11_dynamic_memory": dynamic_memory_all,
                 "12_case_study": case_study_all,
                 "13_audit": audit_all}


# Notebooks that load trained models again (not only their ranks), and the stage whose weights they need.
NEEDS_WEIGHTS = {"04_memory_partitions": "finetune", "05_noise_robustness": None, "11_dynamic_memory": "finetune",
                 "12_case_study": "finetune", "13_audit": "finetune"}
