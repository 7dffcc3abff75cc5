"""What retrieval costs: training time from the ledger, inference latency and throughput with and
without retrieval measured here, and the memory bank at scale (build, search, memory, recall against
exact search) with an estimate for banks far beyond what one laptop holds."""
from __future__ import annotations

import itertools
import math
import resource
import time

import faiss
import numpy as np
import pandas as pd
import torch

from rasekit.memory.bank import _normalised, make_index
from rasekit.runs.provenance import device_name

MB = 1e6


# ---- training, from the ledger ------------------------------------------------------------------------

def training_cost(records: list[dict]) -> pd.DataFrame:
    """Per dataset, model and device: epochs run and training seconds (mean over seeds), and seconds per
    epoch, as the runs recorded them (a run resumed beside other work counts all its processes)."""
    rows = [{"dataset": r["dataset"], "model": r["model"], "device": r["provenance"].get("device"),
             "seed": r["seed"], "epochs": r["epochs_run"], "train s": r["provenance"].get("train_seconds")}
            for r in records if r.get("epochs_run")]
    frame = pd.DataFrame(rows).dropna(subset=["train s"])
    frame["s per epoch"] = frame["train s"] / frame["epochs"]
    out = frame.groupby(["dataset", "model", "device"], sort=False).agg(
        seeds=("seed", "count"), epochs=("epochs", "mean"), **{"train s": ("train s", "mean"),
                                                                "s per epoch": ("s per epoch", "mean")})
    return out.reset_index()


# ---- inference, measured here ---------------------------------------------------------------------------

def inference(task, users: int = 200, batch: int = 256, batches: int = 8, seed: int = 0) -> pd.DataFrame:
    """Latency of one user (median ms over `users` test users) and throughput (users per second over
    `batches` batches of `batch`) of the top 10 items, for the backbone alone and with retrieval (the
    encoder, the FAISS search with the same-user filter, the RAM and the scores): `task` is a trained
    `RaSeRecTask` with its test-time bank."""
    test = task.data.test
    seqs, lengths = torch.as_tensor(test.seqs), torch.as_tensor(test.lengths)
    rng = np.random.default_rng(seed)

    def backbone(rows):
        return (task.encoder(seqs[rows], lengths[rows]) @ task.items.T).topk(10)

    def raserec(rows):
        h = task.encoder(seqs[rows], lengths[rows])
        found = task.search(h, test.users[rows], test.lengths[rows])
        return (task.augment(h, found) @ task.items.T).topk(10)

    task.model.eval()
    rows = []
    with torch.no_grad():
        for name, fn in (("backbone alone", backbone), ("with retrieval", raserec)):
            for size in (1, batch):  # warm-up: first calls of a shape allocate and pick kernels
                fn(rng.integers(0, len(test), size))
            single = [_seconds(fn, rng.integers(0, len(test), 1)) for _ in range(users)]
            many = [_seconds(fn, rng.integers(0, len(test), batch)) for _ in range(batches)]
            rows.append({"path": name, "latency ms (1 user)": 1e3 * float(np.median(single)),
                         f"users/s (batch {batch})": batch / float(np.median(many)),
                         "threads": torch.get_num_threads()})
    return pd.DataFrame(rows)


def _seconds(fn, rows) -> float:
    start = time.perf_counter()
    fn(rows)
    return time.perf_counter() - start


