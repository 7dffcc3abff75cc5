"""Stage 2, retrieval-augmented fine-tuning, as a `Task` of the training loop (docs/method.md §7.1).

The encoder and item embeddings are frozen and the encoder runs without dropout, so every query h and
the memory bank are fixed. Each instance's query and filtered neighbour list are therefore computed
once per part, which gives exactly what the official per-batch retrieval gives (a FAISS search and the
filter for every batch) at a fraction of the cost:
* train and valid queries search the train bank;
* test queries search the train + valid bank, grown in `before_test` (IVF retrained by default, as the
  official code).
A batch is then only the RAM and the scoring against all item embeddings (padding row included, as the
official code; the evaluation leaves the padding out).
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable

import numpy as np
import torch
from torch import nn

from rasekit.data import Instances, SplitData
from rasekit.memory.bank import MemoryBank, Retrieved, encode_instances
from rasekit.memory.controls import random_memories
from rasekit.models.ram import RetrievalAugmentedModule
from rasekit.settings import RamConfig, SettingsError

PARTS = ("train", "valid", "test")


def freeze(module: nn.Module) -> nn.Module:
    """No gradient and eval mode (no dropout) for every parameter of `module`."""
    for p in module.parameters():
        p.requires_grad_(False)
    return module.eval()


class _FrozenItemCE(torch.autograd.Function):
    """Mean CE of h E^T against targets, E frozen, in chunks of rows that stay in cache.

    With E frozen, the gradient with respect to h, (softmax(h E^T) - onehot) E / B, is computed in the
    same pass as the loss, so the [B, n_items + 1] logits never go to memory (about 3x faster on CPU
    than `F.cross_entropy(h @ E.T, y)`, to which it is equal up to float rounding).
    """

    @staticmethod
    def forward(ctx, h, items, targets, chunk):
        total = h.new_zeros(())
        grad = torch.empty_like(h)
        for lo in range(0, len(h), chunk):
            rows = slice(lo, min(lo + chunk, len(h)))
            logits = h[rows] @ items.T
            y = targets[rows, None]
            target_logit = logits.gather(1, y)
            top = logits.amax(1, keepdim=True)
            probs = logits.sub_(top).exp_()  # in place: one buffer per chunk
            norm = probs.sum(1, keepdim=True)
            total += (norm.log() + top - target_logit).sum()
            probs.div_(norm).scatter_add_(1, y, torch.full_like(target_logit, -1.0))
            grad[rows] = probs @ items
        ctx.save_for_backward(grad)
        return total / len(h)

    @staticmethod
    def backward(ctx, grad_loss):
        grad, = ctx.saved_tensors
        return grad * (grad_loss / len(grad)), None, None, None


def frozen_item_cross_entropy(h: torch.Tensor, items: torch.Tensor, targets: torch.Tensor,
                              chunk: int = 64) -> torch.Tensor:
    """`F.cross_entropy(h @ items.T, targets)` for frozen `items` (no gradient to them), cache-friendly."""
    if items.requires_grad:
        raise ValueError("frozen_item_cross_entropy needs frozen item embeddings")
    return _FrozenItemCE.apply(h, items, targets, chunk)


class RaSeRecTask:
    """Fine-tune a RAM on top of a frozen encoder (frozen in place: requires_grad off, eval mode).

    `bank_filter` maps the train bank to a partition of it (e.g. `lambda b: b.by_length(upper=5)`);
    as in the official code the validation memories added for the test are not filtered.
    `seed` fixes the RAM's initialisation without touching the global RNG (None: global RNG).
    """

    def __init__(self, encoder: nn.Module, data: SplitData, ram: RamConfig | None = None, *,
                 bank_filter: Callable[[MemoryBank], MemoryBank] | None = None,
                 device: str | torch.device = "cpu", batch_size: int = 1024, seed: int | None = 0,
                 loss_chunk: int | None = None):
        ram = ram or RamConfig()
        self.ram, self.encoder, self.data, self.seed = ram, freeze(encoder), data, seed
        self.device, self.batch_size = torch.device(device), batch_size
        self.loss_chunk = loss_chunk  # rows per CE chunk; None: chosen per device (see `_chunk`)
        with torch.no_grad():
            self.items = encoder.item_weights().detach().float().to(self.device)  # E, frozen
        self.model = self._make_ram(seed, ram, hidden=self.items.shape[1])
        self.model.to(self.device)
        self.n_train = len(data.train)

        self.timings: dict[str, float] = {}  # seconds per preparation step, for reports
        # queries h of every instance (the train queries are also the train bank's keys)
        with self._timed("encode"):
            reps = encode_instances(self.encoder, [self.instances(p) for p in PARTS], batch_size)
            self.queries = {part: r.to(self.device) for part, r in zip(PARTS, reps)}
        with self._timed("index"):
            bank = MemoryBank.from_arrays(self.queries["train"], self.items.cpu()[data.train.targets],
                                          data.train, "train", ram.index, ram.nlist, ram.nprobe)
            self.bank = bank_filter(bank) if bank_filter is not None else bank
            if ram.k > len(self.bank):
                raise SettingsError(f"k={ram.k} is not allowed: the memory bank holds only {len(self.bank)} "
                                    f"memories{' after the partition' if bank_filter else ''}; "
                                    f"expected k <= {len(self.bank)}")
            self._sync_bank()
        self.retrieved: dict[str, Retrieved] = {}
        self._neighbours: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        with self._timed("retrieve"):
            for part in ("train", "valid"):
                self._precompute(part)
        self.test_ready = False

    @contextmanager
    def _timed(self, step: str):
        start = time.perf_counter()
        yield
        self.timings[step] = self.timings.get(step, 0.0) + time.perf_counter() - start

    @staticmethod
    def _make_ram(seed: int | None, ram: RamConfig, hidden: int) -> RetrievalAugmentedModule:
        """The module with the settings of `ram`, its initial weights drawn from `seed` (None: the global RNG)."""
        make = lambda: RetrievalAugmentedModule(  # noqa: E731
            hidden=hidden, inner=ram.inner, n_heads=ram.n_heads, dropout=ram.dropout, tau=ram.tau,
            alpha=ram.alpha, beta=ram.beta, learn_alpha=ram.learn_alpha, learn_beta=ram.learn_beta,
            residual=ram.residual, layer_norm=ram.layer_norm)
        if seed is None:
            return make()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return make()

    def _sync_bank(self) -> None:
        """Device copies of the bank's keys and values, gathered by neighbour id."""
        self.bank_keys = self.bank.keys.to(self.device)
        self.bank_values = self.bank.values.to(self.device)

    @property
    def k(self) -> int:
        """Memories retrieved per query."""
        return self.ram.k

    def instances(self, part: str) -> Instances:
        return getattr(self.data, part)

    # ---- retrieval ---------------------------------------------------------------------------------

    def search(self, queries: torch.Tensor, users: np.ndarray, lengths: np.ndarray, stream: int = 0) -> Retrieved:
        """The K memories of any queries (raw representations, their users and capped lengths) as this run
        retrieves them: the nearest after the same-user filter, or for the random-memory control a draw
        seeded by the run's seed and `stream` (one stream per part, so each part's draw is fixed)."""
        ram = self.ram
        if ram.memories == "random":
            seed = [self.seed or 0, stream]
            return random_memories(self.bank, queries, users, lengths, ram.k, seed, ram.same_user_filter)
        return self.bank.search(queries, users, lengths, ram.k, ram.fetch, same_user_filter=ram.same_user_filter)

    def retrieve(self, part: str, index: np.ndarray) -> Retrieved:
        """Per-batch retrieval as the official code: search the bank for the batch's queries, filter."""
        inst = self.instances(part)
        return self.search(self.queries[part][index].cpu(), inst.users[index], inst.lengths[index],
                           PARTS.index(part))

    def _precompute(self, part: str) -> None:
        found = self.retrieve(part, np.arange(len(self.instances(part))))
        self.retrieved[part] = found
        self._neighbours[part] = (torch.as_tensor(np.maximum(found.ids, 0), device=self.device),
                                  torch.as_tensor(found.mask, device=self.device))

    def before_test(self) -> None:
        """Grow the bank with the validation pairs (the official test-time bank) and retrieve for the
        test queries. Called once; later calls do nothing."""
        if self.test_ready:
            return
        valid = self.data.valid
        self.grow(self.queries["valid"].cpu(), valid, "valid")
        with self._timed("retrieve_test"):
            self._precompute("test")
        self.test_ready = True

    def grow(self, keys: torch.Tensor, instances: Instances, tag: str) -> None:
        """Enter `instances` into the bank as new memories: `keys` their representations by the frozen
        encoder, the values their targets' item embeddings (no weight changes). The IVF index is
        retrained as at test time (`RamConfig.retrain_for_test`). Retrieval already precomputed is kept."""
        with self._timed("grow"):
            self.bank.add(keys, self.items.cpu()[instances.targets], instances, tag,
                          retrain=self.ram.retrain_for_test)
            self._sync_bank()

    def memories(self, part: str, index: np.ndarray):
        """Precomputed neighbours of instances `index`: keys [B, K, d], values [B, K, d], mask [B, K]."""
        if part == "test" and not self.test_ready:
            self.before_test()
        ids, mask = self._neighbours[part]
        rows = torch.as_tensor(index, device=self.device)
        ids, mask = ids[rows], mask[rows]
        return self.bank_keys[ids], self.bank_values[ids], mask

    # ---- the Task protocol -------------------------------------------------------------------------

    def augmented(self, part: str, index: np.ndarray, return_attention: bool = False):
        """h~ of instances `index` of `part` (and the attention weights if asked)."""
        keys, values, mask = self.memories(part, index)
        h = self.queries[part][torch.as_tensor(index, device=self.device)]
        return self.model(h, keys, values, mask, return_attention=return_attention)

    def augment(self, h: torch.Tensor, found: Retrieved, return_attention: bool = False):
        """h~ of queries h [B, d] from their retrieved memories `found` (see `search`)."""
        ids = torch.as_tensor(np.maximum(found.ids, 0), device=self.device)
        mask = torch.as_tensor(found.mask, device=self.device)
        return self.model(h.to(self.device), self.bank_keys[ids], self.bank_values[ids], mask,
                          return_attention=return_attention)

    def train_loss(self, index: np.ndarray, rng: np.random.Generator | None = None) -> torch.Tensor:
        """CE over all items (padding row included) of h~ E^T; no sampling, so `rng` is unused."""
        target = torch.as_tensor(self.data.train.targets[index], device=self.device)
        return frozen_item_cross_entropy(self.augmented("train", index), self.items, target, self._chunk())

    def _chunk(self) -> int:
        """Rows per CE chunk: small enough to stay in the CPU cache, but several threads need larger
        chunks (measured on 2 shared cores: 64 rows best on one thread, 256 on two, where 64 rows made
        an epoch 10x slower); a GPU takes the batch at once."""
        if self.loss_chunk:
            return self.loss_chunk
        if self.device.type != "cpu":
            return 1 << 30
        return 64 if torch.get_num_threads() == 1 else 256

    def scores(self, part: str, index: np.ndarray) -> torch.Tensor:
        return self.augmented(part, index) @ self.items.T

    def targets(self, part: str) -> np.ndarray:
        return self.instances(part).targets
