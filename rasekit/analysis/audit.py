"""The benchmark audit (notebook 13): the item-transition heuristic given a fair chance, how local the
benchmarks are, and what RaSeRec adds beyond the last items.

- `tune`: the heuristic's settings chosen on the validation part by a stated grid (`GRID`), never
  reading the test part; the test then counts the validation transitions too (`valid_at_test`), as
  RaSeRec's test-time bank holds the validation memories.
- `locality`: the branching factor of the item-transition graph and how often a test target follows the
  last input item in training, or is among its most frequent successors.
- `groups`: RaSeRec against the heuristic on test users grouped by whether the target follows the last
  item in training, and by sequence length, with paired tests.
- `hybrid`: RaSeRec's score plus a weight times the heuristic's, the weight chosen on validation.

A benchmark audit of sequential recommendation argues that such data reward local transitions; these
functions measure it on the kit's datasets rather than assume it."""
from __future__ import annotations

import itertools

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from rasekit.analysis import stats
from rasekit.analysis.stats import paired_permutation_test
from rasekit.evaluate import metrics, per_user, rank_targets
from rasekit.models.baselines import ItemTransition, TransitionSettings, transition_matrix

# The tuning grid, stated once: 2 x 3 x 7 x 3 = 126 settings, each scored on the validation part.
GRID = {"normalise": (True, False),
        "hop_weights": ((1.0,), (1.0, 0.25), (1.0, 0.5)),
        "recent": ((1, 0.5), (2, 0.3), (2, 0.5), (2, 0.8), (3, 0.3), (3, 0.5), (3, 0.8)),  # (items, decay)
        "attribute_weight": (0.0, 0.1, 0.3)}
