"""One training loop for both stages: Adam, validation every epoch, early stopping with the official
patience semantics, the best checkpoint restored for the test, a checkpoint after every epoch so that an
interrupted run started again continues where it stopped and ends with the same metrics."""
from __future__ import annotations

import io
import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn
from tqdm import tqdm  # text bars: a saved notebook reopens without widget errors

from rasekit import settings
from rasekit.evaluate import NonFiniteScoresError, metrics, target_ranks
from rasekit.files import atomic
from rasekit.models.encoders import KERNELS


class Task(Protocol):
    """What the training loop needs from a stage.

    model: the nn.Module whose state_dict is checkpointed; its parameters with requires_grad are trained.
    n_train: number of training instances; batches are arrays of their indices.
    train_loss(index, rng): mean loss over a batch; rng is the loop's numpy Generator (checkpointed with it),
        used for any sampling such as DuoRec's same-target positives.
    scores(part, index): scores [b, n_items + 1] of instances `index` of part 'valid' or 'test'
        (called under torch.no_grad with model.eval()).
    targets(part): the target item of every instance of that part.
    before_test(): called once after the best checkpoint is restored, before the test scores
        (stage 2 grows its memory bank with the validation pairs here).
    """
    model: nn.Module
    n_train: int

    def train_loss(self, index: np.ndarray, rng: np.random.Generator) -> torch.Tensor: ...
    def scores(self, part: str, index: np.ndarray) -> torch.Tensor: ...
    def targets(self, part: str) -> np.ndarray: ...
    def before_test(self) -> None: ...


class Threads(Protocol):
    """How many threads a run computes on (`rasekit.runs.threads.Claim`): chosen when it starts, from the
    count it ran with before if it resumes, and released when it ends."""

    def choose(self, resumed: int | None) -> int: ...

    def release(self) -> None: ...


@dataclass
class TrainConfig:
    epochs: int = 100
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    patience: int = 10             # official stopping_step: stop after patience + 1 epochs without gain
    valid_metric: str = "MRR@10"
    eval_chunk: int = 1024
    # Official rule (RecBole's metric_decimal_place: 4): validation scores are rounded to this many
    # decimals before epochs are compared, so a gain in the 5th decimal is no gain. None: exact values.
    valid_decimals: int | None = 4
    # "exact": the kernels of every committed run; "fast": the same computation with fewer, larger
    # kernels, equal but for the order of float sums (`rasekit.models.encoders.KERNELS`)
    kernels: str = "exact"

    def __post_init__(self):
        settings.integer("epochs", self.epochs, 1, 100_000)
        settings.integer("batch_size", self.batch_size, 1)
        settings.real("lr", self.lr, 0, low_open=True)
        settings.real("weight_decay", self.weight_decay, 0)
        settings.integer("patience", self.patience, 0)
        settings.choice("valid_metric", self.valid_metric, settings.METRICS)
        settings.integer("eval_chunk", self.eval_chunk, 1)
        if self.valid_decimals is not None:
            settings.integer("valid_decimals", self.valid_decimals, 0, 15)
        settings.choice("kernels", self.kernels, KERNELS)

    @classmethod
    def of(cls, given: dict | None, defaults: dict | None = None) -> "TrainConfig":
        """Settings `given` over `defaults`, each checked by name, type and range."""
        names = [f.name for f in fields(cls)]
        return cls(**{**(defaults or {}), **settings.known("training", given, names)})


def stopping_score(score: float, decimals: int | None) -> float:
    """The validation score early stopping compares (Python's round, as the official evaluator)."""
    return score if decimals is None else round(score, decimals)


def _scan(history: list[dict], config: TrainConfig) -> tuple[float, int, int, int | None]:
    """Early stopping under `config` over a validation curve: (best score, best epoch, epochs without
    gain since, the epoch it stops before or None if it would go on)."""
    best, best_epoch, stale = -math.inf, -1, 0
    for epoch, row in enumerate(history):
        if stale > config.patience:
            return best, best_epoch, stale, epoch
        score = stopping_score(row[config.valid_metric], config.valid_decimals)
        if score > best:
            best, best_epoch, stale = score, epoch, 0
        else:
            stale += 1
    done = stale > config.patience or len(history) >= config.epochs
    return best, best_epoch, stale, len(history) if done else None


def replay_stopping(history: list[dict], config: TrainConfig) -> tuple[int, int] | None:
    """(best epoch, epochs run) that early stopping under `config` keeps on a recorded validation curve,
    or None if the curve ends before that rule would have stopped (it would have trained on)."""
    _, best_epoch, _, stop = _scan(history, config)
    return None if stop is None else (best_epoch, stop)


class DivergedError(ValueError):
    """Training produced a non-finite loss or non-finite scores: nothing of it may be kept."""


class CheckpointError(ValueError):
    """A checkpoint is unreadable or belongs to another run, dataset or model shape."""


