"""The trained RaSeRec as one object to hold: the frozen encoder, its memory bank and the trained
Retrieval-Augmented Module (docs/method.md §5-7), loaded from a run of the user's own or of the reference.

    from rasekit import RaSeRec
    model = RaSeRec.load(dataset="Beauty", seed=1)       # or RaSeRec.load("0579f5fcc6432e4f")
    model.recommend([[12, 7, 301]], k=10)                # the next items of raw item sequences
    model.retrieve([12, 7, 301])                         # the K memories it reads, with their prefixes
    model.explain([12, 7, 301])                          # the attention of each channel over them
    model.target_rank([12, 7, 301], target=55)          # its rank before and after retrieval
    model.evaluate("test")                               # ranks and metrics, as the run recorded them

Sequences are lists of the dataset's item ids (1..n_items, oldest first); as in training, only the last
50 items are read. A sequence of a known user may name that user, so that the same-user filter applies
(a prefix never retrieves its own user's same or later prefixes); a new user's retrieves from everyone.
`Encoder` holds a stage-1 model alone and recommends from it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from rasekit.evaluate import metrics, target_ranks
from rasekit.runs import experiments, loading, profiles
from rasekit.settings import SettingsError, integer
from rasekit.stages.loop import evaluate_part

NEW_USER = -1  # no memory belongs to it, so the same-user filter keeps every memory


@dataclass(frozen=True)
class Recommendations:
    """The top-k items of each sequence, best first, and their scores (inner products with h~)."""
    items: np.ndarray   # int64 [n, k]
    scores: np.ndarray  # float32 [n, k]


def as_batch(sequences, n_items: int, max_len: int) -> tuple[torch.Tensor, np.ndarray]:
    """Raw item sequences (one list, or a list of lists) as left-aligned, zero-padded prefixes
    [n, max_len] of their last `max_len` items, and their lengths; an unknown item is refused by name."""
    if len(sequences) and np.isscalar(sequences[0]):
        sequences = [sequences]
    if not len(sequences):
        raise SettingsError("sequences=[] is not allowed: expected at least one sequence of item ids")
    seqs = np.zeros((len(sequences), max_len), dtype=np.int64)
    lengths = np.zeros(len(sequences), dtype=np.int64)
    for row, sequence in enumerate(sequences):
        items = [integer(f"item of sequence {row}", item, 1, n_items) for item in sequence]
        if not items:
            raise SettingsError(f"sequence {row} is empty: expected at least one item id")
        items = items[-max_len:]
        seqs[row, :len(items)], lengths[row] = items, len(items)
    return torch.as_tensor(seqs), lengths


def top_items(scores: torch.Tensor, k: int, sequences: torch.Tensor | None = None) -> Recommendations:
    """The k best items of each row of `scores` [n, n_items + 1]: never the padding id 0, and not the
    items of `sequences` when given."""
    scores = scores.detach().clone()
    scores[:, 0] = -torch.inf
    if sequences is not None:
        scores.scatter_(1, sequences, -torch.inf)
    k = integer("k", k, 1, scores.shape[1] - 1)
    top = torch.topk(scores, k, dim=1)
    return Recommendations(top.indices.cpu().numpy(), top.values.float().cpu().numpy())


class Encoder:
    """A trained stage-1 model (SASRec, DuoRec, CL4SRec, GRU4Rec) and the data it was trained on."""

    def __init__(self, module, data, record: dict | None = None):
        self.module, self.data, self.record = module, data, record

    @classmethod
    def load(cls, key: str | None = None, *, dataset: str = "Beauty", seed: int = 1, backbone: str = "duorec",
             profile: str = "full", device=None) -> "Encoder":
        """A stage-1 run by its key, or by dataset, backbone (duorec, sasrec, cl4srec, gru4rec) and seed."""
        key = key or loading.stage1_key(dataset, backbone, seed, profile)
        record, root = loading.locate(key)
        if record["stage"] != "pretrain":
            raise SettingsError(f"run {key} is a {record['stage']} run; Encoder.load takes a stage-1 run")
        module = loading.stage1_encoder(record, root, device)
        return cls(module, experiments.load_data(record["config"], profiles.get(record["profile"])), record)

    def represent(self, sequences) -> tuple[torch.Tensor, torch.Tensor]:
        """(h: the representation [n, d] of each raw item sequence, the sequences as a padded batch)."""
        seqs, lengths = as_batch(sequences, self.data.n_items, self.data.train.seqs.shape[1])
        device = self.module.item_weights().device
        with torch.no_grad():
            return self.module(seqs.to(device), torch.as_tensor(lengths, device=device)), seqs.to(device)

    def recommend(self, sequences, k: int = 10, exclude_seen: bool = False) -> Recommendations:
        """The k best next items of each raw item sequence (all items ranked, as in the evaluation)."""
        h, seqs = self.represent(sequences)
        with torch.no_grad():
            scores = h @ self.module.item_weights().T
        return top_items(scores, k, seqs if exclude_seen else None)


class RaSeRec:
    """A trained RaSeRec: the frozen encoder, its memory bank (train and validation memories, as at test
    time) and the trained RAM. Built from a run's stage-2 task (`rasekit.stages.finetuning.RaSeRecTask`)."""

    def __init__(self, task, record: dict | None = None):
        task.before_test()
        self.task, self.record = task, record

    @classmethod
    def load(cls, key: str | None = None, *, dataset: str = "Beauty", seed: int = 1, backbone: str = "duorec",
             profile: str = "full", ram: dict | None = None, device=None) -> "RaSeRec":
        """A stage-2 run by its key, or by dataset, backbone, seed and the RAM settings it changed from the
        official ones (e.g. ram={"k": 40}), from your runs or the reference; its files are checked against
        their sha256. A run recorded without weights raises `MissingWeights` naming the command that
        trains it."""
        key = key or loading.stage2_key(dataset, backbone, seed, profile, ram)
        record, root = loading.locate(key)
        if record["stage"] != "finetune":
            raise SettingsError(f"run {key} is a {record['stage']} run; RaSeRec.load takes a stage-2 run "
                                f"(Encoder.load takes a stage-1 run)")
        return cls(loading.stage2_task(record, root, device), record)

    @property
    def encoder(self):
        return self.task.encoder

    @property
    def bank(self):
        return self.task.bank

    @property
    def ram(self):
        return self.task.model

    @property
    def data(self):
        return self.task.data

    def sequence(self, part: str = "test", row: int = 0) -> tuple[list[int], int]:
        """(the raw item sequence, the user) of instance `row` of a part of the run's data: an example to
        ask the model about."""
        inst = getattr(self.data, part)
        return inst.seqs[row, :inst.lengths[row]].tolist(), int(inst.users[row])

    def _retrieved(self, sequences, users):
        """(h, the retrieved memories, the padded sequences) of raw sequences of `users` (None: new users)."""
        seqs, lengths = as_batch(sequences, self.data.n_items, self.data.train.seqs.shape[1])
        users = np.full(len(lengths), NEW_USER) if users is None else np.atleast_1d(np.asarray(users))
        if len(users) != len(lengths):
            raise SettingsError(f"users has {len(users)} entries for {len(lengths)} sequences")
        device = self.task.device
        with torch.no_grad():
            h = self.encoder(seqs.to(device), torch.as_tensor(lengths, device=device))
        return h, self.task.search(h.cpu(), users, lengths, stream=3), seqs.to(device)

    def recommend(self, sequences, k: int = 10, users=None, exclude_seen: bool = False) -> Recommendations:
        """The k best next items of each raw item sequence: h~ = RAM(h, its K memories) scored against
        every item, as in the evaluation. `users`: the sequences' users, if known (same-user filter)."""
        h, found, seqs = self._retrieved(sequences, users)
        with torch.no_grad():
            scores = self.task.augment(h, found) @ self.task.items.T
        return top_items(scores, k, seqs if exclude_seen else None)

    def retrieve(self, sequence, user: int | None = None) -> pd.DataFrame:
        """The K memories one sequence reads, most similar first: the memory's user, its prefix (the last
        items, oldest first), the prefix's length, its target item, its cosine similarity to the query,
        and whether it comes from the training or the validation part."""
        _, found, _ = self._retrieved([list(sequence)], None if user is None else [user])
        return self._memories(found)

    def _memories(self, found) -> pd.DataFrame:
        """The table of `retrieve` for the first query's retrieved memories `found`."""
        ids = found.ids[0][found.mask[0]]
        bank = self.bank
        parts = {tag: getattr(self.data, tag) for tag in np.unique(bank.tags[ids])}
        prefixes = [parts[tag].seqs[row][:length].tolist()
                    for tag, row, length in zip(bank.tags[ids], bank.rows[ids], bank.lengths[ids])]
        return pd.DataFrame({"memory": ids, "user": bank.users[ids], "prefix": prefixes,
                             "prefix_length": bank.lengths[ids], "target": bank.targets[ids],
                             "similarity": found.sims[0][found.mask[0]], "part": bank.tags[ids]})

    def explain(self, sequence, user: int | None = None) -> pd.DataFrame:
        """`retrieve`'s memories with the attention each cross-attention block of the RAM gives them
        (mean over heads, before dropout): 1a and 1b for channel 1 (keys = the memories' representations),
        2a and 2b for channel 2 when it is used (beta < 1). `attrs` holds alpha and beta."""
        h, found, _ = self._retrieved([list(sequence)], None if user is None else [user])
        with torch.no_grad():
            _, attention = self.task.augment(h, found, return_attention=True)
        table = self._memories(found)
        keep = found.mask[0]
        for block, probs in attention.items():
            table[f"attention_{block}"] = probs[0].mean(0).cpu().numpy()[keep]
        table.attrs.update(alpha=float(self.ram.alpha), beta=float(self.ram.beta))
        return table

    def target_rank(self, sequence, target: int, user: int | None = None) -> tuple[int, int]:
        """(the rank of `target` among all items before retrieval, from h alone as the frozen encoder
        scores it; its rank after, from h~), ties counted against the target as in the evaluation."""
        target = integer("target", target, 1, self.data.n_items)
        h, found, _ = self._retrieved([list(sequence)], None if user is None else [user])
        with torch.no_grad():
            before, after = h @ self.task.items.T, self.task.augment(h, found) @ self.task.items.T
        targets = np.array([target])
        return (int(target_ranks(lambda _: before, targets)[0]), int(target_ranks(lambda _: after, targets)[0]))

    def evaluate(self, part: str = "test") -> tuple[np.ndarray, dict]:
        """(the rank of each instance's target among all items, the metrics) on the valid or test part,
        as the run's own evaluation computes them."""
        if part not in ("valid", "test"):
            raise SettingsError(f"part={part!r} is not allowed: expected 'valid' or 'test'")
        ranks = evaluate_part(self.task, part, chunk=1024)
        return ranks, metrics(ranks)
