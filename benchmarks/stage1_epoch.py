"""Stage-1 (DuoRec us_x) on Beauty: whole real training epochs of the kit against a padded reference.

    RASEKIT_DATA_DIR=... python benchmarks/stage1_epoch.py [--epochs 1] [--threads N] [--sides kit exact ...]
    RASEKIT_DATA_DIR=... python benchmarks/stage1_epoch.py --learn 3 [--max-batches 514]

Timing mode runs each side in its own subprocess (so peak memory can be told apart) through the kit's own
training loop (`rasekit.stages.loop.fit`, as `python -m rasekit pretrain` runs it): every batch of the epoch
with its assembly and same-target sampling, validation on all users, the checkpoint. It prints the epoch
time `fit` reports (the one `pretrain` prints), the speed-up over the reference, a floor: the matrix
products of one epoch (counted by the torch profiler) divided by the best rate this machine's BLAS reaches
on the step's shapes, i.e. the epoch time if everything but the matrix products cost nothing, and each
side's ratio to that floor. The machine's load average before and after is printed too: other processes
on the cores make every time longer.

* kit: `rasekit.models.objectives.DuoRec` on `rasekit.models.encoders.SASRec` with the fast kernels
  (training setting kernels="fast": the length groups as one token array, the cross-entropy over item
  blocks, fused Adam);
* exact: the same with the exact kernels (kernels="exact", those of every committed run: length groups
  encoded one by one, fused causal attention when possible, last layer for one row, cheap dropout masks,
  one grouped pass over 3B sequences, fused score cross-entropy);
* reference: the straightforward way, as in the official code: every sequence padded to 50, attention
  written out with an additive -10000 mask, nn.Dropout, three separate encoder passes, F.cross_entropy
  over h E^T and the official InfoNCE construction (positives from the diagonals, negatives by a mask).

`--learn E` trains both from the same seed (same initial weights, same batches and positives; dropout
masks differ) and prints validation HR@10, NDCG@10 and MRR@10 after every epoch.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from rasekit.data import load
from rasekit.models.backbones import make_encoder
from rasekit.evaluate import metrics, target_ranks
from rasekit.models.objectives import make_objective
from rasekit.stages.pretraining import PretrainTask
from rasekit.runs.provenance import device_name, git_commit
from rasekit.stages.loop import TrainConfig, fit, make_optimizer

BATCH = 256
LMD_SEM = 0.1
KERNELS = {"kit": "fast", "exact": "exact", "reference": "exact"}


def reference_info_nce(z_i: torch.Tensor, z_j: torch.Tensor) -> torch.Tensor:
    """The official construction: logits [positive, 2N - 2 negatives], label 0 (sim = dot, tau = 1)."""
    n = z_i.shape[0]
    z = torch.cat([z_i, z_j])
    sim = z @ z.T
    positives = torch.cat([torch.diag(sim, n), torch.diag(sim, -n)]).reshape(2 * n, 1)
    mask = torch.ones(2 * n, 2 * n, dtype=torch.bool, device=z.device).fill_diagonal_(False)
    rows = torch.arange(n, device=z.device)
    mask[rows, rows + n] = False
    mask[rows + n, rows] = False
    logits = torch.cat([positives, sim[mask].reshape(2 * n, -1)], dim=1)
    return F.cross_entropy(logits, torch.zeros(2 * n, dtype=torch.long, device=z.device))


def reference_loss(encoder, batch: dict) -> torch.Tensor:
    """DuoRec us_x the plain way: three padded passes of the encoder's reference path."""
    h = encoder(batch["seqs"], batch["lengths"])
    z = encoder(batch["seqs"], batch["lengths"])
    z_pos = encoder(batch["pos_seqs"], batch["pos_lengths"])
    rec = F.cross_entropy(h @ encoder.item_embedding.weight.T, batch["targets"])
    return rec + LMD_SEM * reference_info_nce(z, z_pos)


def build(side: str, n_items: int, seed: int):
    torch.manual_seed(seed)
    encoder = make_encoder("sasrec", n_items)
    encoder.fast = side != "reference"
    encoder.kernels = KERNELS[side]
    duorec = make_objective("duorec", contrast="us_x", lmd_sem=LMD_SEM)
    loss_fn = reference_loss if side == "reference" else duorec
    return encoder, loss_fn, make_optimizer(encoder, TrainConfig(kernels=KERNELS[side]))