def save_atomic(obj, path: Path) -> None:
    """torch.save, whole or not at all (`rasekit.files.atomic`). The bytes are made in memory first: torch
    writing to a full disk reports only "enforce fail at inline_container.cc", the kit's write names the
    file and the disk."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic.write_bytes(path, buffer.getvalue())


def load_checkpoint(path: Path, meta: dict, model: nn.Module | None = None) -> dict:
    """Load weights-only (no pickled code runs), check it belongs to this run, check parameter shapes."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for truncated or foreign files
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(err).__name__}: {err})") from None
    if not isinstance(state, dict) or "meta" not in state or "model" not in state:
        raise CheckpointError(f"{path}: not a rasekit checkpoint (no 'meta'/'model' entries)")
    for key, want in meta.items():
        if state["meta"].get(key) != want:
            raise CheckpointError(f"{path}: checkpoint has {key}={state['meta'].get(key)!r}, "
                                  f"this run needs {want!r}")
    if model is not None:
        check_shapes(path, state["model"], model)
    return state


def check_shapes(path: Path, weights: dict, model: nn.Module) -> None:
    own = model.state_dict()
    missing, extra = set(own) - set(weights), set(weights) - set(own)
    if missing or extra:
        raise CheckpointError(f"{path}: parameters differ: missing {sorted(missing)[:5]}, "
                              f"unexpected {sorted(extra)[:5]}")
    for name, tensor in own.items():
        if tuple(weights[name].shape) != tuple(tensor.shape):
            raise CheckpointError(f"{path}: {name} has shape {tuple(weights[name].shape)}, "
                                  f"the model needs {tuple(tensor.shape)}")


def evaluate_part(task: Task, part: str, chunk: int) -> np.ndarray:
    task.model.eval()
    with torch.no_grad():
        try:
            return target_ranks(lambda index: task.scores(part, index), task.targets(part), chunk=chunk)
        except NonFiniteScoresError as err:
            raise DivergedError(f"{part} scores are not finite: {err}") from None


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Adam:
    """Adam over the trainable parameters; under the fast kernels one fused kernel updates them all (the
    same update but for float rounding)."""
    params = [p for p in model.parameters() if p.requires_grad]
    fused = config.kernels == "fast" or None  # None: torch's default
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay, fused=fused)


def _train_epoch(task: Task, optimizer, config: TrainConfig, rng: np.random.Generator, desc: str) -> float:
    task.model.train()
    order = rng.permutation(task.n_train)
    batches = [order[i:i + config.batch_size] for i in range(0, len(order), config.batch_size)]
    total = 0.0
    for step, index in enumerate(tqdm(batches, desc=desc, leave=False, mininterval=1.0), start=1):
        optimizer.zero_grad(set_to_none=True)
        loss = task.train_loss(index, rng)
        value = loss.item()
        if not math.isfinite(value):  # checked before the step, so no NaN reaches the weights
            raise DivergedError(f"training loss is {value} at batch {step} of {len(batches)}")
        loss.backward()
        optimizer.step()
        total += value
    return total


RESUME_ENTRIES = ("model", "optimizer", "torch_rng", "numpy_rng", "loop")


def _resume(last: Path, meta: dict, task: Task, optimizer, rng: np.random.Generator,
            config: TrainConfig) -> dict:
    """Restore model, optimizer, both random generators and the loop state from `last`."""
    saved = load_checkpoint(last, meta, task.model)
    missing = [entry for entry in RESUME_ENTRIES if entry not in saved]
    if missing:
        raise CheckpointError(f"{last}: not a resumable checkpoint (it lacks {', '.join(missing)}); "
                              f"delete it to train this run from the start")
    task.model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    torch.set_rng_state(saved["torch_rng"])
    rng.bit_generator.state = saved["numpy_rng"]
    return _same_rule(saved["loop"], config, last)


def _same_rule(state: dict, config: TrainConfig, last: Path) -> dict:
    """The loop state under this run's stopping rule. A checkpoint from before the rule was a setting
    compared exact values: it goes on only if the rule keeps the same best epoch so far (so best.pt is
    still the best), with the rule's best score and count of epochs without gain."""
    if state.get("valid_decimals", "unset") == config.valid_decimals:
        return state
    best, best_epoch, stale, stop = _scan(state["history"], config)
    if best_epoch != state["best_epoch"]:
        raise CheckpointError(f"{last}: this run was started comparing validation scores another way "
                              f"(best epoch {state['best_epoch']}; rounded to {config.valid_decimals} "
                              f"decimals it would be {best_epoch}); delete it to train this run again")
    history = state["history"][:stop]  # the rule would have stopped there: the epochs after never ran
    return {**state, "history": history, "epoch": len(history) - 1, "best_score": best, "stale": stale,
            "valid_decimals": config.valid_decimals}


