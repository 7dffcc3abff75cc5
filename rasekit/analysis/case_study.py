"""The case study (notebook 12): real test users, chosen by a seeded rule and never by hand, with what
RaSeRec retrieved for them, how its attention spread over those memories, and how the true next item
moved between the frozen encoder's ranking (before retrieval) and RaSeRec's (after).

The rule: the `n` users whose target moved up most, the `n` it moved down most, and `n` drawn at random
(seeded) from the others. A move is measured as the ratio of ranks, log2(before / after), not in places:
for a ranking metric a move from 20th to 1st matters far more than one from 2,000th to 1,000th."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

GROUPS = ("moved up most", "moved down most", "at random")
SHOWN_ITEMS = 10  # the last items of a sequence or prefix a table shows (the model reads up to 50)


def moves(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """log2(rank before / rank after) per instance: above 0, retrieval moved the target up."""
    return np.log2(np.asarray(before, dtype=float) / np.asarray(after, dtype=float))


def choose(before: np.ndarray, after: np.ndarray, n: int = 3, seed: int = 0) -> pd.DataFrame:
    """The chosen test instances: group, instance, rank before and after, move; ties broken by instance."""
    move, index = moves(before, after), np.arange(len(before))
    if len(move) < 3 * n:
        raise ValueError(f"{len(move)} test instances cannot give {n} per group of {GROUPS}")
    up = np.lexsort((index, -move))[:n]
    down = np.lexsort((index, move))[:n]
    rest = np.setdiff1d(index, np.concatenate([up, down]))
    drawn = np.sort(np.random.default_rng(seed).choice(rest, n, replace=False))
    rows = [(group, int(i)) for group, chosen in zip(GROUPS, (up, down, drawn)) for i in chosen]
    return pd.DataFrame({"group": [g for g, _ in rows], "instance": [i for _, i in rows],
                         "rank before": [int(before[i]) for _, i in rows],
                         "rank after": [int(after[i]) for _, i in rows],
                         "move (log2)": [float(move[i]) for _, i in rows]})


def _items(items: list[int], attributes: dict[int, list[int]] | None) -> str:
    """The last SHOWN_ITEMS items, oldest first, each with its attribute ids when the data has them."""
    shown = items[-SHOWN_ITEMS:]
    text = [f"{i} {attributes.get(i, [])}" if attributes is not None else str(i) for i in shown]
    return ("… " if len(items) > len(shown) else "") + ", ".join(text)


def case(model, instance: int, attributes: dict[int, list[int]] | None = None) -> tuple[dict, pd.DataFrame]:
    """(one row on test instance `instance` of `model`, a `rasekit.RaSeRec`: its user, its sequence, the
    target, the target's ranks before and after retrieval; its retrieved memories with their attention,
    marked where a memory's target is the user's true next item)."""
    sequence, user = model.sequence("test", instance)
    target = int(model.data.test.targets[instance])
    before, after = model.target_rank(sequence, target, user)
    memories = model.explain(sequence, user)
    memories.insert(0, "rank", np.arange(1, len(memories) + 1))
    memories["is the target"] = memories["target"] == target
    row = {"instance": instance, "user": user, "length": len(sequence), "sequence": _items(sequence, attributes),
           "target": f"{target} {attributes.get(target, [])}" if attributes is not None else str(target),
           "rank before (recomputed)": before, "rank after (recomputed)": after,
           "memories with the target": int(memories["is the target"].sum()),
           "attention on them": float(memories.loc[memories["is the target"], _last_block(memories)].sum())}
    return row, memories


def _last_block(memories: pd.DataFrame) -> str:
    """The attention column of the last cross-attention block of channel 1 (what h~ is made of)."""
    return sorted(c for c in memories.columns if c.startswith("attention_1"))[-1]


def memory_table(cases: dict[int, pd.DataFrame]) -> pd.DataFrame:
    """Every chosen instance's memories in one table, prefixes shortened to their last items."""
    frames = []
    for instance, memories in cases.items():
        shown = memories.assign(instance=instance, prefix=memories["prefix"].map(lambda p: _items(list(p), None)))
        frames.append(shown[["instance", *memories.columns]])
    return pd.concat(frames, ignore_index=True)


def figure(users: pd.DataFrame, cases: dict[int, pd.DataFrame], title: str):
    """At a glance: per chosen user, the target's rank before and after retrieval (left, log scale) and
    the attention of channel 1's last block over its K memories, most similar first (right), with a ring
    on each memory whose target is the user's true next item."""
    k = max(len(m) for m in cases.values())
    fig, (ranks, heat) = plt.subplots(1, 2, figsize=(13, 0.45 * len(users) + 1.8),
                                      gridspec_kw={"width_ratios": [1, 2.2]}, sharey=True)
    y = np.arange(len(users))
    colours = dict(zip(GROUPS, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for row, (_, u) in zip(y, users.iterrows()):
        ranks.annotate("", xy=(u["rank after"], row), xytext=(u["rank before"], row),
                       arrowprops={"arrowstyle": "->", "color": colours[u["group"]], "lw": 1.6})
        ranks.plot([u["rank before"]], [row], "o", color=colours[u["group"]], ms=4)
    ranks.set_xscale("log")
    ranks.set_xlim(0.7, max(users["rank before"].max(), users["rank after"].max()) * 1.5)
    ranks.set_xlabel("rank of the true next item, before → after")
    ranks.set_yticks(y, [f"{u['group']}: user {u['user']}" for _, u in users.iterrows()])
    ranks.invert_yaxis()
    grid = np.full((len(users), k), np.nan)
    for row, instance in zip(y, users["instance"]):
        memories = cases[instance]
        grid[row, :len(memories)] = memories[_last_block(memories)]
        hits = np.flatnonzero(memories["is the target"].to_numpy())
        heat.scatter(hits, np.full(len(hits), row), s=90, facecolors="none", edgecolors="black", lw=1.2)
    image = heat.imshow(grid, aspect="auto", cmap="viridis", interpolation="nearest")
    heat.set_xticks(range(0, k, max(1, k // 10)), [str(i + 1) for i in range(0, k, max(1, k // 10))])
    heat.grid(False)
    heat.set_xlabel("retrieved memory, 1 = most similar (ring: its target is the true next item)")
    fig.colorbar(image, ax=heat, label="attention (channel 1, last block, mean over heads)")
    fig.suptitle(title)
    fig.tight_layout()
    return fig
