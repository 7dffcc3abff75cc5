"""Would fusing the element-wise work speed up the fast kernels? A probe of `torch.compile` on CPU.

    RASEKIT_DATA_DIR=... python benchmarks/fusion.py [--threads 2] [--batches 20]

The fast kernels' feed-forward block (dense, GELU, dense, dropout by a mask drawn beforehand, residual,
LayerNorm) is where most of the step's element-wise work sits. This script records the token arrays that
block really receives in the first batches of a DuoRec epoch on Beauty (the kit's own training step,
kernels="fast"), then times the block's forward and backward on arrays of those sizes, eager against
`torch.compile` (inductor, dynamic shapes, the machine's C++ compiler), and prints both, their ratio and
the compile time. It prints what one block costs, not an epoch: it tells whether the lever is worth
building into the training step.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.nn import functional as F

from rasekit.data import load
from rasekit.models import encoders
from rasekit.models.dropout import add_kept
from rasekit.models.layers import FeedForward
from rasekit.runs.provenance import device_name, git_commit

from stage1_epoch import BATCH, build, epoch_batches, train_step


def token_counts(data, batches: int) -> list[int]:
    """Rows of every feed-forward call in the first `batches` training steps of a fast-kernel epoch."""
    encoder, loss_fn, optimizer = build("kit", data.n_items, seed=0)
    seen, kept = [], encoders.feed_forward_kept
    encoders.feed_forward_kept = lambda ff, x, keep: seen.append(x.shape[0]) or kept(ff, x, keep)
    try:
        for _, batch in zip(range(batches), epoch_batches(data, seed=0)):
            train_step(encoder, loss_fn, optimizer, batch)
    finally:
        encoders.feed_forward_kept = kept
    return seen


def block_ms(functions: list, rows: list[int], rounds: int) -> list[float]:
    """Median milliseconds of one forward and backward over arrays of the given row counts, per
    function; the functions take turns round by round, so a slow minute of the machine hits both."""
    inputs = [(torch.randn(n, 64, requires_grad=True), torch.rand(n, 64).gt(0.5).float().mul(2))
              for n in rows]
    times = [[] for _ in functions]
    for _ in range(rounds + 1):  # the first round warms up
        for fn, spent in zip(functions, times):
            start = time.perf_counter()
            for x, keep in inputs:
                fn(x, keep).square().sum().backward()
            spent.append((time.perf_counter() - start) / len(inputs) * 1e3)
    return [statistics.median(spent[1:]) for spent in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--batches", type=int, default=20, help="training steps whose arrays are recorded")
    parser.add_argument("--rounds", type=int, default=9, help="timed rounds (medians are printed)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load("Beauty")
    rows = token_counts(data, args.batches)
    print(f"{device_name('cpu')}, commit {git_commit()}")
    print(f"feed-forward calls recorded: {len(rows)}, rows per call: median {statistics.median(rows):.0f}, "
          f"min {min(rows)}, max {max(rows)}")
    ff = FeedForward(64, 256, 0.5)

    def eager(x, keep):
        return ff.layer_norm(add_kept(x, ff.dense_2(F.gelu(ff.dense_1(x))), keep))

    compiled = torch.compile(eager, dynamic=True)
    start = time.perf_counter()
    block_ms([compiled], rows[:4], rounds=1)
    compile_s = time.perf_counter() - start
    plain, fused = block_ms([eager, compiled], rows, args.rounds)
    print(f"compile (first calls): {compile_s:.1f} s")
    print(f"feed-forward block, forward + backward: eager {plain:.3f} ms, compiled {fused:.3f} ms, "
          f"eager / compiled {plain / fused:.2f}")
    steps = -(-len(data.train) // BATCH)
    saved = (plain - fused) * len(rows) / args.batches * steps / 1e3
    print(f"at {len(rows) / args.batches:.0f} calls per step and {steps} steps, the compiled block would save "
          f"about {saved:.1f} s of an epoch (an estimate from the block alone)")


if __name__ == "__main__":
    main()
