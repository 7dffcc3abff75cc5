"""The settings the sensitivity and ablation notebooks vary, each a stage-2 run around the official one.

The paper's "Parameter Sensitivity" part covers K, alpha and beta, but no value can be read from its
figure (docs/method.md §10.6, §11.10), so the grids here are the kit's choice, around the official setting
(K 20, alpha 0.5, beta 1, tau 1, dropout 0.5). Each point changes one setting, the others official.
"""
from __future__ import annotations

from rasekit.settings import RamConfig, SettingsError

OFFICIAL = RamConfig()
LEARNED = "learned"  # alpha (or beta) learned with the module instead of fixed

GRIDS = {"k": (1, 5, 10, 20, 40, 80), "alpha": (0.1, 0.3, 0.5, 0.7, 0.9, LEARNED),
         "beta": (0.0, 0.25, 0.5, 0.75, 1.0), "tau": (0.1, 0.5, 1.0, 2.0, 5.0),
         "dropout": (0.1, 0.3, 0.5, 0.7)}
# Smoke runs take seconds each, but CI runs every notebook: two points per setting show the pipeline.
SMOKE_GRIDS = {"k": (5, 20), "alpha": (0.5, LEARNED), "beta": (0.5, 1.0), "tau": (0.5, 1.0),
               "dropout": (0.3, 0.5)}
SECOND_DATASET_PARAMETERS = ("k", "alpha")  # the other datasets get these on one seed (CPU time)

# The ablation's rows: the module's parts, and two controls no paper reports. None: the backbone alone.
ABLATION = {"backbone alone": None,
            "channel 1 only (official)": {},
            "channel 2 only": {"beta": 0.0},
            "both channels": {"beta": 0.5},
            "with residual and LayerNorm": {"residual": True, "layer_norm": True},
            "K random memories": {"memories": "random"},
            "same-user filter off": {"same_user_filter": False}}

# Test-time retrieval of a trained official run: K, and the FAISS index (official: IVF, nprobe 1).
TEST_K = (1, 5, 10, 20, 40, 80)
INDEXES = {"IVF nprobe 1 (official)": {}, "IVF nprobe 4": {"nprobe": 4}, "IVF nprobe 16": {"nprobe": 16},
           "IVF nprobe 128": {"nprobe": 128}, "HNSW": {"index": "hnsw"}, "exact": {"index": "exact"}}


def grids(profile: str, parameters=None) -> dict[str, tuple]:
    """The grid of each parameter asked for (all by default) under a profile."""
    chosen = SMOKE_GRIDS if profile == "smoke" else GRIDS
    names = list(parameters or chosen)
    unknown = [n for n in names if n not in chosen]
    if unknown:
        raise SettingsError(f"parameters={unknown} is not allowed: expected names among {list(chosen)}")
    return {n: chosen[n] for n in names}


def change(parameter: str, value) -> dict:
    """The RAM settings of one grid point that differ from the official ones ({} at the official value)."""
    if value == LEARNED:
        return {f"learn_{parameter}": True}
    return {} if value == getattr(OFFICIAL, parameter) else {parameter: value}


def is_official(parameter: str, value) -> bool:
    return value != LEARNED and value == getattr(OFFICIAL, parameter)
