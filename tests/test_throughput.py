"""The fast kernels (kernels="fast": SASRec's length groups as one token array, the cross-entropy over item
blocks, fused Adam) learn what the exact kernels learn, and the exact kernels are today's, bit for bit."""
import hashlib

import numpy as np
import pytest
import torch

from rasekit.models import objectives
from rasekit.models.backbones import make_encoder
from rasekit.models.objectives import make_objective, recommendation_loss
from rasekit.runs.provenance import device_name, processor
from rasekit.settings import SettingsError
from rasekit.stages.loop import TrainConfig, make_optimizer
from rasekit.stages.pretraining import PretrainTask
from tests.test_encoders import random_batch

STEPS = 30
# 30 DuoRec steps of `train_steps` with the exact kernels and one thread, as the code before the fast
# kernels computed them: (first loss, last loss, sha256 of the parameters), per processor and torch.
EXACT = {("cpu: AMD EPYC", "2.13.0+cpu"):
         ("0x1.7881400000000p+3", "0x1.3d6fca0000000p+3", "664e12e43e6189f4")}


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def smoke(data_dir):
    from rasekit.data import load
    return load("Beauty", download=False, users=1500)


def train_steps(data, kernels: str) -> tuple[list[float], list[torch.Tensor]]:
    """STEPS DuoRec steps on `data` from seed 1 (batches of 256 in a seeded order): losses, parameters."""
    torch.manual_seed(1)
    encoder = make_encoder("sasrec", data.n_items)
    encoder.kernels = kernels
    task = PretrainTask(encoder, make_objective("duorec"), data, "cpu")
    optimizer = make_optimizer(encoder, TrainConfig(kernels=kernels))
    torch.manual_seed(1)
    rng = np.random.default_rng(1)
    order = rng.permutation(task.n_train)
    losses = []
    for step in range(STEPS):
        optimizer.zero_grad(set_to_none=True)
        loss = task.train_loss(order[(step * 256) % (task.n_train - 256):][:256], rng)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses, [p.detach() for p in encoder.parameters()]


def test_thirty_fast_steps_learn_what_the_exact_kernels_learn(smoke, one_thread):
    exact_losses, exact_params = train_steps(smoke, "exact")
    fast_losses, fast_params = train_steps(smoke, "fast")
    assert np.allclose(fast_losses, exact_losses, rtol=1e-4, atol=0)
    assert all(torch.allclose(f, e, rtol=0, atol=1e-4) for f, e in zip(fast_params, exact_params))
    machine = (processor(device_name("cpu")), torch.__version__)
    if machine in EXACT:  # float sums differ between processors and libraries: checked where recorded
        weights = b"".join(p.numpy().tobytes() for p in exact_params)
        assert (exact_losses[0].hex(), exact_losses[-1].hex(),
                hashlib.sha256(weights).hexdigest()[:16]) == EXACT[machine]


@pytest.mark.parametrize("dropout", [(0.5, 0.5), (0.25, 0.0), (0.0, 0.5), (0.0, 0.0), (0.3, 0.5)])
def test_fast_kernels_compute_the_same_outputs_from_the_same_random_draws(dropout):
    """The same values and the same random numbers consumed, in training and evaluation; a dropout
    without cheap masks (0.3) runs the exact kernels."""
    torch.manual_seed(0)
    encoder = make_encoder("sasrec", 40, max_len=12, hidden_dropout=dropout[0], attn_dropout=dropout[1])
    seqs, lengths = random_batch(n=64)
    for mode in ("train", "eval"):
        getattr(encoder, mode)()
        outputs = {}
        for kernels in ("exact", "fast"):
            encoder.kernels = kernels
            torch.manual_seed(3)
            outputs[kernels] = encoder(seqs, lengths), torch.rand(1)
        assert torch.equal(outputs["fast"][0], outputs["exact"][0])
        assert torch.equal(outputs["fast"][1], outputs["exact"][1])


def test_block_cross_entropy_equals_the_exact_one(monkeypatch):
    monkeypatch.setattr(objectives, "ITEM_BLOCK", 7)  # several blocks, the last one short
    torch.manual_seed(0)
    encoder = make_encoder("sasrec", 40, max_len=12)
    h = torch.randn(16, 64, requires_grad=True)
    targets = torch.randint(0, 41, (16,))
    grads = {}
    for kernels in ("exact", "fast"):
        encoder.kernels = kernels
        h.grad = encoder.item_embedding.weight.grad = None
        loss = recommendation_loss(encoder, h, targets)
        (2 * loss).backward()
        grads[kernels] = loss, h.grad, encoder.item_embedding.weight.grad
    for fast, exact in zip(grads["fast"], grads["exact"]):
        assert torch.allclose(fast, exact, rtol=1e-5, atol=1e-7)
    with torch.no_grad():
        assert torch.allclose(recommendation_loss(encoder, h, targets), grads["exact"][0])


def test_kernels_is_a_training_setting():
    assert TrainConfig().kernels == "exact"
    with pytest.raises(SettingsError, match="kernels"):
        TrainConfig(kernels="turbo")
    encoder = make_encoder("sasrec", 40, max_len=12)
    fused = make_optimizer(encoder, TrainConfig(kernels="fast")).defaults["fused"]
    assert fused and not make_optimizer(encoder, TrainConfig()).defaults["fused"]
