"""The training loop on a toy task: early stopping semantics, bit-identical seeds, resume after a kill,
and refusal of bad checkpoints."""
import numpy as np
import pytest
import torch
from torch import nn

from rasekit.settings import SettingsError
from rasekit.stages.loop import CheckpointError, TrainConfig, fit, load_checkpoint, replay_stopping


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
    assert (whole["resumed_after"], resumed["resumed_after"]) == ([], [2])  # the record says it resumed
    assert whole["cpu_seconds"] > 0 and resumed["cpu_seconds"] > 0  # summed over both processes


def test_a_run_resumed_from_a_checkpoint_that_never_counted_cpu_time_says_it_is_unknown(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, "killed", fail_at_call=10 * 3 + 4)
    last = tmp_path / "killed" / "last.pt"
    state = torch.load(last, weights_only=True)
    del state["loop"]["cpu_seconds"]  # as the checkpoints written before CPU time was counted
    torch.save(state, last)
    assert run(tmp_path, "killed")["cpu_seconds"] is None  # not the CPU time of the last process only


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


def curve(*scores):
    return [{"epoch": i, "HR@5": s} for i, s in enumerate(scores)]


def test_the_official_rule_rounds_validation_scores_before_comparing_epochs():
    # a gain in the 5th decimal (epoch 2) is a gain for the exact rule only
    history = curve(0.1, 0.12001, 0.12004, 0.11, 0.11, 0.11)
    official = TrainConfig(epochs=6, patience=1, valid_metric="HR@5")
    exact = TrainConfig(epochs=6, patience=1, valid_metric="HR@5", valid_decimals=None)
    assert official.valid_decimals == 4
    assert replay_stopping(history, official) == (1, 4)  # stale after epochs 2 and 3: stops before 4
    assert replay_stopping(history, exact) == (2, 5)
    assert replay_stopping(history[:3], official) is None  # it would have trained on
    assert replay_stopping(history[:3], TrainConfig(epochs=3, valid_metric="HR@5")) == (1, 3)
    with pytest.raises(SettingsError, match="valid_decimals=2.5"):
        TrainConfig(valid_decimals=2.5)


def checkpoint_from_before_the_rule(tmp_path, history, best_epoch):
    """A run killed in epoch 3, its checkpoint rewritten as one from before the stopping rule was a
    setting, with the validation curve `history`."""
    exact = TrainConfig(epochs=6, batch_size=32, lr=0.05, valid_metric="HR@5", valid_decimals=None)
    with pytest.raises(KeyboardInterrupt):
        fit(ToyTask(fail_at_call=40), exact, tmp_path / "run", META, seed=3, log=lambda *_: None)
    last = tmp_path / "run" / "last.pt"
    state = torch.load(last, weights_only=True)
    del state["loop"]["valid_decimals"]
    state["loop"].update(history=history, epoch=len(history) - 1, best_epoch=best_epoch)
    torch.save(state, last)
    return last


def test_a_run_started_under_the_exact_rule_resumes_only_if_the_rule_keeps_its_best_epoch(tmp_path):
    checkpoint_from_before_the_rule(tmp_path, curve(0.1, 0.12001, 0.12004), best_epoch=2)
    with pytest.raises(CheckpointError, match="rounded to 4 decimals it would be 1"):
        fit(ToyTask(), CONFIG, tmp_path / "run", META, seed=3, log=lambda *_: None)


def test_a_run_started_under_the_exact_rule_resumes_where_the_rule_keeps_its_best_epoch(tmp_path):
    last = checkpoint_from_before_the_rule(tmp_path, curve(0.1, 0.2, 0.2), best_epoch=1)  # 1 under both
    result = fit(ToyTask(), CONFIG, tmp_path / "run", META, seed=3, log=lambda *_: None)
    assert result["epochs_run"] == 6 and result["history"][:3] == curve(0.1, 0.2, 0.2)
    assert torch.load(last, weights_only=True)["loop"]["valid_decimals"] == 4
