"""Test-time variants of a trained run: the same frozen encoder and trained RAM, evaluated under a change
(K, the index and its nprobe, the memory bank restricted to a partition, noisy or truncated input
sequences; for a run trained on older data, the full data's test, its bank updated or not) without
training again. A stage-1 run (SASRec, DuoRec, ...) has only the noise, truncation and full-data variants.

A variant is an evaluation, not a training run: seconds, cached as its own ledger record (stage
"variant") that names its parent run, with its per-instance ranks beside it. The variant that changes
nothing gives exactly the parent's test ranks (tests/test_variants.py)."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace

from rasekit.data import sources
from rasekit.memory import partitions
from rasekit.runs import experiments, ledger, loading, profiles, store
from rasekit.runs.loading import MissingWeights
from rasekit import settings
from rasekit.evaluate import metrics
from rasekit.data.noise import Noise, noisy_data
from rasekit.settings import SettingsError
from rasekit.runs.keys import run_key
from rasekit.runs.provenance import git_commit, record as provenance
from rasekit.runs import threads
from rasekit.stages.pretraining import PretrainTask
from rasekit.stages import bank_update
from rasekit.stages.loop import evaluate_part

SCHEMA = 1  # bump when the meaning of a field changes, so old variant records are not reused


@dataclass(frozen=True)
class TestVariant:
    """What differs from the parent run at test time; None keeps the parent's setting."""
    k: int | None = None
    index: str | None = None
    nprobe: int | None = None
    partition: dict | None = None  # the train bank restricted as `memory.partitions.bank_filter` says
    noise: Noise | None = None     # noisy test inputs (and bank, if noise.bank == "noisy")
    # test inputs cut to their last `truncate` items; the same-user filter reads the cut length, so of the
    # user's own memories only those shorter than the cut stay retrievable (its earliest prefixes)
    truncate: int | None = None
    # a run trained on older data ("Beauty:last=2") tested on the full data's test items and inputs; with
    # bank_update, the memories its bank lacks enter it first (`stages.bank_update`, notebook 11)
    full_data: bool | None = None
    bank_update: bool | None = None

    def __post_init__(self):
        if self.k is not None:
            settings.integer("k", self.k, 1, settings.RamConfig.K_MAX)
        if self.index is not None:
            settings.choice("index", self.index, settings.INDEX_KINDS)
        if self.nprobe is not None:
            settings.integer("nprobe", self.nprobe, 1)
        partitions.check(self.partition)
        if self.truncate is not None:
            settings.integer("truncate", self.truncate, 1)
        for name in ("full_data", "bank_update"):  # True or None only: False would key the same test apart
            if getattr(self, name) not in (None, True):
                raise SettingsError(f"{name}={getattr(self, name)!r} is not allowed: True or None")
        if self.bank_update and not self.full_data:
            raise SettingsError("bank_update=True needs full_data=True: the update is of the newer data")
        if self.full_data and set(self.changes()) - {"full_data", "bank_update"}:
            raise SettingsError(f"full_data=True takes no other change; got {sorted(self.changes())}")

        if self.noise is not None and not isinstance(self.noise, Noise):
            raise SettingsError(f"noise={self.noise!r} is not allowed: expected a rasekit.data.noise.Noise")

    def changes(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def retrieval_changes(self) -> dict:
        """The changes that only a stage-2 run has (retrieval and its bank)."""
        return {k: v for k, v in self.changes().items() if k not in ("noise", "truncate", "full_data")}


def _key(parent: dict, variant: TestVariant) -> tuple[dict, str]:
    config = {"stage": "variant", "schema": SCHEMA, "parent": parent["key"], "variant": variant.changes()}
    return config, run_key(config)


def recorded(parent: dict, variant: TestVariant) -> dict | None:
    """The ledger record of `variant` of `parent`, if the ledger holds it (nothing is evaluated)."""
    return ledger.get(_key(parent, variant)[1])


def available(parent: dict, wanted: list[TestVariant]) -> bool:
    """Whether the variants `wanted` of `parent` can be had here: all recorded, or its trained model
    loadable to evaluate the others. A run whose variants are all recorded needs no weights."""
    return all(recorded(parent, v) for v in wanted) or experiments.loadable(parent)


def evaluate(parent: dict, variant: TestVariant, device=None, log=print) -> dict:
    """The ledger record of `variant` of the trained run `parent` (its ledger record): reused if the
    ledger holds it, else evaluated now (MissingWeights, before any data is read, if the trained model
    is not here to evaluate it)."""
    stage = parent.get("stage")
    if stage not in ("pretrain", "finetune"):
        raise ValueError(f"run {parent['key']} is a {stage} run; variants are of trained runs")
    if stage == "pretrain" and variant.retrieval_changes():
        raise SettingsError(f"{sorted(variant.retrieval_changes())} change retrieval, which the stage-1 "
                            f"run {parent['model']} ({parent['key']}) does not have; only noise and truncation apply")
    if variant.full_data and not sources.of_config(parent["config"]).held_out.config:
        raise SettingsError(f"full_data=True tests a run trained on older data (\"Beauty:last=2\"); "
                            f"{parent['model']} ({parent['key']}) was trained on the full {parent['dataset']}")
    config, key = _key(parent, variant)
    cached = ledger.get(key)
    if cached:
        log(f"reusing {cached['model']} ({key})")
        return cached
    if not experiments.loadable(parent):
        raise MissingWeights(f"the test-time variant {variant.changes() or '(no change)'} of {parent['model']} on "
                             f"{parent['dataset']}, seed {parent['seed']} ({parent['key']}) is not in the "
                             f"ledger, and the run's trained weights (or its backbone's) are not here to "
                             f"evaluate it: train the run again (Run.execute(need_weights=True), or "
                             f"`python -m rasekit plan ... --run`)")
    device = device or experiments.default_device()
    data = experiments.load_data(parent["config"], profiles.get(parent["profile"]))
    if variant.noise is not None:
        data = noisy_data(data, variant.noise)
    if variant.truncate is not None:
        data = replace(data, test=data.test.last(variant.truncate))
    start, commit = time.perf_counter(), git_commit()
    with threads.limited() as count:  # the cores other runs leave free, as a training run takes them
        task = trained_task(parent, variant, data, device) if stage == "finetune" else \
            PretrainTask(experiments.load_pretrained(parent, device), None, data, device)
        ranks = _test_ranks(task, parent, variant, data)
        name = parent["model"] + " @test " + ", ".join(f"{k}={_short(v)}" for k, v in sorted(variant.changes().items()))
        log(f"evaluated {name} in {time.perf_counter() - start:.1f} s ({count} thread{'s' if count > 1 else ''})")
        prov = provenance([sources.of_config(parent["config"])], device=device, commit=commit,
                                 wall_time_s=time.perf_counter() - start)
    ranks_file = store.save_ranks(key, {"test": ranks})
    rec = {"key": key, "stage": "variant", "dataset": parent["dataset"], "model": name, "seed": parent["seed"],
           "profile": parent["profile"], "parent": parent["key"], "config": config, "metrics": metrics(ranks),
           "ranks": ranks_file,
           **({"bank_size": len(task.bank)} if stage == "finetune" else {}),
           "provenance": prov}
    ledger.put(rec)
    return rec


def _test_ranks(task, parent: dict, variant: TestVariant, data):
    """The test ranks of the task: of its own data, or of the full data (with the bank update)."""
    if not variant.full_data:
        return evaluate_part(task, "test", chunk=1024)
    full = experiments.load_data(sources.of_config(parent["config"]).base, profiles.get(parent["profile"]))
    if parent["stage"] == "pretrain":
        return bank_update.backbone_ranks(task.model, full)
    if variant.bank_update:
        bank_update.update_bank(task, bank_update.new_instances(full, data))
    return bank_update.test_ranks(task, full)


def _short(value) -> str:
    """A variant's value for its name: a noise setting as its fields."""
    if isinstance(value, dict):
        return "(" + ", ".join(f"{k}={v}" for k, v in value.items()) + ")"
    return str(value)


def trained_task(parent: dict, variant: TestVariant, data, device):
    """The parent's RaSeRecTask under the variant's retrieval changes, its trained RAM loaded, the
    test-time bank ready."""
    changes = variant.retrieval_changes()
    return loading.stage2_task(parent, device=device, data=data,
                               ram={k: v for k, v in changes.items() if k not in ("partition", "bank_update")},
                               partition=changes.get("partition"), keep_partition="partition" not in changes)
