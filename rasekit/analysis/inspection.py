"""Case-study helpers: what one instance retrieved, and how the RAM attended to it."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from rasekit.stages.finetuning import RaSeRecTask


@torch.no_grad()
def inspect(task: RaSeRecTask, part: str, index: int) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """The retrieved memories of instance `index` of `part` ('train', 'valid' or 'test').

    Returns a DataFrame with one row per real memory, in retrieval order (rank 1 = most similar):
    memory id, user, split tag, prefix length, prefix items, target item, cosine similarity, whether it
    belongs to the query's own user, and the attention weight of every head of every evaluated CA
    block (columns 'attn_1a_h0', ...); and the attention weights as arrays [n_heads, K] per block
    ('1a', '1b' = channel 1, first and second CA; '2a', '2b' = channel 2 when it is evaluated).
    Masked slots (fewer than K memories survived the filter) are left out of the DataFrame.
    """
    if part == "test":
        task.before_test()
    was_training = task.model.training
    task.model.eval()  # the weights without dropout
    _, attention = task.augmented(part, np.array([index]), return_attention=True)
    task.model.train(was_training)
    found = task.retrieved[part]
    ids, sims, mask = found.ids[index], found.sims[index], found.mask[index]
    query_user = task.instances(part).users[index]
    bank = task.bank
    rows = []
    for rank, (m, sim) in enumerate(zip(ids[mask], sims[mask]), start=1):
        source = task.instances(str(bank.tags[m]))
        r, length = bank.rows[m], int(bank.lengths[m])
        rows.append({"rank": rank, "memory": int(m), "user": int(bank.users[m]), "tag": str(bank.tags[m]),
                     "length": length, "prefix": source.seqs[r, :length].tolist(),
                     "target": int(bank.targets[m]), "similarity": float(sim),
                     "own_user": bool(bank.users[m] == query_user)})
    frame = pd.DataFrame(rows)
    weights = {block: a[0].cpu().numpy() for block, a in attention.items()}
    for block, a in weights.items():
        for head in range(a.shape[0]):
            frame[f"attn_{block}_h{head}"] = a[head][mask] if len(frame) else []
    return frame, weights


def query_summary(task: RaSeRecTask, part: str, index: int) -> dict:
    """The query instance itself: user, prefix items, target, and the target's rank with and without
    retrieval augmentation (1-based, among all real items, ties counted against the target)."""
    inst = task.instances(part)
    length = int(inst.lengths[index])
    was_training = task.model.training
    task.model.eval()
    with torch.no_grad():
        augmented = task.scores(part, np.array([index]))[0]
        plain = task.queries[part][index] @ task.items.T
    task.model.train(was_training)
    target = int(inst.targets[index])

    def rank(scores):
        others = torch.cat([scores[1:target], scores[target + 1:]])  # padding 0 left out
        return int((others >= scores[target]).sum()) + 1

    return {"user": int(inst.users[index]), "prefix": inst.seqs[index, :length].tolist(), "target": target,
            "rank_with_retrieval": rank(augmented), "rank_without_retrieval": rank(plain)}
