"""The memory bank of stage 2: (user representation of a prefix -> embedding of its next item) pairs,
indexed with FAISS and searched with the official same-user filter.

Facts from the official code (docs/method.md §5.1-5.4):
* key = the frozen encoder's raw (un-normalised) representation of a training prefix, value = the item
  embedding of its target; metadata = user and prefix length after the 50-cap;
* the index holds L2-normalised copies of the keys (inner product = cosine): IVF-Flat, nlist 128, nprobe 1;
* a query fetches 4K candidates, keeps memory m iff user_m != user_q or length_m < length_q, then the
  first K survivors in similarity order;
* the test-time bank is train + validation pairs, with the IVF retrained on all of them.

Additions of the kit: empty slots (fewer than K survivors, or FAISS -1 ids) are masked rather than read
as garbage, an exact and an HNSW index, growth without a rebuild, and partitions for ablations.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import faiss
import numpy as np
import torch
from torch import nn

from rasekit.data import Instances
from rasekit.settings import INDEX_KINDS, SettingsError

MIN_POINTS_PER_LIST = 39  # FAISS warns below 39 training points per IVF list


# --------------------------------------------------------------------------------------------------
# Encoding prefixes with a frozen encoder
# --------------------------------------------------------------------------------------------------

def _batches(lengths: np.ndarray, batch_size: int, trim: bool, multiple: int, max_width: int):
    """(rows, width) per batch. With `trim`, rows go in order of length and each batch is cut to its
    longest prefix rounded up to `multiple` (few distinct shapes keep the CPU kernels warm): with
    left-aligned sequences and a causal encoder the padding never reaches a real position, so this only
    saves work. The order is fixed, so results are deterministic."""
    order = np.argsort(lengths, kind="stable") if trim else np.arange(len(lengths))
    for lo in range(0, len(order), batch_size):
        rows = order[lo:lo + batch_size]
        width = min(max_width, multiple * math.ceil(int(lengths[rows].max()) / multiple)) if trim else max_width
        yield rows, width


@contextmanager
def _frozen(encoder: nn.Module):
    """Eval mode (no dropout) and no gradient; the encoder's mode is restored afterwards."""
    was_training = encoder.training
    encoder.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        encoder.train(was_training)


def encode(encoder: nn.Module, seqs: np.ndarray, lengths: np.ndarray, batch_size: int = 1024,
           device: str | torch.device | None = None, trim: bool = True, multiple: int = 8) -> torch.Tensor:
    """Representations [N, d] (float32, CPU) of left-aligned prefixes; one forward pass per batch."""
    device = torch.device(device) if device is not None else _device_of(encoder)
    lengths = np.asarray(lengths)
    out = torch.empty(len(lengths), encoder.hidden_size)
    with _frozen(encoder):
        for rows, width in _batches(lengths, batch_size, trim, multiple, seqs.shape[1]):
            batch = torch.as_tensor(seqs[rows, :width], device=device)
            out[torch.as_tensor(rows)] = encoder(batch, torch.as_tensor(lengths[rows], device=device)).float().cpu()
    return out