def memory(task) -> pd.DataFrame:
    """MB of what inference holds: the encoder, the RAM, the bank's keys and values, its FAISS index;
    and this process's peak resident memory so far."""
    params = lambda module: sum(p.numel() * p.element_size() for p in module.parameters())  # noqa: E731
    parts = {"encoder": params(task.encoder), "RAM": params(task.model),
             "bank keys and values": task.bank.keys.numel() * 4 + task.bank.values.numel() * 4,
             "bank index": index_bytes(task.bank.index),
             "process peak (resident)": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    return pd.DataFrame({"part": list(parts), "MB": [v / MB for v in parts.values()]})


def index_bytes(index: faiss.Index) -> int:
    return int(faiss.serialize_index(index).size)


# ---- the bank at scale ------------------------------------------------------------------------------------

# IVF at scale: lists grow with the square root of the bank (the official 128 lists fit ~100k memories);
# 64 training points per list keep k-means affordable on a laptop.
SCALE_INDEXES = {"exact": {"kind": "exact"}, "IVF (sqrt N lists, nprobe 16)": {"kind": "ivf", "nprobe": 16},
                 "HNSW (M 32, efSearch 128)": {"kind": "hnsw"}}
# Largest bank each index is built for: HNSW inserts about 2,000 memories a second on one laptop core,
# so its curve stops at a million and the estimate beyond extrapolates it.
SCALE_LIMITS = {"HNSW (M 32, efSearch 128)": 1_000_000}


def synthetic_keys(real: np.ndarray, n: int, seed: int = 0, noise: float = 0.5) -> np.ndarray:
    """`n` vectors of the real keys' dimension and norm distribution: a random real key's direction
    plus Gaussian noise (so the real bank's clusters persist), rescaled to a norm drawn from the real
    keys' norms."""
    rng = np.random.default_rng(seed)
    real = np.asarray(real, np.float32)
    norms = np.linalg.norm(real, axis=1)
    unit = real / norms[:, None]
    out = np.empty((n, real.shape[1]), np.float32)
    for lo in range(0, n, 1 << 20):  # chunks bound the temporaries
        m = min(1 << 20, n - lo)
        x = unit[rng.integers(0, len(real), m)] + noise / math.sqrt(real.shape[1]) * rng.standard_normal(
            (m, real.shape[1]), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[lo:lo + m] = x * rng.choice(norms, m)[:, None]
    return out


def build_index(x: np.ndarray, kind: str, nprobe: int = 1, seed: int = 1234) -> faiss.Index:
    """An inner-product index over the normalised `x`, as the kit's banks build theirs; IVF with
    round(sqrt N) lists."""
    if kind in ("exact", "hnsw"):
        return make_index(x, kind)
    xn = _normalised(x)
    lists = max(1, round(math.sqrt(len(xn))))
    index = faiss.IndexIVFFlat(faiss.IndexFlatL2(xn.shape[1]), xn.shape[1], lists, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed, index.cp.max_points_per_centroid = seed, 64
    index.train(xn)
    index.add(xn)
    index.nprobe = min(nprobe, lists)
    return index  # (faiss's wrapper keeps the quantiser alive with the index)


def scale_point(x: np.ndarray, queries: np.ndarray, k: int = 20, indexes: dict | None = None) -> list[dict]:
    """Build and search each index over the bank `x` (rows) for `queries`: build seconds, index MB,
    search ms per query (the batch of queries at once, divided), recall@k of the top k against exact
    search (unfiltered: synthetic memories have no users)."""
    indexes = SCALE_INDEXES if indexes is None else indexes
    q = _normalised(queries)
    rows, exact = [], None
    for name, spec in indexes.items():
        start = time.perf_counter()
        index = build_index(x, spec["kind"], spec.get("nprobe", 1))
        built = time.perf_counter() - start
        start = time.perf_counter()
        _, ids = index.search(q, k)
        searched = time.perf_counter() - start
        exact = ids if spec["kind"] == "exact" else exact
        recall = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(ids, exact)])) if exact is not None \
            else float("nan")
        rows.append({"index": name, "memories": len(x), "build s": built, "index MB": index_bytes(index) / MB,
                     "search ms/query": 1e3 * searched / len(q), "recall@K": recall})
        del index
    return rows


