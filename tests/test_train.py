"""The training loop on a toy task: early stopping semantics, bit-identical seeds, resume after a kill,
and refusal of bad checkpoints."""
import numpy as np
import pytest
import torch
from torch import nn

from rasekit.stages.loop import CheckpointError, TrainConfig, fit, load_checkpoint


class ToyTask:
    """Next item = a function of the last item; the model is an embedding table with dropout."""
    def __init__(self, n_items=20, n=400, seed=0, fail_at_call=None):
        rng = np.random.default_rng(seed)
        self.last = rng.integers(1, n_items + 1, size=n)
        self.next = (self.last * 7) % n_items + 1
        torch.manual_seed(seed)
        self.model = nn.Sequential(nn.Embedding(n_items + 1, 8), nn.Dropout(0.2))
        self.items = nn.Embedding(n_items + 1, 8)
        self.model.add_module("items", self.items)
        self.n_train = 300
        self.calls, self.fail_at_call = 0, fail_at_call

    def _scores(self, rows):
        h = self.model[1](self.model[0](torch.as_tensor(self.last[rows])))
        return h @ self.items.weight.T

    def train_loss(self, index, rng):
        self.calls += 1
        if self.calls == self.fail_at_call:
            raise KeyboardInterrupt("simulated kill")
        noise = rng.random(len(index))  # the loop's rng is used, as DuoRec's positives would
        loss = nn.functional.cross_entropy(self._scores(index), torch.as_tensor(self.next[index]))
        return loss + 0.0 * float(noise.mean())

    def scores(self, part, index):
        return self._scores(index + (300 if part == "valid" else 350))

    def targets(self, part):
        return self.next[300:350] if part == "valid" else self.next[350:]

    def before_test(self):
        pass


META = {"key": "toy", "dataset": "toy", "n_items": 20}
CONFIG = TrainConfig(epochs=6, batch_size=32, lr=0.05, patience=10, valid_metric="HR@5")


def run(tmp_path, name, **task_args):
    return fit(ToyTask(**task_args), CONFIG, tmp_path / name, META, seed=3, log=lambda *_: None)


def test_same_seed_gives_bit_identical_results(tmp_path):
    a, b = run(tmp_path, "a"), run(tmp_path, "b")
    assert a["history"] == b["history"]
    assert np.array_equal(a["test_ranks"], b["test_ranks"])


def test_a_killed_run_resumes_and_ends_with_the_same_metrics(tmp_path):
    whole = run(tmp_path, "whole")
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, "killed", fail_at_call=10 * 3 + 4)  # 10 batches per epoch: dies inside epoch 3
    saved = torch.load(tmp_path / "killed" / "last.pt", weights_only=True)
    assert saved["loop"]["epoch"] == 2
    assert not list((tmp_path / "killed").glob("*.tmp"))
    resumed = run(tmp_path, "killed")
    assert resumed["history"] == whole["history"]
    assert resumed["metrics"] == whole["metrics"]


def test_early_stopping_waits_patience_plus_one_epochs(tmp_path):
    config = TrainConfig(epochs=50, batch_size=32, lr=0.0001, patience=2, valid_metric="HR@5")
    out = fit(ToyTask(), config, tmp_path / "es", META, seed=3, log=lambda *_: None)
    scores = [h["HR@5"] for h in out["history"]]
    best = int(np.argmax(scores))  # first maximum: improvement must be strict
    assert out["best_epoch"] == best
    assert out["epochs_run"] == min(50, best + 1 + config.patience + 1)


def test_bad_checkpoints_are_refused_with_a_clear_error(tmp_path):
    run(tmp_path, "ok")
    good = tmp_path / "ok" / "best.pt"
    with pytest.raises(CheckpointError, match="dataset='toy'.*needs 'Beauty'"):
        load_checkpoint(good, {"dataset": "Beauty"})
    bigger = ToyTask(n_items=30).model
    with pytest.raises(CheckpointError, match=r"0.weight has shape \(21, 8\)"):
        load_checkpoint(good, META, bigger)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(good.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="corrupt.pt: not a readable checkpoint"):
        load_checkpoint(corrupt, META)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(CheckpointError, match="not a rasekit checkpoint"):
        load_checkpoint(foreign, META)


def test_impossible_settings_are_refused():
    with pytest.raises(ValueError, match="batch_size=0 is not allowed: expected an integer >= 1"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match=r"lr=0 is not allowed: expected a finite number in \(0, inf\]"):
        TrainConfig(lr=0)