def encode_instances(encoder: nn.Module, parts: list[Instances], batch_size: int = 1024,
                     device: str | torch.device | None = None, share_prefixes: bool = True) -> list[torch.Tensor]:
    """Representations of every instance of each part (e.g. train, valid, test).

    With `share_prefixes` (and an encoder with `all_positions`), instances that are real prefixes of a
    user's sequence (not cut by the length cap) are read off one pass over that user's longest such
    prefix: a causal encoder gives every prefix's representation at its last position. On Beauty this
    encodes about 26k sequences instead of 176k. Capped (sliding-window) instances, and instances that
    are not prefixes of their user's longest one (noisy copies, `rasekit.data.noise`), are encoded alone.
    """
    seqs = np.concatenate([p.seqs for p in parts])
    lengths = np.concatenate([p.lengths for p in parts])
    users = np.concatenate([p.users for p in parts])
    whole = np.concatenate([p.steps for p in parts]) == lengths  # prefix starts at the user's first item
    if not (share_prefixes and hasattr(encoder, "all_positions")):
        whole[:] = False
    out = torch.empty(len(lengths), encoder.hidden_size)
    alone, shared = np.nonzero(~whole)[0], np.nonzero(whole)[0]
    if len(shared):
        order = shared[np.lexsort((-lengths[shared], users[shared]))]  # by user, longest first
        agrees = _prefixes_of_carrier(seqs, lengths, users, order)
        alone, order = np.concatenate([alone, order[~agrees]]), order[agrees]
        out[torch.as_tensor(order)] = _encode_shared(encoder, seqs, lengths, users, order, batch_size, device)
    if len(alone):
        out[torch.as_tensor(alone)] = encode(encoder, seqs[alone], lengths[alone], batch_size, device)
    bounds = np.cumsum([0] + [len(p) for p in parts])
    return [out[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def _prefixes_of_carrier(seqs, lengths, users, order) -> np.ndarray:
    """For instances `order` (grouped by user, longest first): whether each is a prefix of its user's
    first instance, the carrier."""
    starts = np.nonzero(np.r_[True, users[order][1:] != users[order][:-1]])[0]
    carriers = np.repeat(order[starts], np.diff(np.r_[starts, len(order)]))
    real = np.arange(seqs.shape[1]) < lengths[order][:, None]
    return (~real | (seqs[order] == seqs[carriers])).all(axis=1)


def _encode_shared(encoder, seqs, lengths, users, order, batch_size, device) -> torch.Tensor:
    """Representations of the prefix instances `order` (grouped by user, longest first), one
    `all_positions` pass over each user's first (longest) instance, the carrier."""
    device = torch.device(device) if device is not None else _device_of(encoder)
    starts = np.nonzero(np.r_[True, users[order][1:] != users[order][:-1]])[0]
    sizes = np.diff(np.r_[starts, len(order)])
    carriers = order[starts]
    out = torch.empty(len(order), encoder.hidden_size)
    with _frozen(encoder):
        for rows, width in _batches(lengths[carriers], batch_size, True, 8, seqs.shape[1]):
            batch = torch.as_tensor(seqs[carriers[rows], :width], device=device)
            reps = encoder.all_positions(batch, torch.as_tensor(lengths[carriers[rows]], device=device))
            # the members of these carriers: positions starts[c] .. starts[c] + sizes[c] - 1 of `order`
            counts = sizes[rows]
            local = np.repeat(np.arange(len(rows)), counts)
            members = np.repeat(starts[rows], counts) + np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
            at = torch.as_tensor(lengths[order[members]] - 1, device=device)
            out[torch.as_tensor(members)] = reps[torch.as_tensor(local, device=device), at].float().cpu()
    return out


def _device_of(module: nn.Module) -> torch.device:
    param = next(module.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


# --------------------------------------------------------------------------------------------------
# FAISS indexes over L2-normalised keys
# --------------------------------------------------------------------------------------------------

def _normalised(keys: torch.Tensor | np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(np.asarray(keys, dtype=np.float32)).copy()
    faiss.normalize_L2(x)
    return x


def ivf_lists(n: int, nlist: int = 128) -> int:
    """nlist for n training points: the official 128, fewer when each list would get < 39 points."""
    return max(1, min(nlist, n // MIN_POINTS_PER_LIST))


def make_index(keys: torch.Tensor | np.ndarray, kind: str = "ivf", nlist: int = 128, nprobe: int = 1,
               seed: int = 1234, hnsw_m: int = 32, ef_search: int = 128) -> faiss.Index:
    """An inner-product index over the normalised `keys` (cosine similarity), trained and filled."""
    x = _normalised(keys)
    d = x.shape[1]
    if kind == "exact":
        index = faiss.IndexFlatIP(d)
    elif kind == "ivf":
        lists = ivf_lists(len(x), nlist)
        # as the official code: an L2 flat coarse quantizer, inner product for the lists
        index = faiss.IndexIVFFlat(faiss.IndexFlatL2(d), d, lists, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed  # k-means initialisation and subsampling
        index.train(x)
        index.nprobe = min(nprobe, lists)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = ef_search
    else:
        raise ValueError(f"unknown index kind {kind!r} (expected one of {INDEX_KINDS})")
    _add(index, x)
    return index


def _add(index: faiss.Index, x: np.ndarray) -> None:
    if isinstance(index, faiss.IndexHNSWFlat):
        # parallel HNSW insertion depends on thread timing: insert on one thread to stay deterministic
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            index.add(x)
        finally:
            faiss.omp_set_num_threads(threads)
    else:
        index.add(x)


def not_self_or_future(cand: np.ndarray, bank_users: np.ndarray, bank_lengths: np.ndarray,
              users: np.ndarray, lengths: np.ndarray, same_user_filter: bool = True) -> np.ndarray:
    """The official self/future filter on candidate ids [Q, C]: keep m iff user_m != user_q or
    length_m < length_q (same-user memories only if strictly shorter); FAISS -1 slots are dropped.
    Without `same_user_filter` (a leakage control) only the -1 slots are dropped."""
    if not same_user_filter:
        return cand >= 0
    safe = np.maximum(cand, 0)
    keep = (bank_users[safe] != users[:, None]) | (bank_lengths[safe] < lengths[:, None])
    return keep & (cand >= 0)


def first_k(cand: np.ndarray, sims: np.ndarray, keep: np.ndarray, k: int):
    """The first k kept candidates of each row, in the index's order; short rows are masked
    (id -1, similarity -inf, mask False)."""
    if cand.shape[1] < k:  # pad so that k columns exist
        pad = k - cand.shape[1]
        cand = np.pad(cand, ((0, 0), (0, pad)), constant_values=-1)
        sims = np.pad(sims, ((0, 0), (0, pad)), constant_values=-np.inf)
        keep = np.pad(keep, ((0, 0), (0, pad)), constant_values=False)
    pos = np.argsort(~keep, axis=1, kind="stable")[:, :k]  # kept first, order preserved
    mask = np.take_along_axis(keep, pos, 1)
    ids = np.where(mask, np.take_along_axis(cand, pos, 1), -1)
    sims = np.where(mask, np.take_along_axis(sims, pos, 1), -np.inf).astype(np.float32)
    return ids.astype(np.int64), sims, mask


# --------------------------------------------------------------------------------------------------
# The bank
# --------------------------------------------------------------------------------------------------

@dataclass
class Retrieved:
    """Top-K filtered memories of a batch of queries: ids into the bank [Q, K] (-1 where masked),
    cosine similarities [Q, K] (-inf where masked) and the mask [Q, K] (True = a real memory)."""
    ids: np.ndarray
    sims: np.ndarray
    mask: np.ndarray


@dataclass
class MemoryBank:
    """Memories m = (key k_m, value e_m) with metadata; entry i of every array is memory id i."""
    keys: torch.Tensor      # float32 [M, d], raw encoder outputs
    values: torch.Tensor    # float32 [M, d], target item embeddings
    users: np.ndarray       # int64 [M]
    lengths: np.ndarray     # int64 [M], prefix length after the cap (what the filter compares)
    targets: np.ndarray     # int64 [M], the target item
    tags: np.ndarray        # str [M], 'train' or 'valid'
    rows: np.ndarray        # int64 [M], the instance's index inside its split (tag)
    kind: str = "ivf"
    nlist: int = 128
    nprobe: int = 1
    seed: int = 1234
    index: faiss.Index | None = field(default=None, repr=False)

    # ---- construction ----------------------------------------------------------------------------

    @classmethod
    def from_arrays(cls, keys: torch.Tensor, values: torch.Tensor, instances: Instances, tag: str = "train",
                    kind: str = "ivf", nlist: int = 128, nprobe: int = 1, seed: int = 1234) -> "MemoryBank":
        """A bank over precomputed keys/values of `instances` (one memory per instance, same order)."""
        n = len(instances)
        if keys.shape[0] != n or values.shape[0] != n:
            raise ValueError(f"{n} instances but {keys.shape[0]} keys and {values.shape[0]} values")
        bank = cls(keys.detach().float().cpu().contiguous(), values.detach().float().cpu().contiguous(),
                   instances.users.astype(np.int64), instances.lengths.astype(np.int64),
                   instances.targets.astype(np.int64), np.full(n, tag), np.arange(n, dtype=np.int64),
                   kind, nlist, nprobe, seed)
        bank.reindex()
        return bank

    @classmethod
    def build(cls, encoder: nn.Module, instances: Instances, tag: str = "train", kind: str = "ivf",
              nlist: int = 128, nprobe: int = 1, seed: int = 1234, batch_size: int = 1024,
              device: str | torch.device | None = None) -> "MemoryBank":
        """One deterministic pass of the frozen encoder (eval mode, no grad) over `instances`."""
        keys, = encode_instances(encoder, [instances], batch_size, device)
        with torch.no_grad():
            values = encoder.item_weights().detach().float().cpu()[torch.as_tensor(instances.targets)]
        return cls.from_arrays(keys, values, instances, tag, kind, nlist, nprobe, seed)

    def reindex(self) -> None:
        """(Re)build and train the index on all current keys."""
        self.index = make_index(self.keys, self.kind, self.nlist, self.nprobe, self.seed)

    def __len__(self) -> int:
        return len(self.users)

    @property
    def n_lists(self) -> int | None:
        return self.index.nlist if isinstance(self.index, faiss.IndexIVF) else None

    def set_nprobe(self, nprobe: int) -> None:
        self.nprobe = nprobe
        if isinstance(self.index, faiss.IndexIVF):
            self.index.nprobe = min(nprobe, self.index.nlist)

    # ---- growth ----------------------------------------------------------------------------------

    def add(self, keys: torch.Tensor, values: torch.Tensor, instances: Instances, tag: str = "valid",
            retrain: bool = False) -> np.ndarray:
        """Append memories and return their ids (existing ids do not change). Without `retrain` the new
        keys go into the existing index (the IVF keeps its centroids); with it the index is rebuilt
        and retrained on all keys, as the official test-time bank."""
        start = len(self)
        self.keys = torch.cat([self.keys, keys.detach().float().cpu()])
        self.values = torch.cat([self.values, values.detach().float().cpu()])
        self.users = np.concatenate([self.users, instances.users])
        self.lengths = np.concatenate([self.lengths, instances.lengths])
        self.targets = np.concatenate([self.targets, instances.targets])
        self.tags = np.concatenate([self.tags, np.full(len(instances), tag)])
        self.rows = np.concatenate([self.rows, np.arange(len(instances), dtype=np.int64)])
        if retrain:
            self.reindex()
        else:
            _add(self.index, _normalised(keys.detach().float().cpu()))
        return np.arange(start, len(self))

    def add_instances(self, encoder: nn.Module, instances: Instances, tag: str = "valid",
                      retrain: bool = False, batch_size: int = 1024,
                      device: str | torch.device | None = None) -> np.ndarray:
        """Encode `instances` with the frozen encoder and add them (see `add`)."""
        keys, = encode_instances(encoder, [instances], batch_size, device)
        with torch.no_grad():
            values = encoder.item_weights().detach().float().cpu()[torch.as_tensor(instances.targets)]
        return self.add(keys, values, instances, tag, retrain)

    # ---- search ----------------------------------------------------------------------------------

    def search(self, queries: torch.Tensor | np.ndarray, users: np.ndarray, lengths: np.ndarray,
               k: int = 20, fetch: int | None = None, expand: bool = True, chunk: int = 8192,
               same_user_filter: bool = True) -> Retrieved:
        """Top-k filtered memories of each query (raw representation, its user and capped length).

        `fetch` candidates (default 4k, as the official code) are taken from the index before the
        filter. With `expand`, queries left with fewer than k survivors although the index returned
        a full candidate list are searched again with a doubled pool, until k survive or the index
        has nothing more to give (the official code would return ragged rows there). Slots still
        empty are masked. `same_user_filter` False turns the official filter off (a leakage control).
        """
        fetch = 4 * k if fetch is None else fetch
        x = _normalised(queries)
        users, lengths = np.asarray(users), np.asarray(lengths)
        parts = [self._search(x[lo:lo + chunk], users[lo:lo + chunk], lengths[lo:lo + chunk], k, fetch, expand,
                              same_user_filter) for lo in range(0, len(x), chunk)]
        if not parts:
            return Retrieved(np.empty((0, k), np.int64), np.empty((0, k), np.float32), np.empty((0, k), bool))
        return Retrieved(*(np.concatenate(a) for a in zip(*((p.ids, p.sims, p.mask) for p in parts))))

    def _search(self, x, users, lengths, k, fetch, expand, same_user_filter=True) -> Retrieved:
        sims, cand = self.index.search(x, min(fetch, len(self)))
        keep = not_self_or_future(cand, self.users, self.lengths, users, lengths, same_user_filter)
        ids, top, mask = first_k(cand, sims, keep, k)
        if expand:
            # short rows whose candidate list was full: the filter, not the index, ran out
            short = np.nonzero((mask.sum(1) < k) & (cand[:, -1] >= 0))[0]
            if len(short) and cand.shape[1] < len(self):
                again = self._search(x[short], users[short], lengths[short], k, 2 * fetch, expand,
                                     same_user_filter)
                ids[short], top[short], mask[short] = again.ids, again.sims, again.mask
        return Retrieved(ids, top, mask)

    # ---- partitions (each returns a new bank with its own index; ids are renumbered) -------------

    def subset(self, select: np.ndarray) -> "MemoryBank":
        """A new bank with the memories where `select` (bool [M] or ids) holds; `rows`/`tags` still
        point to the source instances."""
        ids = np.nonzero(select)[0] if np.asarray(select).dtype == bool else np.asarray(select)
        if len(ids) == 0:
            raise SettingsError("the partition selects no memory: the bank would be empty")
        t = torch.as_tensor(ids)
        bank = replace(self, keys=self.keys[t], values=self.values[t], users=self.users[ids],
                       lengths=self.lengths[ids], targets=self.targets[ids], tags=self.tags[ids],
                       rows=self.rows[ids], index=None)
        bank.reindex()
        return bank

    def by_length(self, lower: int | None = None, upper: int | None = None,
                  invert: bool = False) -> "MemoryBank":
        """The official length partition (`len_lower_bound`, `len_upper_bound`, `len_bound_reverse`):
        both bounds: lower <= l <= upper; only upper: l < upper; only lower: l > lower; then inverted
        if `invert` (the official default is True, ours False)."""
        select = length_selection(self.lengths, lower, upper, invert)
        return self.subset(select)

    def by_users(self, users, invert: bool = False) -> "MemoryBank":
        """Memories of the given users (of all others if `invert`)."""
        select = np.isin(self.users, np.asarray(list(users)))
        return self.subset(select != invert)

    def by_popularity(self, item_counts: np.ndarray, lower: float = -np.inf, upper: float = np.inf,
                      quantiles: bool = False, invert: bool = False) -> "MemoryBank":
        """Memories whose target has lower <= count < upper interactions (all others if `invert`). With
        `quantiles`, the bounds are quantiles in [0, 1] of the count distribution over items (padding row
        0 excluded), e.g. (0.8, 1.0) = the 20 % most popular items."""
        counts = np.asarray(item_counts)
        if quantiles:
            lower, upper = popularity_thresholds(counts, lower, upper)
        c = counts[self.targets]
        return self.subset(((c >= lower) & (c < upper)) != invert)

    def sample(self, fraction: float, seed: int = 0) -> "MemoryBank":
        """A uniformly drawn `fraction` of the memories (seeded)."""
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}")
        n = max(1, round(fraction * len(self)))
        ids = np.sort(np.random.default_rng(seed).choice(len(self), n, replace=False))
        return self.subset(ids)


def length_selection(lengths: np.ndarray, lower: int | None, upper: int | None, invert: bool) -> np.ndarray:
    """Boolean selection of the official length partition (see `MemoryBank.by_length`)."""
    lengths = np.asarray(lengths)
    lo = lower is not None and lower >= 0  # the official code uses -1 for "unset"
    hi = upper is not None and upper >= 0
    if lo and hi:
        select = (lengths >= lower) & (lengths <= upper)
    elif hi:
        select = lengths < upper
    elif lo:
        select = lengths > lower
    else:
        select = np.ones(len(lengths), dtype=bool)
    return select != invert if (lo or hi) else select


def popularity_thresholds(item_counts: np.ndarray, q_lower: float, q_upper: float) -> tuple[float, float]:
    """Count thresholds at the given quantiles of the per-item counts (items 1..n that occur at all: a
    user sample leaves many items out); q = 0 / 1 give open bounds so that the extreme items are
    included."""
    counts = np.asarray(item_counts)[1:]
    counts = counts[counts > 0] if (counts > 0).any() else counts
    lo = -np.inf if q_lower <= 0 else float(np.quantile(counts, q_lower))
    hi = np.inf if q_upper >= 1 else float(np.quantile(counts, q_upper))
    return lo, hi
