"""The dynamic-memory study (notebook 11): is a bank update worth what retraining is?

Models trained on older data (`rasekit.data.held_out`: each user's last h interactions held out, or a
share of users left out) are tested on the full data's test items, with the full data's inputs (the
newer interactions are read as input; no weight ever changes), under:
- **no update**: the bank as trained (the older data's training and validation memories);
- **bank update**: the interactions the older bank lacks enter it as new memories, keyed by the frozen
  encoder, then the same test;
- **retraining**: the official runs, trained on everything (the full data's test-time bank);
- **the backbone alone**: the older data's DuoRec, with the same newer inputs.
The share of retraining's gain that the update recovers is (update - no update) / (retraining - no
update), per metric."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from rasekit.analysis.stats import paired_permutation_test
from rasekit.data.protocol import Instances, SplitData
from rasekit.evaluate import per_user, target_ranks
from rasekit.memory.bank import Retrieved, encode_instances

CONDITIONS = ("backbone alone", "no update", "bank update", "retraining")


def _joined(parts: list[Instances]) -> Instances:
    return Instances(*(np.concatenate([getattr(p, f) for p in parts])
                       for f in ("seqs", "lengths", "targets", "users", "steps")))


def new_instances(full: SplitData, older: SplitData) -> Instances:
    """The full data's training and validation instances (prefix -> next item) whose (user, target
    position) the older data's bank does not hold: what a bank update adds."""
    width = int(max(full.train.steps.max(), full.valid.steps.max())) + 1
    held = _joined([older.train, older.valid])
    pool = _joined([full.train, full.valid])
    fresh = ~np.isin(pool.users * width + pool.steps, held.users * width + held.steps)
    return pool.subset(np.flatnonzero(fresh))


def update_bank(task, instances: Instances) -> None:
    """Enter `instances` into `task`'s test-time bank as new memories (keys from the frozen encoder,
    values the targets' item embeddings), as the test-time bank grows by the validation pairs."""
    if not len(instances):
        return
    keys, = encode_instances(task.encoder, [instances], task.batch_size, task.device)
    task.grow(keys, instances, "update")


@torch.no_grad()
def test_ranks(task, full: SplitData, chunk: int = 1024) -> np.ndarray:
    """Ranks of the full data's test targets by RaSeRec `task` (trained on older data), its bank as it
    is now, reading the full inputs."""
    test = full.test
    h, = encode_instances(task.encoder, [test], task.batch_size, task.device)
    found = task.search(h, test.users, test.lengths, stream=3)

    def scores(index: np.ndarray) -> torch.Tensor:
        part = Retrieved(found.ids[index], found.sims[index], found.mask[index])
        return task.augment(h[torch.as_tensor(index)], part) @ task.items.T
    return target_ranks(scores, test.targets, chunk)


@torch.no_grad()
def backbone_ranks(encoder, full: SplitData, chunk: int = 1024) -> np.ndarray:
    """Ranks of the full data's test targets by a stage-1 encoder alone, reading the full inputs."""
    test = full.test
    h, = encode_instances(encoder, [test], 1024)
    items = encoder.item_weights().detach().float().cpu()
    return target_ranks(lambda index: h[torch.as_tensor(index)] @ items.T, test.targets, chunk)


def table(ranks: dict[str, list[np.ndarray]], members: np.ndarray | None = None,
          metrics=("HR@10", "NDCG@10")) -> pd.DataFrame:
    """One row per condition (`CONDITIONS`, its ranks per seed): the metric over seeds on the test users
    in `members` (default: all), then the bank update against no update and the share of retraining's
    gain it recovers, paired over users (each user's metric averaged over seeds)."""
    members = np.ones(len(next(iter(ranks.values()))[0]), bool) if members is None else members
    user = {c: {m: np.mean([per_user(r, m)[members] for r in rs], axis=0) for m in metrics}
            for c, rs in ranks.items()}
    rows = [{"condition": c, "seeds": len(ranks[c]), "users": int(members.sum()),
             **{m: float(user[c][m].mean()) for m in metrics}} for c in CONDITIONS if c in ranks]
    out = pd.DataFrame(rows)
    for m in metrics:
        if {"no update", "bank update", "retraining"} <= ranks.keys():
            none, update, again = (user[c][m].mean() for c in ("no update", "bank update", "retraining"))
            out.loc[out["condition"] == "bank update", f"{m} recovered %"] = (
                100 * (update - none) / (again - none) if again != none else np.nan)
            out.loc[out["condition"] == "bank update", f"p {m} vs no update"] = paired_permutation_test(
                user["no update"][m], user["bank update"][m])
            out.loc[out["condition"] == "bank update", f"p {m} vs retraining"] = paired_permutation_test(
                user["retraining"][m], user["bank update"][m])
    return out


def new_user_members(full: SplitData, older: SplitData) -> np.ndarray:
    """Which of the full data's test users the older data left out entirely."""
    return ~np.isin(full.test.users, np.concatenate([older.train.users, older.valid.users, older.test.users]))


def scenario(older: list[dict], official: list[dict], full: SplitData, new_users: bool = False) -> pd.DataFrame:
    """`table` of one scenario: the older data's RaSeRec runs (one per seed, with their weights) tested
    with no update, with the bank update and as the backbone alone, beside the official runs of the same
    seeds (retraining); on the left-out users only when `new_users`."""
    from rasekit.runs import experiments, loading

    ranks = {c: [] for c in CONDITIONS}
    members = None
    for run, again in zip(older, official):
        task = loading.stage2_task(*loading.locate(run["key"]))
        ranks["backbone alone"].append(backbone_ranks(task.encoder, full))
        ranks["no update"].append(test_ranks(task, full))
        update_bank(task, new_instances(full, task.data))
        ranks["bank update"].append(test_ranks(task, full))
        ranks["retraining"].append(experiments.ranks(again))
        members = new_user_members(full, task.data) if new_users else None
    return table(ranks, members)


def figure(results: pd.DataFrame, metric: str = "NDCG@10"):
    """Per dataset: the metric of each condition in each scenario, bars side by side."""
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(results["dataset"]))
    fig, axes = plt.subplots(1, len(names), figsize=(5.2 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names):
        mine = results[results["dataset"] == name]
        scenarios = list(dict.fromkeys(mine["scenario"]))
        x, width = np.arange(len(scenarios)), 0.8 / len(CONDITIONS)
        for i, condition in enumerate(CONDITIONS):
            values = [mine[(mine["scenario"] == s) & (mine["condition"] == condition)][metric].mean() for s in scenarios]
            ax.bar(x + (i - 1.5) * width, values, width, label=condition)
        ax.set_xticks(x, scenarios)
        ax.set(title=name, ylabel=f"test {metric}", xlabel="held out at training")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return fig
