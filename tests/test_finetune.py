"""Stage 2 as a Task: frozen encoder, precomputed retrieval equal to per-batch retrieval."""
import numpy as np
import pytest
import torch
from torch import nn

from rasekit.data import split
from rasekit.evaluate import metrics, target_ranks
from rasekit.settings import RamConfig
from rasekit.stages.finetuning import RaSeRecTask


class MeanEncoder(nn.Module):
    """Stand-in encoder with the rasekit.models.encoders interface: mean of the prefix's item embeddings."""

    def __init__(self, n_items: int, hidden: int = 16):
        super().__init__()
        torch.manual_seed(0)
        self.hidden_size = hidden
        self.emb = nn.Embedding(n_items + 1, hidden)
        self.drop = nn.Dropout(0.5)  # must be off in stage 2

    def all_positions(self, seqs, lengths):
        return self.drop(self.emb(seqs)).cumsum(1) / torch.arange(1, seqs.shape[1] + 1)[None, :, None]

    def forward(self, seqs, lengths):
        return self.all_positions(seqs, lengths)[torch.arange(len(seqs)), lengths - 1]

    def item_weights(self):
        return self.emb.weight


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    seqs = {u: rng.integers(1, 41, rng.integers(3, 25)).tolist() for u in range(1, 121)}
    return split("toy", seqs, max_len=10, n_items=40)


TASK_SETTINGS = ("bank_filter", "device", "batch_size", "seed", "loss_chunk")


def make_task(data, **kw):
    """A task over the toy data: K 4, a small FFN and IVF; `kw` changes RAM settings and the task's own."""
    ram = RamConfig(**{"k": 4, "inner": 32, "nlist": 4, **{k: v for k, v in kw.items() if k not in TASK_SETTINGS}})
    return RaSeRecTask(MeanEncoder(data.n_items), data, ram, **{k: v for k, v in kw.items() if k in TASK_SETTINGS})


@pytest.mark.parametrize("index", ["ivf", "exact"])
def test_precomputed_retrieval_equals_per_batch_retrieval(data, index):
    task = make_task(data, index=index)
    task.model.eval()
    rng = np.random.default_rng(1)
    for part in ("train", "valid", "test"):
        if part == "test":  # train and valid search the train bank, test the grown one
            task.before_test()
        for _ in range(3):
            batch = rng.choice(len(task.instances(part)), 17, replace=False)
            found = task.retrieve(part, batch)  # search the bank for the batch's queries, then filter
            np.testing.assert_array_equal(found.ids, task.retrieved[part].ids[batch])
            np.testing.assert_array_equal(found.mask, task.retrieved[part].mask[batch])
            # the RAM on per-batch retrieval gives the same scores as the precomputed path
            ids = torch.as_tensor(np.maximum(found.ids, 0))
            h = task.encoder(torch.as_tensor(task.instances(part).seqs[batch]),
                             torch.as_tensor(task.instances(part).lengths[batch]))
            with torch.no_grad():
                direct = task.model(h, task.bank.keys[ids], task.bank.values[ids], torch.as_tensor(found.mask))
                torch.testing.assert_close(task.scores(part, batch), direct @ task.items.T)


def test_filter_holds_in_every_part(data):
    task = make_task(data, index="exact")
    task.before_test()
    for part in ("train", "valid", "test"):
        inst, found = task.instances(part), task.retrieved[part]
        same_user = task.bank.users[np.maximum(found.ids, 0)] == inst.users[:, None]
        shorter = task.bank.lengths[np.maximum(found.ids, 0)] < inst.lengths[:, None]
        assert not (found.mask & same_user & ~shorter).any()
    # the test bank holds the validation pairs, so a test query can retrieve its own user's valid prefix
    assert (task.bank.tags == "valid").sum() == len(data.valid)
    own = (task.bank.tags[np.maximum(task.retrieved["test"].ids, 0)] == "valid") & task.retrieved["test"].mask
    assert own.any()


def test_only_the_ram_trains(data):
    task = make_task(data)
    assert not any(p.requires_grad for p in task.encoder.parameters()) and not task.encoder.training
    task.model.train()
    loss = task.train_loss(np.arange(32), np.random.default_rng(0))
    loss.backward()
    assert torch.isfinite(loss)
    assert task.encoder.emb.weight.grad is None
    grads = {n for n, p in task.model.named_parameters() if p.grad is not None}
    assert grads and all(n.startswith("seq_tar.") for n in grads)  # beta = 1: channel 2 untouched
    task.model.eval()
    with torch.no_grad():
        s = task.scores("valid", np.arange(5))
    assert s.shape == (5, data.n_items + 1)
    ranks = target_ranks(lambda i: task.scores("valid", i), task.targets("valid"), chunk=50)
    assert 0 <= metrics(ranks)["HR@10"] <= 1


def test_seeded_ram_and_bank_partition(data):
    a, b = make_task(data, seed=3), make_task(data, seed=3)
    for pa, pb in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(pa, pb)
    part = make_task(data, index="exact", bank_filter=lambda bank: bank.by_length(upper=4))
    assert (part.bank.lengths < 4).all()
    part.before_test()
    assert (part.bank.tags == "valid").sum() == len(data.valid)  # validation memories are not filtered


def test_explain_lists_both_channels_memories_and_attention(data):
    from rasekit import RaSeRec
    model = RaSeRec(make_task(data, index="exact", beta=0.5))  # beta < 1: channel 2 is used too
    test = data.test
    seq, user = test.seqs[3, :test.lengths[3]].tolist(), int(test.users[3])
    explained = model.explain(seq, user=user)
    blocks = ["attention_1a", "attention_1b", "attention_2a", "attention_2b"]
    assert 1 <= len(explained) <= model.task.k and set(blocks) <= set(explained)
    assert np.allclose(explained[blocks].sum(), 1.0, atol=1e-5)  # masked slots get none
    before, after = model.target_rank(seq, int(test.targets[3]), user=user)
    assert before >= 1 and after >= 1


def test_frozen_item_cross_entropy_equals_cross_entropy():
    from torch.nn import functional as F
    from rasekit.stages.finetuning import frozen_item_cross_entropy
    g = torch.Generator().manual_seed(0)
    items, y = torch.randn(50, 8, generator=g), torch.randint(0, 50, (37,), generator=g)
    h1 = torch.randn(37, 8, generator=g, requires_grad=True)
    h2 = h1.detach().clone().requires_grad_()
    a = F.cross_entropy(h1 @ items.T, y)
    b = frozen_item_cross_entropy(h2, items, y, chunk=10)
    (3 * a).backward()
    (3 * b).backward()
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(h1.grad, h2.grad)
