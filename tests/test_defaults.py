"""Each official setting is defined once (RamConfig, TrainConfig); every other place that offers a default
for it offers the same value, so that no code path can drift from the paper's settings."""
import inspect
from dataclasses import fields

import pytest

from rasekit.memory import bank, controls
from rasekit.models import ram
from rasekit.runs import experiments
from rasekit.settings import RamConfig
from rasekit.stages.loop import TrainConfig

OFFICIAL = RamConfig()
# a parameter's name where it differs from the RamConfig field it stands for
ALIASES = {"kind": "index"}
OTHER_MEANING = {("MemoryBank", "index")}  # the bank's FAISS index object, not the index kind
PLACES = [ram.RetrievalAugmentedModule.__init__, ram.CrossAttention.__init__, bank.MemoryBank,
          bank.MemoryBank.from_arrays, bank.MemoryBank.build, bank.MemoryBank.search, bank.make_index,
          bank.ivf_lists, controls.random_memories]


@pytest.mark.parametrize("place", PLACES, ids=lambda f: f.__qualname__)
def test_every_default_of_a_ram_setting_is_the_official_one(place):
    names = {f.name for f in fields(RamConfig)}
    offered = {name: p.default for name, p in inspect.signature(place).parameters.items()
               if ALIASES.get(name, name) in names and p.default is not inspect.Parameter.empty
               and (place.__qualname__, name) not in OTHER_MEANING}
    assert offered, f"{place.__qualname__} offers no RAM default: remove it from PLACES"
    for name, default in offered.items():
        assert default == getattr(OFFICIAL, ALIASES.get(name, name)), f"{place.__qualname__}: {name}={default!r}"


def test_the_settings_every_key_names_are_the_typed_defaults():
    assert experiments.RAM == {name: getattr(OFFICIAL, name) for name in experiments.RAM}
    train = TrainConfig()
    assert experiments.PRETRAIN == {name: getattr(train, name) for name in experiments.PRETRAIN}
    differ = {k for k in experiments.FINETUNE if experiments.FINETUNE[k] != experiments.PRETRAIN[k]}
    assert differ == {"batch_size", "valid_metric"}  # stage 2's own official settings (docs/method.md §8.2)
