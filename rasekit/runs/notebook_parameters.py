"""Notebook parameters (`-p NAME VALUE` of `batch` and `plan`, or what papermill injects), checked by name,
type and range before any work, with the message `rasekit.settings` gives. A notebook declares its
parameters in its cell tagged `parameters`; a parameter's type follows its default there, and the ones
below whose defaults say too little (lists, named choices, ranges) have rules of their own. `batch`,
`plan` and every notebook's setup cell call this module."""
from __future__ import annotations

import ast
import functools
import json
import math
import numbers

from rasekit import settings
from rasekit.data import noise, sources
from rasekit.runs import notebook_files, profiles, sweeps

# The batch reads this one itself (`--reference` sets it for every notebook; the ones that do not declare
# it train nothing anyway), so it is never refused as unknown.
BATCH_WIDE = ("reuse_only",)


@functools.cache
def declared(notebook: str) -> dict:
    """{name: default} of a notebook's `parameters` cell (the notebook by name, e.g. "01_main_results")."""

    cells = json.loads(notebook_files.notebook_paths([notebook])[0].read_text())["cells"]
    source = next("".join(c["source"]) for c in cells if "parameters" in c["metadata"].get("tags", ()))
    return {node.targets[0].id: ast.literal_eval(node.value)
            for node in ast.parse(source).body if isinstance(node, ast.Assign)}


def of(notebook: str, parameters: dict) -> dict:
    """The ones of `parameters` the notebook declares (a batch passes each notebook its own)."""
    return {k: v for k, v in parameters.items() if k in declared(notebook)}


def check(notebooks: list[str], parameters: dict | None, profile: str | None = None) -> dict:
    """`parameters` for the notebooks named, each declared by at least one of them (it goes to those) and
    of its type and range; `profile`: the one the batch or plan runs with, which a `profile` parameter
    must not contradict."""
    parameters = dict(parameters or {})
    for name, value in parameters.items():
        defaults = [declared(nb)[name] for nb in notebooks if name in declared(nb)]
        if not defaults and name not in BATCH_WIDE:
            offer = "; ".join(f"{nb}: {', '.join(declared(nb))}" for nb in notebooks)
            raise settings.SettingsError(f"{name}={value!r} is not allowed: expected a parameter of the "
                                         f"notebooks named ({offer})")
        value_of(name, value, defaults[0] if defaults else False)
    if profile is not None and parameters.get("profile", profile) != profile:
        raise settings.SettingsError(f"profile={parameters['profile']!r} is not allowed: expected {profile!r}, "
                                     f"the profile of this batch or plan; choose it with --profile "
                                     f"(or $RASEKIT_PROFILE), not -p")
    return parameters


def check_notebook(notebook: str, scope: dict) -> None:
    """A notebook's parameters as its kernel holds them (`globals()` after papermill's cell), checked in
    its setup cell: the same rules in a batch, under nbval or run by hand."""
    check([notebook], {name: scope[name] for name in declared(notebook) if name in scope})


def value_of(name: str, value, default):
    """One parameter checked by its rule, else by the type of its default. None stays allowed where the
    default is None: it stands for the profile's own choice."""
    if value is None and default is None:
        return None
    rule = RULES.get(name)
    return rule(name, value) if rule else _like(name, value, default)


def _like(name: str, value, default):
    """`value` of the type of `default` (an int where an int is, a number where a float is, ...)."""
    if isinstance(default, bool):
        return settings.boolean(name, value)
    if isinstance(default, int):
        return settings.integer(name, value)
    if isinstance(default, float):
        return settings.real(name, value)
    for kind, allowed in ((str, "a string"), (list, "a list"), (dict, "a mapping")):
        if isinstance(default, kind):
            return settings.instance(name, value, kind, allowed)
    return value


def _datasets(name: str, value, empty: bool = False) -> list:
    """Distinct datasets, each a registered name or a data file's path. Two files of one name (stem)
    would be pooled as seeds of one dataset, so they are refused, both named."""
    settings.distinct_list(name, value, lambda d: isinstance(d, str) and d.strip() != "",
                           'dataset names or data file paths, e.g. ["Beauty"]', empty)
    seen: dict[str, str] = {}
    for given in value:
        source = sources.resolve(given)
        if source.name in seen:
            raise settings.SettingsError(f"{name}={value!r} is not allowed: {seen[source.name]!r} and {given!r} "
                                         f"are both the dataset {source.name!r}; expected distinct datasets "
                                         f"(rename one of two files with the same name)")
        seen[source.name] = given
    return list(value)


