"""Stage-1 (DuoRec us_x) training step on Beauty: the kit's fast path against a plain reference.

    RASEKIT_DATA_DIR=... python benchmarks/stage1_epoch.py [--batches 40] [--warmup 5] [--threads N]
    RASEKIT_DATA_DIR=... python benchmarks/stage1_epoch.py --learn 3 [--max-batches 514]

Timing mode runs each side in its own subprocess (so peak memory can be told apart) on the same batches
(batch 256, one fixed shuffle, the same same-target positives), times forward + backward + Adam over a
fixed sample of batches after a few warm-up batches, and extrapolates to the 514-batch epoch.

* kit: `rasekit.objectives.DuoRec` on `rasekit.encoders.SASRec` (length groups, fused causal attention
  when possible, last layer for one row, cheap dropout masks, one grouped pass over 3B sequences, fused
  score cross-entropy);
* reference: the straightforward way, as in the official code: every sequence padded to 50, attention
  written out with an additive -10000 mask, nn.Dropout, three separate encoder passes, F.cross_entropy
  over h E^T and the official InfoNCE construction (positives from the diagonals, negatives by a mask).

`--learn E` trains both from the same seed (same initial weights, same batches and positives; dropout
masks differ) and prints validation HR@10, NDCG@10 and MRR@10 after every epoch.
Targets on the 2-core CPU: kit >= 5x faster than the reference, <= 60 s per epoch, <= 3 GB peak memory.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np
import torch
from torch.nn import functional as F

from rasekit.data import load
from rasekit.encoders import make_encoder
from rasekit.evaluate import metrics, target_ranks
from rasekit.objectives import make_objective

BATCH = 256
LMD_SEM = 0.1


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
    encoder.fast = side == "kit"
    loss_fn = make_objective("duorec", contrast="us_x", lmd_sem=LMD_SEM) if side == "kit" else reference_loss
    return encoder, loss_fn, torch.optim.Adam(encoder.parameters(), lr=1e-3)


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


def time_side(args) -> dict:
    """One side's timings (run in its own process)."""
    torch.set_num_threads(args.threads)
    data = load("Beauty", download=False)
    encoder, loss_fn, optimizer = build(args.side, data.n_items, args.seed)
    n_epoch = -(-len(data.train) // BATCH)
    batches = epoch_batches(data, args.seed)
    encoder.train()
    rss_before = max_rss_mb()
    for _ in range(args.warmup):
        train_step(encoder, loss_fn, optimizer, next(batches))
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(args.batches):
        train_step(encoder, loss_fn, optimizer, next(batches))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"side": args.side, "batch_s": wall / args.batches, "epoch_s": wall / args.batches * n_epoch,
            "cpu_epoch_s": cpu / args.batches * n_epoch, "batches_per_epoch": n_epoch,
            "rss_before_mb": rss_before, "peak_rss_mb": max_rss_mb(), "threads": torch.get_num_threads()}


def run_side(side: str, args) -> dict:
    command = [sys.executable, __file__, "--side", side, "--batches", str(args.batches),
               "--warmup", str(args.warmup), "--threads", str(args.threads), "--seed", str(args.seed)]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def compare_times(args) -> None:
    results = {side: run_side(side, args) for side in ("reference", "kit")}
    print(f"DuoRec us_x training step on Beauty, batch {BATCH}, {args.batches} timed batches after "
          f"{args.warmup} warm-up, {results['kit']['threads']} threads, extrapolated to "
          f"{results['kit']['batches_per_epoch']} batches")
    for side, r in results.items():
        print(f"  {side:9s}: {r['epoch_s']:7.1f} s/epoch wall ({r['batch_s'] * 1e3:6.1f} ms/batch), "
              f"{r['cpu_epoch_s']:7.1f} s/epoch CPU, peak RSS {r['peak_rss_mb']:6.0f} MB "
              f"(after loading data and model: {r['rss_before_mb']:.0f} MB)")
    print(f"  speed-up (wall): {results['reference']['epoch_s'] / results['kit']['epoch_s']:.2f}x")


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
    parser.add_argument("--batches", type=int, default=40, help="timed batches per side")
    parser.add_argument("--warmup", type=int, default=5, help="untimed batches first")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--learn", type=int, default=0, metavar="EPOCHS", help="train both and validate")
    parser.add_argument("--max-batches", type=int, default=0, help="--learn: batches per epoch (0 = all)")
    parser.add_argument("--side", choices=("kit", "reference"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        print(json.dumps(time_side(args)))
    elif args.learn:
        learn(args)
    else:
        compare_times(args)


if __name__ == "__main__":
    main()
