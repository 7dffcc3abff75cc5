"""Dropout with cheap masks.

On CPU, `torch.bernoulli_` (what nn.Dropout uses) costs about 18 ns per element, which made mask drawing
about 30% of a DuoRec training step. Here each mask element costs one random byte: one draw of random
64-bit words (torch's generator, so `torch.get_rng_state()` checkpoints it) gives 8 bytes, each uniform
on 0..255, and an element is kept when its byte is below 256 * (1 - p). That is exactly Bernoulli(1 - p)
whenever p is a multiple of 1/256 (0.5, 0.25, ...); for any other p we fall back to torch's own dropout
rather than round p. The masks are float {0, 1/(1-p)} so the products stay on vectorised float paths
(products with bool tensors are several times slower on CPU).
"""
from __future__ import annotations

import itertools

import torch
from torch.nn import functional as F

_BYTE_LEVELS = 256


def has_fast_mask(p: float) -> bool:
    """Whether p is a multiple of 1/256, so that byte masks keep with probability exactly 1 - p."""
    return 0.0 < p < 1.0 and float(p * _BYTE_LEVELS).is_integer()


def keep_mask(shape: torch.Size | tuple, p: float, like: torch.Tensor,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """Float mask of `shape`: 1/(1-p) with probability 1 - p, else 0 (requires has_fast_mask(p))."""
    if not has_fast_mask(p):
        raise ValueError(f"p={p} is not a multiple of 1/256; use torch's dropout")
    n = 1
    for size in shape:
        n *= size
    return keep_from_bytes(random_bytes([n], like.device, generator)[0][:n].view(shape), p, like.dtype)


def random_bytes(sizes: list[int], device,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, list[int]]:
    """Uniform random bytes for blocks of `sizes` from one draw, which consumes the generator exactly as
    one `keep_mask` per size in turn would: (all the bytes, where each block starts). Each block starts
    on a 64-bit word."""
    words = [(n + 7) // 8 for n in sizes]
    drawn = torch.empty(sum(words), dtype=torch.int64, device=device)
    drawn.random_(-2 ** 63, None, generator=generator)  # full 64-bit range: every byte is uniform
    return drawn.view(torch.uint8), [8 * start for start in itertools.accumulate([0] + words[:-1])]


def keep_from_bytes(byte: torch.Tensor, p: float, dtype: torch.dtype) -> torch.Tensor:
    """Float keep mask from uniform bytes: 1/(1-p) where byte < 256 * (1 - p), else 0."""
    # threshold - byte is >= 1 when kept and <= 0 when dropped; float ops avoid slow bool tensors
    keep = torch.sub(_BYTE_LEVELS * (1.0 - p), byte).clamp_(0.0, 1.0)  # uint8 -> float in the same op
    return keep.to(dtype).mul_(1.0 / (1.0 - p))


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Same distribution as F.dropout(x, p, training), with cheap masks when p allows."""
    if not training or p == 0.0:
        return x
    if not has_fast_mask(p):
        return F.dropout(x, p, True)
    return x * keep_mask(x.shape, p, x)


def dropout_add(residual: torch.Tensor, x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """residual + dropout(x) in one fused kernel (addcmul) when a cheap mask is used."""
    if not training or p == 0.0:
        return residual + x
    if not has_fast_mask(p):
        return residual + F.dropout(x, p, True)
    return add_kept(residual, x, keep_mask(x.shape, p, x))


def add_kept(residual: torch.Tensor, x: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
    """residual + x * keep in one kernel (addcmul); residual + x when there is no mask."""
    return residual + x if keep is None else torch.addcmul(residual, x, keep)