def epoch_batches(data, seed: int, epoch: int = 0):
    """Yield (index, batch dict) for one shuffled epoch; the same for both sides."""
    rng = np.random.default_rng([seed, epoch])
    train = data.train
    order = rng.permutation(len(train))
    for lo in range(0, len(order), BATCH):
        index = order[lo:lo + BATCH]
        partner = data.same_target.sample(index, train.targets[index], rng)
        yield {"seqs": torch.as_tensor(train.seqs[index]), "lengths": torch.as_tensor(train.lengths[index]),
               "targets": torch.as_tensor(train.targets[index]),
               "pos_seqs": torch.as_tensor(train.seqs[partner]),
               "pos_lengths": torch.as_tensor(train.lengths[partner])}


def train_step(encoder, loss_fn, optimizer, batch) -> float:
    optimizer.zero_grad(set_to_none=True)
    loss = loss_fn(encoder, batch)
    loss.backward()
    optimizer.step()
    return loss.item()


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


class ReferenceObjective:
    """The reference loss behind the objective interface the training loop calls."""
    needs_positives = True

    def loss(self, encoder, batch: dict) -> torch.Tensor:
        return reference_loss(encoder, batch)


GEMMS = ("aten::mm", "aten::addmm", "aten::bmm")


def matmul_floor(task, kernels: str, batches: int = 10) -> dict:
    """The matrix-product FLOPs of an epoch of `task` (profiled over a few batches) and the best rate
    this machine's BLAS reaches on the step's own shapes: the epoch time if nothing else cost time. The
    same profile says where a step's time goes (self time per operator, profiler overhead included)."""
    rng = np.random.default_rng(0)
    order = rng.permutation(task.n_train)
    optimizer = make_optimizer(task.model, TrainConfig(kernels=kernels))
    task.model.train()
    with torch.profiler.profile(with_flops=True) as prof:
        for b in range(batches):
            optimizer.zero_grad(set_to_none=True)
            task.train_loss(order[b * BATCH:(b + 1) * BATCH], rng).backward()
            optimizer.step()
    events = prof.key_averages()
    flops = sum(e.flops for e in events if e.flops) / batches * -(-task.n_train // BATCH)
    total = sum(e.self_cpu_time_total for e in events)
    top = sorted(events, key=lambda e: -e.self_cpu_time_total)[:10]
    profile = {"step_ms": total / batches / 1e3,
               "gemm_share": sum(e.self_cpu_time_total for e in events if e.key in GEMMS) / total,
               "top": [(e.key, e.self_cpu_time_total / total, e.count / batches) for e in top]}
    d, inner, n_items = 64, 256, task.model.n_items + 1
    shapes = {"scores h E^T": (BATCH, d, n_items), "feed-forward": (6144, d, inner), "grad of E": (n_items, BATCH, d)}
    rates = {}
    for name, (m, k, n) in shapes.items():
        a, w = torch.randn(m, k), torch.randn(k, n)
        for _ in range(3):
            a @ w
        start, reps = time.perf_counter(), 20
        for _ in range(reps):
            a @ w
        rates[name] = 2 * m * k * n * reps / (time.perf_counter() - start) / 1e9
    best = max(rates.values())
    return {"epoch_gflop": flops / 1e9, "gflops": rates, "floor_s": flops / 1e9 / best, "profile": profile}


def time_side(args) -> dict:
    """One side's real epochs through the kit's training loop (run in its own process)."""
    data = load("Beauty", download=False)
    torch.manual_seed(args.seed)
    encoder = make_encoder("sasrec", data.n_items)
    encoder.fast = args.side != "reference"
    objective = (ReferenceObjective() if args.side == "reference"
                 else make_objective("duorec", contrast="us_x", lmd_sem=LMD_SEM))
    task = PretrainTask(encoder, objective, data, "cpu")
    rss_before, lines = max_rss_mb(), []
    cpu = time.process_time()
    with tempfile.TemporaryDirectory() as run_dir:
        fit(task, TrainConfig(epochs=args.epochs, kernels=KERNELS[args.side]), Path(run_dir),
            {"side": args.side}, args.seed, log=lines.append, name=args.side)
    epochs = [float(m.group(1)) for m in map(EPOCH_TIME.search, lines) if m]  # the printed epoch times
    out = {"side": args.side, "epoch_s": epochs, "cpu_s": (time.process_time() - cpu) / args.epochs,
           "threads": torch.get_num_threads(),
           "rss_before_mb": rss_before, "peak_rss_mb": max_rss_mb(), "valid": lines[-1]}
    if args.floor:
        out.update(matmul_floor(task, KERNELS[args.side]))
    return out


EPOCH_TIME = re.compile(r"\((\d+\.\d) s, \d+ threads?\)")


def run_side(side: str, args, floor: bool) -> dict:
    command = [sys.executable, __file__, "--side", side, "--epochs", str(args.epochs),
               "--threads", str(args.threads), "--seed", str(args.seed)] + (["--floor"] if floor else [])
    env = {**os.environ, "RASEKIT_THREADS": str(args.threads)}
    out = subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def compare_times(args) -> None:
    torch.set_num_threads(args.threads)  # for the device line
    load_before = load_average()
    measured = [side for side in args.sides if side != "reference"]  # one of these counts the floor
    results = {side: run_side(side, args, floor=measured[:1] == [side]) for side in args.sides}
    print(f"DuoRec us_x on Beauty, batch {BATCH}: {args.epochs} whole training epoch(s) per side through "
          f"rasekit.stages.loop.fit (batches, sampling, validation, checkpoint), "
          f"{device_name('cpu')}, torch {torch.__version__}, commit {git_commit()[:8]}; load average "
          f"(1, 5, 15 min) before {load_before}, after {load_average()}")
    floor = next((r for r in results.values() if "floor_s" in r), None)
    for side, r in results.items():
        epoch = statistics.median(r["epoch_s"])
        print(f"  {side:9s}: {epoch:7.1f} s/epoch (each: {r['epoch_s']})"
              + (f", {epoch / floor['floor_s']:.2f}x the floor" if floor else "")
              + f", CPU {r['cpu_s']:.1f} s per epoch with the test (all threads)"
              + f", peak RSS {r['peak_rss_mb']:6.0f} MB (after loading: {r['rss_before_mb']:.0f} MB)")
    if "reference" in results:
        reference = statistics.median(results["reference"]["epoch_s"])
        print("  speed-up of a real epoch over the reference: " + ", ".join(
            f"{side} {reference / statistics.median(r['epoch_s']):.2f}x" for side, r in results.items()
            if side != "reference"))
    if floor:
        rates = ", ".join(f"{k} {v:.0f}" for k, v in floor["gflops"].items())
        print(f"  floor: {floor['epoch_gflop']:.0f} GFLOP of matrix products per training epoch at the best "
              f"measured BLAS rate ({rates} GFLOP/s) = {floor['floor_s']:.1f} s, before anything else")
        side = next(name for name, r in results.items() if r is floor)
        profile = floor["profile"]
        print(f"  profile of {side}'s step (torch profiler, 10 batches, self time with its overhead): "
              f"{profile['step_ms']:.0f} ms per step, matrix products {profile['gemm_share']:.0%}; "
              "by operator: "
              + ", ".join(f"{name} {share:.1%} ({calls:.0f} calls)" for name, share, calls in profile["top"]))


@torch.no_grad()
def validate(encoder, data) -> dict:
    encoder.eval()
    valid = data.valid
    seqs, lengths = torch.as_tensor(valid.seqs), torch.as_tensor(valid.lengths)
    weights = encoder.item_weights()
    ranks = target_ranks(lambda i: encoder(seqs[i], lengths[i]) @ weights.T, valid.targets, chunk=1024)
    encoder.train()
    m = metrics(ranks, ks=(10,))
    return {k: m[k] for k in ("HR@10", "NDCG@10", "MRR@10")}


def learn(args) -> None:
    torch.set_num_threads(args.threads)
    data = load("Beauty", download=False)
    sides = {side: build(side, data.n_items, args.seed) for side in ("reference", "kit")}
    for epoch in range(args.learn):
        for side, (encoder, loss_fn, optimizer) in sides.items():
            start, losses = time.perf_counter(), []
            encoder.train()
            for b, batch in enumerate(epoch_batches(data, args.seed, epoch)):
                if args.max_batches and b >= args.max_batches:
                    break
                losses.append(train_step(encoder, loss_fn, optimizer, batch))
            took = time.perf_counter() - start
            m = validate(encoder, data)
            print(f"epoch {epoch + 1} {side:9s} loss {np.mean(losses):.4f}  "
                  + "  ".join(f"{k} {v:.4f}" for k, v in m.items()) + f"  ({took:.0f} s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=1, help="whole real epochs timed per side")
    parser.add_argument("--sides", nargs="+", choices=tuple(KERNELS), default=list(KERNELS))
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--learn", type=int, default=0, metavar="EPOCHS", help="train both and validate")
    parser.add_argument("--max-batches", type=int, default=0, help="--learn: batches per epoch (0 = all)")
    parser.add_argument("--side", choices=tuple(KERNELS), help=argparse.SUPPRESS)
    parser.add_argument("--floor", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        print(json.dumps(time_side(args)))
    elif args.learn:
        learn(args)
    else:
        compare_times(args)


if __name__ == "__main__":
    main()
