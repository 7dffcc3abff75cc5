"""Stage-2 timings on Beauty: bank + index build, retrieval precompute, one fine-tuning epoch, scoring.

    RASEKIT_DATA_DIR=... python benchmarks/stage2.py [--checkpoint PATH] [--index ivf] [--device cpu]
                                                     [--kernels exact|fast]

Timings do not depend on the encoder's weights, so an untrained SASRec encoder is fine; a checkpoint
(a state dict, or a rasekit checkpoint with a 'model' entry, e.g. a stage-1 run's best.pt) can be given.
`--kernels` chooses the frozen encoder's kernels (`rasekit.models.encoders.KERNELS`): they act only where
it encodes (bank and queries), since the fine-tuning epochs reuse the precomputed queries.
Targets on a 2-core CPU: bank + index <= 30 s, epoch at batch 1024 <= 10 s.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

from rasekit.data import load
from rasekit.models.backbones import make_encoder
from rasekit.models.encoders import KERNELS
from rasekit.settings import RamConfig
from rasekit.stages.finetuning import RaSeRecTask
from rasekit.memory.bank import MemoryBank


def make(n_items: int, checkpoint: str | None) -> nn.Module:
    encoder = make_encoder("sasrec", n_items)
    if checkpoint:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        encoder.load_state_dict(state.get("model", state))
    return encoder


def clock(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="Beauty")
    p.add_argument("--checkpoint")
    p.add_argument("--index", default="ivf", choices=["ivf", "exact", "hnsw"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("--kernels", default="exact", choices=KERNELS, help="the encoder's kernels")
    p.add_argument("--epochs", type=int, default=2, help="fine-tuning epochs to time (the first warms up)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    data = load(args.dataset, download=False)
    encoder = make(data.n_items, args.checkpoint).to(args.device)
    encoder.kernels = args.kernels
    print(f"{args.dataset}: {len(data.train)} train, {len(data.valid)} valid, {len(data.test)} test; "
          f"torch threads {torch.get_num_threads()}, device {args.device}, index {args.index}, "
          f"kernels {args.kernels}")

    bank, seconds = clock(lambda: MemoryBank.build(encoder, data.train, kind=args.index, device=args.device))
    print(f"bank + index build (encode {len(bank)} train prefixes, FAISS {args.index}, nlist {bank.n_lists}): "
          f"{seconds:.2f} s")
    del bank

    task, total = clock(lambda: RaSeRecTask(encoder, data, RamConfig(index=args.index), device=args.device))
    t = task.timings
    print(f"task construction {total:.2f} s: encode train/valid/test queries {t['encode']:.2f} s, "
          f"bank + index {t['index']:.2f} s, precompute retrieval (train + valid) {t['retrieve']:.2f} s")

    optimizer = torch.optim.Adam([p for p in task.model.parameters() if p.requires_grad], lr=1e-3)
    rng = np.random.default_rng(0)
    order = rng.permutation(task.n_train)

    def epoch():
        task.model.train()
        for lo in range(0, task.n_train, args.batch_size):
            loss = task.train_loss(order[lo:lo + args.batch_size], rng)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return loss.item()

    for number in range(1, args.epochs + 1):
        loss, seconds = clock(epoch)
        print(f"fine-tuning epoch {number} (batch {args.batch_size}, {task.n_train} instances): "
              f"{seconds:.2f} s (last loss {loss:.3f})")

    from rasekit.evaluate import metrics, target_ranks
    task.model.eval()
    ranks, seconds = clock(lambda: target_ranks(lambda i: task.scores("valid", i), task.targets("valid")))
    print(f"validation scoring ({len(data.valid)} instances): {seconds:.2f} s  HR@10 {metrics(ranks)['HR@10']:.4f}")
    _, seconds = clock(task.before_test)
    print(f"test-time bank (train + valid, IVF retrained) + test retrieval: {seconds:.2f} s")
    ranks, seconds = clock(lambda: target_ranks(lambda i: task.scores("test", i), task.targets("test")))
    print(f"test scoring ({len(data.test)} instances): {seconds:.2f} s  HR@10 {metrics(ranks)['HR@10']:.4f}")


if __name__ == "__main__":
    main()
