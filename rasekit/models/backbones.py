"""The encoders beside SASRec that the backbone table trains, GRU4Rec and BERT4Rec, and `make_encoder`,
which builds any encoder by name (`ENCODERS`)."""
from __future__ import annotations

import inspect

import torch
from torch import nn

from rasekit import settings
from rasekit.models.dropout import dropout as fast_dropout
from rasekit.models.encoders import SASRec, SequenceEncoder, append_at_length, gather_last, length_groups


# ----------------------------------------------------------------------------------------------------
# GRU4Rec


class GRU4Rec(SequenceEncoder):
    """GRU4Rec as in RecBole (the DuoRec code base): embedding d, dropout on the embeddings, one GRU
    layer without biases (hidden 128), a dense layer back to d, output at position len - 1.
    Init: xavier-normal embeddings, xavier-uniform GRU weights, PyTorch's default for the dense layer."""

    def __init__(self, n_items: int, hidden_size: int = 64, gru_size: int = 128, n_layers: int = 1,
                 dropout: float = 0.3, mask_token: bool = False):
        super().__init__(n_items, mask_token)
        self.hidden_size = hidden_size
        self.item_embedding = nn.Embedding(self.n_rows, hidden_size, padding_idx=0)
        self.emb_dropout = nn.Dropout(dropout)
        self.gru = nn.GRU(hidden_size, gru_size, num_layers=n_layers, bias=False, batch_first=True)
        self.dense = nn.Linear(gru_size, hidden_size)
        nn.init.xavier_normal_(self.item_embedding.weight)
        for name, weight in self.gru.named_parameters():
            nn.init.xavier_uniform_(weight)

    def encode_plain(self, seqs: torch.Tensor) -> torch.Tensor:
        return self.dense(self.gru(self.emb_dropout(self.item_embedding(seqs)))[0])

    def encode(self, items: torch.Tensor) -> torch.Tensor:
        return self.dense(self.gru(fast_dropout(items, self.emb_dropout.p, self.training))[0])


# ----------------------------------------------------------------------------------------------------
# BERT4Rec


class BERT4Rec(SASRec):
    """BERT4Rec (Sun et al., CIKM 2019) as in RecBole: SASRec's layers without the causal mask (every real
    position attends to every other; padding keys are masked), a mask token after the items, and one more
    position than the longest sequence so that the mask can follow it. The representation of a sequence
    is the output at the mask token appended after its last item (position len). Defaults are RecBole's
    BERT4Rec settings: d 64, 2 layers, 2 heads, inner 256, dropout 0.2.

    Being bidirectional, a prefix's representation is not a position of the longer sequence, so it has no
    `all_positions` and cannot be a stage-2 backbone (the kit builds the bank from all positions)."""

    bidirectional = True

    def __init__(self, n_items: int, hidden_size: int = 64, n_layers: int = 2, n_heads: int = 2,
                 inner_size: int = 256, hidden_dropout: float = 0.2, attn_dropout: float = 0.2,
                 max_len: int = 50, layer_norm_eps: float = 1e-12, init_std: float = 0.02, mask_token: bool = True):
        if not mask_token:
            raise ValueError("BERT4Rec needs its mask token (mask_token=True)")
        super().__init__(n_items, hidden_size, n_layers, n_heads, inner_size, hidden_dropout, attn_dropout,
                         max_len + 1, layer_norm_eps, init_std, mask_token=True)

    def encode_bidirectional(self, seqs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Outputs [B, W, d] at every position of left-aligned `seqs` with `lengths` (W: the longest).
        Encoded in length groups as the causal encoders: with padding keys masked, a sequence's outputs
        do not depend on how far it is padded."""
        width = int(lengths.max())
        out = seqs.new_zeros(seqs.shape[0], width, self.hidden_size, dtype=self.item_embedding.weight.dtype)
        for index, group_width in length_groups(lengths, width, self.group_multiple, self.group_overhead):
            part = seqs[index, :group_width]
            x = self.dropout(self._input(self.item_embedding(part)))
            mask = ((part == 0).to(x.dtype) * -10000.0)[:, None, None, :]  # padding keys only
            for layer in self.layers:
                x = layer(x, mask)
            out[index, :group_width] = x
        return out

    def forward(self, seqs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        with_mask = append_at_length(seqs, lengths, self.mask_id)
        return gather_last(self.encode_bidirectional(with_mask, lengths + 1), lengths + 1)

    def all_positions(self, seqs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("BERT4Rec is bidirectional: the representation of a prefix is not a "
                                  "position of the longer sequence, so it cannot be a stage-2 backbone")


ENCODERS = {"sasrec": SASRec, "gru4rec": GRU4Rec, "bert4rec": BERT4Rec}


def make_encoder(name: str, n_items: int, **params) -> SequenceEncoder:
    """Build an encoder by name (see ENCODERS); `params` override its defaults."""
    try:
        cls = ENCODERS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown encoder {name!r}; expected one of {sorted(ENCODERS)}") from None
    settings.known(f"{name} encoder", params, inspect.signature(cls).parameters)
    return cls(n_items, **params)
