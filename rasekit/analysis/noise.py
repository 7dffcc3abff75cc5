"""Robustness to noisy input sequences (notebook 05): trained models evaluated on test sequences with a
share of their items replaced (or inserted) at random, at several noise ratios.

The paper's protocol is unknown (docs/method.md §10.5 and §11.9). The kit's choice, each a parameter:
* test-time noise on the trained models (no retraining): the same seeded noisy sequences for every model
  and seed (`rasekit.data.noise`);
* stage 2's memory bank built from the clean training sequences by default, or from equally noisy ones;
* the relative drop of each metric against the same model on clean inputs, per seed, then averaged;
* optionally, the same models trained again on noisy data (both stages, every input noisy at the ratio:
  `rasekit.data.noise.training_noise`), tested on the very noisy test inputs the clean-trained models
  get, their drop taken against the clean-trained model on clean inputs.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from rasekit import settings
from rasekit.analysis.stats import paired_permutation_test
from rasekit.evaluate import per_user
from rasekit.data.noise import RATIOS, Noise
from rasekit.runs.variants import TestVariant

def check_ratios(ratios) -> list[float]:
    ratios = [settings.real("noise ratio", r, 0.0, 1.0) for r in ratios]
    if not ratios:
        raise settings.SettingsError("ratios=[] is not allowed: expected at least one noise ratio")
    return sorted(set(ratios) | {0.0})  # the clean inputs are the reference of every drop


def run_noise(parents: dict[str, list[dict]], ratios=RATIOS, mode: str = "replace", bank: str = "clean",
              noise_seed: int = 0, log=print) -> list[dict]:
    """Every (model, parent run, ratio) as a test-time variant; `parents` maps a model's name to its
    trained runs (ledger records). Each variant is cached in the ledger: a second call only reads."""
    from rasekit.runs import variants

    ratios = check_ratios(ratios)
    if not any(parents.values()):
        raise ValueError("no trained run to evaluate: none of the runs is in the ledger with its weights here "
                         "(train them, e.g. with reuse_only=False, or promote yours into the reference)")
    results = []
    for model, records in parents.items():
        for parent in records:
            for variant in noisy_tests(ratios, mode, bank, noise_seed):
                rec = variants.evaluate(parent, variant, log=log)
                results.append({"model": model, "dataset": parent["dataset"], "seed": parent["seed"],
                                "ratio": variant.noise.ratio, "trained on": "clean data", "record": rec})
    return results


def noisy_tests(ratios=RATIOS, mode: str = "replace", bank: str = "clean",
                noise_seed: int = 0) -> list[TestVariant]:
    """The test-time variants `run_noise` evaluates of each run, the clean inputs first."""
    return [TestVariant(noise=Noise(ratio, mode, noise_seed, bank)) for ratio in check_ratios(ratios)]


def evaluable(records: list[dict], ratios=RATIOS, mode: str = "replace", bank: str = "clean",
              noise_seed: int = 0, log=print) -> list[dict]:
    """The runs of `records` whose noisy tests can be had here: all recorded, or the trained model here
    to evaluate them; the others are listed and left out (before `common_seeds`, so seeds still match)."""
    from rasekit.runs import variants

    wanted, kept = noisy_tests(ratios, mode, bank, noise_seed), []
    for rec in records:
        if variants.available(rec, wanted):
            kept.append(rec)
        else:
            log(f"left out (its trained weights are not here and not every noisy test of it is recorded): "
                f"{rec['model']} on {rec['dataset']}, seed {rec['seed']} ({rec['key']})")
    return kept


def trained_on_noise(runs: dict[str, list[dict]]) -> list[dict]:
    """The runs trained on noisy data (model name -> ledger records, `notebook_runs.noise_trained_runs`) as results
    beside `run_noise`'s: each is tested on its own noisy test inputs."""
    return [{"model": model, "dataset": rec["dataset"], "seed": rec["seed"], "ratio": rec["config"]["noise"]["ratio"],
             "trained on": "noisy data", "record": rec} for model, records in runs.items() for rec in records]


def common_seeds(parents: dict[str, list[dict]]) -> tuple[dict[str, list[dict]], list[dict]]:
    """`parents` restricted, per dataset, to the seeds that every model with runs on that dataset has, so
    that models are compared on the same seeds (a robustness gap between seed sets would mix the seed
    spread into it); also the records left out. A model with no run on a dataset does not empty it."""
    shared = set()
    for dataset in {r["dataset"] for records in parents.values() for r in records}:
        have = [{r["seed"] for r in records if r["dataset"] == dataset} for records in parents.values()]
        shared |= {(dataset, seed) for seed in set.intersection(*[h for h in have if h])}
    kept = {model: [r for r in records if (r["dataset"], r["seed"]) in shared] for model, records in parents.items()}
    left_out = [r for records in parents.values() for r in records if (r["dataset"], r["seed"]) not in shared]
    return kept, left_out