def scale_curve(real: np.ndarray, sizes, queries: int = 1000, k: int = 20, seed: int = 0,
                indexes: dict | None = None, limits: dict | None = None, log=print) -> pd.DataFrame:
    """`scale_point` at each bank size: the real keys at their own size, synthetic ones beyond; the
    queries are synthetic keys drawn apart from every bank. An index is built up to its size in `limits`
    (default SCALE_LIMITS); exact search always, as the yardstick of recall."""
    indexes, limits = SCALE_INDEXES if indexes is None else indexes, SCALE_LIMITS if limits is None else limits
    q = synthetic_keys(real, queries, seed=seed + 10_000)
    rows = []
    for n in sizes:
        x = np.asarray(real, np.float32) if n == len(real) else synthetic_keys(real, n, seed=seed + n)
        rows += scale_point(x, q, k, {name: spec for name, spec in indexes.items() if n <= limits.get(name, n)})
        log(f"bank of {n:,} memories done")
        del x
    return pd.DataFrame(rows).assign(threads=faiss.omp_get_max_threads(), device=device_name("cpu"))


def at_scale(curve: pd.DataFrame, sizes=(10**8, 10**9), machine_gb: float = 64.0) -> pd.DataFrame:
    """An estimate for banks of `sizes`: each index's memory and search time extrapolated from the
    measured curve, and the shards of `machine_gb` GB (half of it for the index) it would need; search
    time per shard, the shards searched in parallel. Memory per memory is the largest size's; search time
    follows a power law fitted (least squares, log-log) to every size measured. A search never gets
    cheaper as the bank grows, so a fitted exponent below 0 (the machine's noise over few sizes) is taken
    as 0, and that estimate is a lower bound. None from a single size."""
    rows = []
    for name, part in curve.groupby("index", sort=False):
        part = part.sort_values("memories")
        n, mb, ms = (part[c].to_numpy(float) for c in ("memories", "index MB", "search ms/query"))
        bytes_per = mb[-1] * MB / n[-1]
        slope = max(0.0, float(np.polyfit(np.log(n), np.log(ms), 1)[0])) if len(n) > 1 and (ms > 0).all() \
            else math.nan
        for size in sizes:
            shards = max(1, math.ceil(size * bytes_per / (machine_gb / 2 * 1e9)))
            rows.append({"index": name, "memories": size, "memory GB": size * bytes_per / 1e9,
                         f"shards of {machine_gb:g} GB": shards,
                         "search ms/query (per shard)": ms[-1] * (size / shards / n[-1]) ** slope,
                         "measured up to": int(n[-1]), "search-time exponent": slope})
    return pd.DataFrame(rows)


def scale_figure(curve: pd.DataFrame):
    """Build time, index memory, search time and recall@K against the bank's size, one line per index
    (a colour each) and dataset (a line style each; log-log but for recall)."""
    import matplotlib.pyplot as plt

    panels = (("build s", "build (s)", "log"), ("index MB", "index (MB)", "log"),
              ("search ms/query", "search (ms per query)", "log"), ("recall@K", "recall@K vs exact", "linear"))
    colours = {name: f"C{i}" for i, name in enumerate(curve["index"].unique())}
    styles = dict(zip(curve["dataset"].unique(), itertools.cycle(("o-", "s--", "^:", "d-."))))
    fig, axes = plt.subplots(1, len(panels), figsize=(13, 3.6))
    for ax, (column, label, yscale) in zip(axes, panels):
        for (name, dataset), part in curve.groupby(["index", "dataset"], sort=False):
            part = part.sort_values("memories")
            ax.plot(part["memories"], part[column], styles[dataset], color=colours[name], label=f"{name}, {dataset}")
        ax.set(xscale="log", yscale=yscale, xlabel="memories in the bank", title=label)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=3, fontsize=7, frameon=False)
    fig.suptitle(f"The bank at scale ({curve['device'].iloc[0]}, {curve['threads'].iloc[0]} FAISS threads)")
    fig.tight_layout(rect=(0, 0.14, 1, 1))
    return fig