def _seeds(name: str, value) -> list:
    """Distinct seeds: a seed given twice would count one run as two (a spread of 0, a paired test)."""
    def fits(s):
        return not isinstance(s, bool) and isinstance(s, numbers.Integral) and 0 <= s <= settings.SEED_MAX
    return settings.distinct_list(name, value, fits, f"integer seeds in 0..{settings.SEED_MAX}, e.g. [1, 2, 3]")


def _models(name: str, value) -> list:
    from rasekit.models.backbones import ENCODERS
    from rasekit.models.objectives import OBJECTIVES

    def fits(pair):
        return (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(isinstance(p, str) for p in pair)
                and pair[0] in ENCODERS and pair[1] in OBJECTIVES
                and (pair[0] == "bert4rec") == (pair[1] == "cloze"))
    return settings.distinct_list(name, value, fits, f"[encoder, objective] pairs (encoders "
                                  f"{', '.join(ENCODERS)}; objectives {', '.join(OBJECTIVES)}; bert4rec goes "
                                  f"with cloze)")


def _backbones(name: str, value) -> list:
    from rasekit.runs.experiments import BACKBONES
    return settings.distinct_list(name, value, lambda b: isinstance(b, str) and b in BACKBONES,
                                  f"backbones ({', '.join(BACKBONES)})")


def _ratios(name: str, value) -> list:
    def fits(r):
        return not isinstance(r, bool) and isinstance(r, numbers.Real) and math.isfinite(r) and 0 <= r <= 1
    return settings.distinct_list(name, value, fits, "noise ratios in [0, 1], e.g. [0.0, 0.1, 0.2]")


def _transition(name: str, value) -> dict:
    from rasekit.models.baselines import TransitionSettings
    TransitionSettings(**settings.known(name, value, TransitionSettings.__dataclass_fields__))
    return value


def _choice(options):
    return lambda name, value: settings.choice(name, value, tuple(options))


RULES = {
    "profile": _choice(profiles.PROFILE_ORDER),
    "datasets": _datasets,
    "gap_datasets": functools.partial(_datasets, empty=True),  # []: no Sports-gap runs
    "other_datasets": functools.partial(_datasets, empty=True),
    "seeds": _seeds,
    "baseline_seeds": _seeds,
    "models": _models,
    "backbones": _backbones,
    "ratios": _ratios,
    "mode": _choice(noise.MODES),
    "bank": _choice(noise.BANKS),
    "rule": _choice(settings.GROUP_RULES),
    "metric": _choice(settings.METRICS),
    "n_groups": lambda name, value: settings.integer(name, value, 1),
    "n_parts": lambda name, value: settings.integer(name, value, 2, 10),  # partitions.removals' range
    "noise_seed": lambda name, value: settings.integer(name, value, 0, settings.SEED_MAX),
    "transition": _transition,
    "parameters": lambda name, value: list(sweeps.grids("full", value)),  # sensitivity's settings
    "sizes": lambda name, value: settings.distinct_list(name, value, lambda n: not isinstance(n, bool) and isinstance(
        n, numbers.Integral) and n >= 1, "bank sizes, positive integers, e.g. [1000000]"),
    "largest_hnsw": lambda name, value: settings.integer(name, value, 1),
    "queries": lambda name, value: settings.integer(name, value, 1),
    "truncations": lambda name, value: settings.distinct_list(name, value, lambda n: not isinstance(n, bool) and isinstance(
        n, numbers.Integral) and n >= 1, "numbers of last items to keep, positive integers, e.g. [1, 2, 5, 10]"),
    "n_per_group": lambda name, value: settings.integer(name, value, 1),
    "held_out": lambda name, value: settings.distinct_list(name, value, lambda n: not isinstance(n, bool) and isinstance(
        n, numbers.Integral) and 1 <= n <= 10, "interactions held out per user, integers in 1..10, e.g. [1, 2, 3]"),
    "new_users": lambda name, value: settings.real(name, value, 0, 0.9),
    "choice_seed": lambda name, value: settings.integer(name, value, 0, settings.SEED_MAX),
}