def seed_drops(results: list[dict], metrics=("HR@10", "NDCG@10")) -> pd.DataFrame:
    """One row per result (dataset, model, seed, data it was trained on, ratio): each metric and its drop
    in percent against the same model and seed trained on clean data, on clean inputs."""
    frame = pd.DataFrame([{"dataset": r["dataset"], "model": r["model"], "seed": r["seed"], "ratio": r["ratio"],
                           "trained on": r.get("trained on", "clean data"),
                           **{m: r["record"]["metrics"][m] for m in metrics}} for r in results])
    reference = (frame["ratio"] == 0.0) & (frame["trained on"] == "clean data")
    clean = frame[reference].set_index(["dataset", "model", "seed"])
    for m in metrics:
        base = clean.loc[list(zip(frame["dataset"], frame["model"], frame["seed"])), m].to_numpy()
        frame[f"{m} drop %"] = 100 * (1 - frame[m].to_numpy() / base)
    return frame


def noise_table(results: list[dict], metrics=("HR@10", "NDCG@10")) -> pd.DataFrame:
    """One row per (dataset, model, data it was trained on, ratio): each metric's mean and spread over
    seeds, and its drop against the clean inputs in percent (per seed against the same model trained on
    clean data at ratio 0, then averaged)."""
    rows = []
    for (dataset, model, trained, ratio), part in seed_drops(results, metrics).groupby(
            ["dataset", "model", "trained on", "ratio"], sort=False):
        row = {"dataset": dataset, "model": model, "trained on": trained, "ratio": ratio, "seeds": len(part)}
        for m in metrics:
            row[m] = part[m].mean()
            row[f"{m} std"] = part[m].std(ddof=1) if len(part) > 1 else 0.0
            row[f"{m} drop %"] = part[f"{m} drop %"].mean()
        rows.append(row)
    return pd.DataFrame(rows)


def noise_figure(table: pd.DataFrame, metric: str = "NDCG@10", title: str = ""):
    """Left: `metric` against the noise ratio per model (with the seed spread); right: its drop in
    percent against the clean inputs."""
    import matplotlib.pyplot as plt

    fig, (ax, drop) = plt.subplots(1, 2, figsize=(9.0, 3.4))
    colours = {model: f"C{i}" for i, model in enumerate(table["model"].unique())}
    for (model, trained), part in table.groupby(["model", "trained on"], sort=False):
        x = 100 * part["ratio"].to_numpy()
        style = dict(color=colours[model], marker="o" if trained == "clean data" else "s",
                     ls="-" if trained == "clean data" else "--",
                     label=model if trained == "clean data" else f"{model}, trained on noisy data")
        ax.errorbar(x, part[metric], yerr=part[f"{metric} std"], capsize=2, **style)
        drop.plot(x, part[f"{metric} drop %"], **style)
    ax.set(xlabel="noise ratio (%)", ylabel=metric, title=title)
    drop.set(xlabel="noise ratio (%)", ylabel=f"{metric} drop against clean (%)")
    drop.axhline(0, color="grey", lw=0.6, ls=":")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def robustness_gap(results: list[dict], user_ranks, metric: str = "NDCG@10") -> pd.DataFrame:
    """Per dataset, ratio above 0 and other model (all trained on clean data), on the seeds both have:
    RaSeRec's drop minus that model's drop in points of the clean metric (negative = RaSeRec loses less),
    its mean and spread over seeds, the seeds where RaSeRec lost less, and a paired test over test users.

    The test pairs, per user, the share of each model's clean score that its noisy score keeps (per-user
    noisy metric over the model's clean mean, averaged over seeds): its mean difference is the gap. One
    seed has no spread (NaN, not 0)."""
    clean = [r for r in results if r.get("trained on", "clean data") == "clean data"]
    found = {(r["dataset"], r["model"], r["seed"], r["ratio"]): r["record"] for r in clean}
    models = list(dict.fromkeys(r["model"] for r in clean))
    raserec = next((m for m in models if m.startswith("RaSeRec")), None)
    ratios = sorted({r["ratio"] for r in clean if r["ratio"] > 0})
    rows = []
    for dataset in dict.fromkeys(r["dataset"] for r in clean):
        for ratio in ratios:
            for other in (m for m in models if raserec and m != raserec):
                row = _gap(found, dataset, ratio, raserec, other, user_ranks, metric)
                if row:
                    rows.append(row)
    return pd.DataFrame(rows)


def _gap(found: dict, dataset: str, ratio: float, raserec: str, other: str, user_ranks, metric: str) -> dict:
    """One row of `robustness_gap` (empty if the two models share no seed)."""
    def seeds_of(model):
        return {s for (d, m, s, q) in found if (d, m, q) == (dataset, model, ratio)}
    seeds = sorted(seeds_of(raserec) & seeds_of(other))
    if not seeds:
        return {}
    kept = {m: np.array([per_user(user_ranks(found[dataset, m, s, ratio]), metric)
                         / found[dataset, m, s, 0.0]["metrics"][metric] for s in seeds])
            for m in (raserec, other)}  # seeds x users: the share of the clean score kept
    gaps = 100 * (kept[other].mean(axis=1) - kept[raserec].mean(axis=1))  # per seed: drop_R - drop_O
    return {"dataset": dataset, "ratio": ratio, "versus": other, "seeds": len(seeds), "gap (pp)": gaps.mean(),
            "gap std": gaps.std(ddof=1) if len(gaps) > 1 else np.nan,
            "seeds RaSeRec lost less": int((gaps < 0).sum()),
            "p (paired)": paired_permutation_test(kept[other].mean(axis=0), kept[raserec].mean(axis=0))}