TUNED_BY = "NDCG@10"  # the validation metric the grid maximises (the kit's model selection metric family)
HYBRID_WEIGHTS = (0.0, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
LENGTH_BINS = ((1, 3), (4, 5), (6, 10), (11, 50))  # input lengths (after the cap of 50)


def grid() -> list[TransitionSettings]:
    """Every setting of `GRID`, in a fixed order."""
    return [TransitionSettings(hops=len(w), hop_weights=w, recent=r, recent_decay=d, attribute_weight=a, normalise=n)
            for n, w, (r, d), a in itertools.product(*GRID.values())]


def _components(models: dict[bool, ItemTransition], seqs: np.ndarray, lengths: np.ndarray) -> dict:
    """The parts every setting's score is a weighted sum of, for a batch: (normalise, hop weights, i) ->
    the hop-weighted scores reached from the i-th most recent item; "attributes" -> the attribute
    similarity; "tie" -> the popularity tie-break. Contiguous, so each setting costs a few additions."""
    parts, n = {}, next(iter(models.values())).n
    max_recent = max(r for r, _ in GRID["recent"])
    max_hops = max(len(w) for w in GRID["hop_weights"])
    for normalise, model in models.items():
        for i in range(max_recent):
            start = torch.zeros(len(seqs), n)
            rows = np.nonzero(lengths > i)[0]
            start[torch.as_tensor(rows), torch.as_tensor(seqs[rows, lengths[rows] - 1 - i])] = 1.0
            frontier, hops = start.t(), []
            for _ in range(max_hops):
                frontier = torch.sparse.mm(model.transitions, frontier)
                hops.append(frontier.t().contiguous())
            for weights in GRID["hop_weights"]:
                parts[(normalise, weights, i)] = sum(w * hop for w, hop in zip(weights, hops))
    model = next(iter(models.values()))
    if model.attributes is not None:
        last = torch.as_tensor(seqs[np.arange(len(seqs)), lengths - 1])
        profile = torch.index_select(model.attributes, 0, last).to_dense()
        parts["attributes"] = torch.sparse.mm(model.attributes, profile.t()).t().contiguous()
    parts["tie"] = model.tie_break.expand(len(seqs), -1).contiguous()
    return parts


def combine(parts: dict, c: TransitionSettings) -> torch.Tensor:
    """The scores of setting `c` (its hop weights one of `GRID`'s) from `_components`; equal to
    `ItemTransition.scores` up to the order of float sums."""
    scores = parts["tie"].clone()
    for i in range(c.recent):
        scores.add_(parts[(c.normalise, tuple(c.hop_weights), i)], alpha=c.recent_decay ** i)
    if c.attribute_weight and "attributes" in parts:
        scores.add_(parts["attributes"], alpha=c.attribute_weight)
    return scores


def tune(data, attributes, settings: list[TransitionSettings] | None = None, chunk: int = 256) -> pd.DataFrame:
    """The validation metrics of every setting (default: `grid()`), best first. Reads the training
    transitions and the validation part only: `data.test` is never touched."""
    settings = settings or grid()
    # `_components` reads only a model's transitions (raw or normalised), attributes (built when their
    # weight is not 0) and tie-break; the settings' weights are applied in `combine`.
    models = {n: ItemTransition(data, attributes, TransitionSettings(normalise=n, attribute_weight=1.0))
              for n in sorted({c.normalise for c in settings})}
    valid = data.valid
    ranks = np.empty((len(settings), len(valid)), dtype=np.int64)
    for lo in range(0, len(valid), chunk):
        rows = np.arange(lo, min(lo + chunk, len(valid)))
        parts = _components(models, valid.seqs[rows], valid.lengths[rows])
        for s, c in enumerate(settings):
            ranks[s, rows] = rank_targets(combine(parts, c), valid.targets[rows])
    table = pd.DataFrame([{**_described(c), **{f"valid {m}": v for m, v in metrics(r, (5, 10)).items()
                                               if not m.startswith("MRR")}} for c, r in zip(settings, ranks)])
    return table.sort_values(f"valid {TUNED_BY}", ascending=False, kind="stable").reset_index(drop=True)


def _described(c: TransitionSettings) -> dict:
    return {"normalise": c.normalise, "hop_weights": str(list(c.hop_weights)), "recent": c.recent,
            "recent_decay": c.recent_decay if c.recent > 1 else None, "attribute_weight": c.attribute_weight}


def chosen(tuned: pd.DataFrame) -> dict:
    """The best setting of `tune`'s table, as the `transition` changes of a baseline run (with the
    validation transitions counted at test time)."""
    best = tuned.iloc[0]
    weights = tuple(float(w) for w in best["hop_weights"].strip("[]").split(","))
    return {"hops": len(weights), "hop_weights": weights, "recent": int(best["recent"]),
            "recent_decay": float(best["recent_decay"]) if best["recent"] > 1 else 0.5,
            "attribute_weight": float(best["attribute_weight"]), "normalise": bool(best["normalise"]),
            "valid_at_test": True}


def _successor_ranks(data) -> tuple[np.ndarray, np.ndarray]:
    """The training transitions as sorted pair codes (from * (n + 1) + to) and each pair's rank among its
    source item's successors by count (1 = most frequent; ties share the better rank)."""
    counts = transition_matrix(data, normalise=False)
    frm, to = counts.indices().numpy()
    value = counts.values().numpy()
    order = np.lexsort((-value, frm))  # by source, most frequent successor first
    frm, to, value = frm[order], to[order], value[order]
    position = np.arange(len(frm))
    new_source = np.r_[True, frm[1:] != frm[:-1]]
    new_count = new_source | np.r_[True, value[1:] != value[:-1]]
    rank = (np.maximum.accumulate(np.where(new_count, position, 0))
            - np.maximum.accumulate(np.where(new_source, position, 0)) + 1)
    codes = frm * (data.n_items + 1) + to
    sort = np.argsort(codes)
    return codes[sort], rank[sort]


def follows(data, part: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """Per instance of `part`: whether its target followed its last input item in the training part, and
    the target's rank among that item's training successors (0 where it never followed it)."""
    codes, rank = _successor_ranks(data)
    inst = getattr(data, part)
    last = inst.seqs[np.arange(len(inst)), inst.lengths - 1]
    wanted = last * (data.n_items + 1) + inst.targets
    at = np.minimum(np.searchsorted(codes, wanted), len(codes) - 1)
    found = codes[at] == wanted
    return found, np.where(found, rank[at], 0)


def locality(data, tops=(1, 5, 10)) -> dict:
    """How local a dataset's test targets are: the transition graph's branching factor and the shares of
    test targets that follow the last input item in training, or are among its `tops` successors."""
    counts = transition_matrix(data, normalise=False)
    out_degree = np.bincount(counts.indices()[0].numpy(), minlength=data.n_items + 1)[1:]
    found, rank = follows(data)
    inst = data.test
    last = inst.seqs[np.arange(len(inst)), inst.lengths - 1]
    row = {"items": data.n_items, "transition pairs": int(counts.values().numel()),
           "branching factor (mean)": float(out_degree[out_degree > 0].mean()),
           "branching factor (median)": float(np.median(out_degree[out_degree > 0])),
           "share of last items without successor %": 100 * float((out_degree[last - 1] == 0).mean()),
           "share of targets following the last item %": 100 * float(found.mean())}
    row |= {f"share of targets among its top {k} successors %": 100 * float((found & (rank <= k)).mean())
            for k in tops}
    return row


def _groups(data) -> dict[str, np.ndarray]:
    """Test instances grouped by whether the target follows the last item in training, and by length."""
    found, _ = follows(data)
    out = {"target follows the last item": found, "target never followed it": ~found}
    for lo, hi in LENGTH_BINS:
        out[f"length {lo}-{hi}"] = (data.test.lengths >= lo) & (data.test.lengths <= hi)
    return out


def groups(data, model_ranks: list[np.ndarray], heuristic_ranks: np.ndarray, metric: str = "NDCG@10",
           model: str = "RaSeRec") -> pd.DataFrame:
    """`model` (its per-user metric averaged over seeds) against the heuristic in each group of
    `_groups`, paired over the group's test users."""
    mine = np.mean([per_user(r, metric) for r in model_ranks], axis=0)
    theirs = per_user(heuristic_ranks, metric)
    rows = []
    for name, members in _groups(data).items():
        if not members.any():
            continue
        a, b = theirs[members], mine[members]
        rows.append({"group": name, "instances": int(members.sum()), "share %": 100 * float(members.mean()),
                     "seeds": len(model_ranks), f"heuristic {metric}": float(a.mean()),
                     f"{model} {metric}": float(b.mean()),
                     f"{model} vs heuristic %": 100 * (b.mean() - a.mean()) / a.mean() if a.mean() else np.nan,
                     "p (paired)": paired_permutation_test(a, b)})
    return pd.DataFrame(rows)


@torch.no_grad()
def _hybrid_ranks(tasks: list, heuristic: ItemTransition, part: str, weights, chunk: int) -> np.ndarray:
    """Ranks [seed, weight, instance] of RaSeRec's scores plus each weight times the heuristic's, on `part`
    (each task's scores of the validation part come from its training bank, as in training)."""
    inst = tasks[0].instances(part)
    ranks = np.empty((len(tasks), len(weights), len(inst)), dtype=np.int64)
    for lo in range(0, len(inst), chunk):
        rows = np.arange(lo, min(lo + chunk, len(inst)))
        extra = heuristic.scores(inst.seqs[rows], inst.lengths[rows])
        for t, task in enumerate(tasks):
            own = task.scores(part, rows).float().cpu()
            for w, weight in enumerate(weights):
                ranks[t, w, rows] = rank_targets(own + weight * extra, inst.targets[rows])
    return ranks


def hybrid(tasks: list, heuristics: tuple[ItemTransition, ItemTransition], weights=HYBRID_WEIGHTS,
           metric: str = "NDCG@10", chunk: int = 256) -> tuple[pd.DataFrame, list[np.ndarray], list[np.ndarray]]:
    """RaSeRec plus a weight times the heuristic, one weight per seed chosen on validation by `metric`.
    `tasks`: the RaSeRec runs' tasks (`loading.stage2_task`); `heuristics`: the heuristic scoring the
    validation part (training transitions) and the test part. Returns (per seed: the chosen weight and
    the validation metric at each weight; RaSeRec's test ranks; the hybrid's test ranks)."""
    if 0.0 not in weights:
        raise ValueError(f"weights {weights} must include 0 (RaSeRec itself)")
    valid = _hybrid_ranks(tasks, heuristics[0], "valid", weights, chunk)
    scored = np.array([[per_user(r, metric).mean() for r in seed] for seed in valid])  # [seed, weight]
    best = scored.argmax(1)
    test_weights = sorted({0.0, *(weights[b] for b in best)})
    test = _hybrid_ranks(tasks, heuristics[1], "test", test_weights, chunk)
    plain = [test[t, test_weights.index(0.0)] for t in range(len(tasks))]
    mixed = [test[t, test_weights.index(weights[b])] for t, b in enumerate(best)]
    table = pd.DataFrame([{"seed": task.seed, "chosen weight": weights[b],
                           **{f"valid {metric} at {w:g}": v for w, v in zip(weights, row)}}
                          for task, b, row in zip(tasks, best, scored)])
    return table, plain, mixed


def against(named: dict[str, list[dict]], reference: str, user_ranks, metrics=("HR@10", "NDCG@5", "NDCG@10"),
            metric: str = "NDCG@10") -> pd.DataFrame:
    """Each model of `named` (name -> its runs on one dataset) with its mean and spread over seeds, and
    `metric` against the model `reference`, paired over users."""
    rows = []
    for name, records in named.items():
        row = {"model": name, "seeds": len(records)}
        for m in metrics:
            values = np.array([r["metrics"][m] for r in records])
            row |= {m: values.mean(), f"{m} std": stats.spread(values)}
        if name != reference:
            pair = stats.paired(named[reference], records, metric, user_ranks)
            row |= {f"{metric} vs {reference} %": pair["improvement %"], "p (paired)": pair["p (paired)"]}
        rows.append(row)
    return pd.DataFrame(rows)


def history_table(kept: dict[tuple[str, object], list[dict]], metric: str = "NDCG@10") -> pd.DataFrame:
    """(model, last items kept or "all") -> runs: the metric's mean and spread over seeds, and its share of
    the same model's metric on whole inputs."""
    rows = []
    for (model, last), records in kept.items():
        values = np.array([r["metrics"][metric] for r in records])
        whole = np.mean([r["metrics"][metric] for r in kept[(model, "all")]])
        rows.append({"model": model, "last items": str(last), "seeds": len(records), metric: values.mean(),
                     f"{metric} std": stats.spread(values), f"share of all items' {metric} %": 100 * values.mean() / whole})
    return pd.DataFrame(rows)


def hybrid_rows(table: pd.DataFrame, plain: list[np.ndarray], mixed: list[np.ndarray],
                metric: str = "NDCG@10") -> pd.DataFrame:
    """Per seed and over all seeds: RaSeRec and the hybrid on the test part, paired over users."""
    rows = []
    for seed, weight, a, b in zip(table["seed"], table["chosen weight"], plain, mixed):
        rows.append(_pair_row(f"seed {seed}", 1, weight, per_user(a, metric), per_user(b, metric), metric))
    a = np.mean([per_user(r, metric) for r in plain], axis=0)
    b = np.mean([per_user(r, metric) for r in mixed], axis=0)
    rows.append(_pair_row("all seeds", len(plain), np.nan, a, b, metric))
    return pd.DataFrame(rows)


def _pair_row(name: str, seeds: int, weight: float, a: np.ndarray, b: np.ndarray, metric: str) -> dict:
    return {"seeds of": name, "seeds": seeds, "chosen weight": weight, f"RaSeRec {metric}": a.mean(),
            f"hybrid {metric}": b.mean(), "hybrid vs RaSeRec %": 100 * (b.mean() / a.mean() - 1),
            "p (paired)": paired_permutation_test(a, b)}


def history_figure(history: pd.DataFrame, heuristic: dict[str, float], metric: str = "NDCG@10"):
    """Per dataset: the metric against the last items kept, a line per model with its spread over
    seeds, and the tuned heuristic (which reads at most the last three items) as a dashed line."""
    names = list(dict.fromkeys(history["dataset"]))
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.4), squeeze=False)
    for ax, name in zip(axes[0], names):
        mine = history[history["dataset"] == name]
        for model, rows in mine.groupby("model", sort=False):
            ax.errorbar(rows["last items"], rows[metric], yerr=rows[f"{metric} std"], marker="o", capsize=3,
                        label=model)
        ax.axhline(heuristic[name], ls="--", color="grey", label="heuristic, tuned")
        ax.set(title=name, xlabel="last items of the input kept", ylabel=f"test {metric}")
    axes[0][0].legend()
    fig.tight_layout()
    return fig


def groups_figure(table: pd.DataFrame, metric: str = "NDCG@10", model: str = "RaSeRec"):
    """Per dataset: the model and the heuristic side by side in each group of test users."""
    names = list(dict.fromkeys(table["dataset"]))
    fig, axes = plt.subplots(1, len(names), figsize=(4.6 * len(names), 3.8), squeeze=False)
    for ax, name in zip(axes[0], names):
        mine = table[table["dataset"] == name].reset_index(drop=True)
        x = np.arange(len(mine))
        ax.bar(x - 0.2, mine[f"heuristic {metric}"], 0.4, label="heuristic, tuned", color="grey")
        ax.bar(x + 0.2, mine[f"{model} {metric}"], 0.4, label=model)
        ax.set_xticks(x, [f"{g}\n({s:.0f}%)" for g, s in zip(mine["group"], mine["share %"])], rotation=35,
                      ha="right", fontsize=8)
        ax.set(title=name, ylabel=f"test {metric}")
    axes[0][0].legend()
    fig.tight_layout()
    return fig
