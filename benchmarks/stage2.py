"""Stage-2 timings on Beauty: bank + index build, retrieval precompute, one fine-tuning epoch, scoring.

    RASEKIT_DATA_DIR=... python benchmarks/stage2.py [--checkpoint PATH] [--index ivf] [--device cpu]

Timings do not depend on the encoder's weights, so an untrained SASRec encoder is fine; a checkpoint
(a state dict, or a rasekit checkpoint with a 'model' entry) can be given. Without rasekit.encoders,
or with --stand-in, a SASRec-shaped stand-in (torch TransformerEncoder, same sizes) is used.
Targets on a 2-core CPU: bank + index <= 30 s, epoch at batch 1024 <= 10 s.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

from rasekit.data import load
from rasekit.finetune import RaSeRecTask
from rasekit.memory import MemoryBank


class StandInSASRec(nn.Module):
    """SASRec-sized causal Transformer (d 64, 2 layers, 2 heads, inner 256) with the encoder interface."""

    def __init__(self, n_items: int, hidden: int = 64, max_len: int = 50):
        super().__init__()
        self.hidden_size = hidden
        self.item = nn.Embedding(n_items + 1, hidden)
        self.position = nn.Embedding(max_len, hidden)
        layer = nn.TransformerEncoderLayer(hidden, 2, 256, dropout=0.0, activation="gelu", batch_first=True)
        self.layers = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(hidden, eps=1e-12)

    def all_positions(self, seqs, lengths):
        x = self.norm(self.item(seqs) + self.position(torch.arange(seqs.shape[1], device=seqs.device)))
        causal = nn.Transformer.generate_square_subsequent_mask(seqs.shape[1], device=seqs.device)
        return self.layers(x, mask=causal, is_causal=True)

    def forward(self, seqs, lengths):
        return self.all_positions(seqs, lengths)[torch.arange(len(seqs), device=seqs.device), lengths - 1]

    def item_weights(self):
        return self.item.weight


def make(n_items: int, checkpoint: str | None, stand_in: bool) -> nn.Module:
    if stand_in:
        encoder = StandInSASRec(n_items)
    else:
        try:
            from rasekit.encoders import make_encoder
        except ImportError:
            print("rasekit.encoders not available: using the stand-in SASRec")
            return make(n_items, checkpoint, True)
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
    p.add_argument("--stand-in", action="store_true")
    p.add_argument("--index", default="ivf", choices=["ivf", "exact", "hnsw"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    data = load(args.dataset, download=False)
    encoder = make(data.n_items, args.checkpoint, args.stand_in).to(args.device)
    print(f"{args.dataset}: {len(data.train)} train, {len(data.valid)} valid, {len(data.test)} test; "
          f"torch threads {torch.get_num_threads()}, device {args.device}, index {args.index}")

    bank, seconds = clock(lambda: MemoryBank.build(encoder, data.train, kind=args.index, device=args.device))
    print(f"bank + index build (encode {len(bank)} train prefixes, FAISS {args.index}, nlist {bank.n_lists}): "
          f"{seconds:.2f} s")
    del bank

    task, total = clock(lambda: RaSeRecTask(encoder, data, index=args.index, device=args.device))
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

    loss, seconds = clock(epoch)
    print(f"one fine-tuning epoch (batch {args.batch_size}, {task.n_train} instances): {seconds:.2f} s "
          f"(last loss {loss:.3f})")

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