def _keep_epoch(task: Task, optimizer, rng, state: dict, epoch: int, loss: float, valid: dict,
                config: TrainConfig, meta: dict, run_dir: Path) -> None:
    """Record a finished epoch in `state` and on disk: its history line, the best checkpoint if its
    (rounded) score improved, and the last checkpoint, which holds all a resume needs."""
    score = stopping_score(valid[config.valid_metric], config.valid_decimals)
    state["history"].append({"epoch": epoch, "loss": loss, **valid})
    if score > state["best_score"]:  # strict improvement of the (rounded) score, as the official rule
        state.update(best_score=score, best_epoch=epoch, stale=0)
        save_atomic({"meta": meta, "model": task.model.state_dict()}, run_dir / "best.pt")
    else:
        state["stale"] += 1
    state["epoch"] = epoch
    save_atomic({"meta": meta, "model": task.model.state_dict(), "optimizer": optimizer.state_dict(),
                 "torch_rng": torch.get_rng_state(), "numpy_rng": rng.bit_generator.state,
                 "loop": state}, run_dir / "last.pt")


def _test_best(task: Task, config: TrainConfig, best: Path, meta: dict, name: str):
    """Validation and test ranks of the best epoch's model (`name`: the run and epoch, for errors)."""
    task.model.load_state_dict(load_checkpoint(best, meta, task.model)["model"])
    try:
        valid_ranks = evaluate_part(task, "valid", config.eval_chunk)
        task.before_test()
        return valid_ranks, evaluate_part(task, "test", config.eval_chunk)
    except DivergedError as err:
        raise DivergedError(f"{name}: {err}") from None


def fit(task: Task, config: TrainConfig, run_dir: Path, meta: dict, seed: int, log=print,
        name: str = "run", threads: Threads | None = None) -> dict:
    """Train with early stopping, resuming from run_dir/last.pt if present; test the best epoch.

    meta: facts a checkpoint must share with this run (e.g. config hash, dataset, n_items); a
    checkpoint with other values is refused rather than silently reused. name: what the log and the
    errors call this run (e.g. "DuoRec (stage 1) on Beauty, seed 1"). `threads` chooses the thread count
    (None: the count a resumed run had, else torch's current one).
    A non-finite loss or score stops the run with a DivergedError before that epoch is checkpointed, so
    neither "best" nor "last" ever holds a diverged model and no result is returned.
    Returns best epoch, epochs run, the history, the epochs after which it resumed, and validation/test
    metrics and per-instance ranks."""
    run_dir = Path(run_dir)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    if hasattr(task.model, "kernels"):  # an encoder computes with the run's kernels
        task.model.kernels = config.kernels
    optimizer = make_optimizer(task.model, config)
    state = {"epoch": -1, "best_epoch": -1, "best_score": -np.inf, "stale": 0, "history": [],
             "train_seconds": 0.0, "cpu_seconds": 0.0, "valid_decimals": config.valid_decimals}
    last, best = run_dir / "last.pt", run_dir / "best.pt"
    if last.exists():
        state = _resume(last, meta, task, optimizer, rng, config)
        state.setdefault("cpu_seconds", None)  # a checkpoint from before CPU time was counted: unknown
        state["resumed_after"] = [*state.get("resumed_after", []), state["epoch"]]  # named in the record
        log(f"{name}: resuming after epoch {state['epoch']} from {last}")
    count = threads.choose(state.get("threads")) if threads else state.get("threads") or torch.get_num_threads()
    state["threads"] = count
    torch.set_num_threads(count)
    for epoch in range(state["epoch"] + 1, config.epochs):
        if state["stale"] > config.patience:
            break
        start, cpu = time.perf_counter(), time.process_time()
        try:
            loss = _train_epoch(task, optimizer, config, rng, desc=f"{name} epoch {epoch}")
            valid = metrics(evaluate_part(task, "valid", config.eval_chunk))
        except DivergedError as err:
            raise DivergedError(f"{name} diverged in epoch {epoch}: {err}. Nothing of this epoch was kept "
                                f"(no checkpoint, no ledger record); a smaller lr usually helps") from None
        state["train_seconds"] += time.perf_counter() - start
        if state["cpu_seconds"] is not None:  # CPU time of all the process's threads: a pause adds nothing
            state["cpu_seconds"] += time.process_time() - cpu
        _keep_epoch(task, optimizer, rng, state, epoch, loss, valid, config, meta, run_dir)
        shown = dict.fromkeys([config.valid_metric, "HR@10", "NDCG@10"])  # the stopping metric first
        log(f"{name} epoch {epoch}: loss {loss:.1f}  valid "
            + "  ".join(f"{m} {valid[m]:.4f}" for m in shown)
            + f"  ({time.perf_counter() - start:.1f} s, {count} thread{'s' if count > 1 else ''})")
    if threads:
        threads.release()  # a claim left by a failure expires by itself (rasekit.runs.threads.GRACE_S)
    valid_ranks, test_ranks = _test_best(task, config, best, meta, f"{name}, best epoch {state['best_epoch']}")
    return {"best_epoch": state["best_epoch"], "epochs_run": state["epoch"] + 1,
            "history": state["history"], "train_seconds": state["train_seconds"],
            "cpu_seconds": state["cpu_seconds"],
            "resumed_after": state.get("resumed_after", []),
            "valid_metrics": metrics(valid_ranks), "metrics": metrics(test_ranks),
            "valid_ranks": valid_ranks, "test_ranks": test_ranks, "config": asdict(config)}
