"""Command line: `python -m rasekit <command>`; `--help` on each command lists its options."""
from __future__ import annotations

import argparse
import json
import os
import sys

from rasekit.runs import ledger, profiles, threads


def _stats(args) -> None:
    from rasekit import data
    from rasekit.data import sources
    source = sources.resolve(args.dataset)  # a registered name, or a data file as every command takes
    split = source.load() if source.path else data.load(source.name, download=not args.offline)
    stats = split.statistics()
    if args.json:
        print(json.dumps(stats))
        return
    labels = {"dataset": "dataset", "users": "#users", "items": "#items", "interactions": "#interactions",
              "avg_length": "avg. length", "sparsity": "sparsity (%)", "train": "#train instances",
              "valid": "#valid instances", "test": "#test instances"}
    width = max(map(len, labels.values()))
    for key, label in labels.items():
        value = stats[key]
        print(f"{label:<{width}}  {value:,}" if isinstance(value, int) else f"{label:<{width}}  {value}")


def _results(args) -> None:
    from rasekit.files import paths
    root = paths.reference_dir() if args.reference else None
    if args.json:
        for rec in ledger.records(root):
            print(json.dumps({k: rec[k] for k in ("key", "dataset", "model", "seed", "profile", "metrics",
                                                  "provenance") if k in rec}))
        return
    table = ledger.summary(root=root) if args.summary else ledger.table(root=root)
    print("no results yet" if table.empty
          else table.to_string(index=False, float_format="%.4f", na_rep="-"))


def _pretrain(args) -> None:
    from rasekit.runs import experiments
    rec = experiments.pretrain(args.dataset, args.encoder, args.objective, args.seed, args.profile,
                               train=args.train)
    print(json.dumps({"key": rec["key"], "model": rec["model"], "best_epoch": rec["best_epoch"],
                      **{k: round(v, 4) for k, v in rec["metrics"].items() if k.split("@")[1] in ("5", "10")}}))


def _finetune(args) -> None:
    from rasekit.runs import experiments
    rec = experiments.finetune(args.dataset, backbone=args.backbone, seed=args.seed, profile=args.profile,
                               ram=args.ram, train=args.train, pretrain_train=args.pretrain_train)
    print(json.dumps({"key": rec["key"], "model": rec["model"], "best_epoch": rec["best_epoch"],
                      **{k: round(v, 4) for k, v in rec["metrics"].items() if k.split("@")[1] in ("5", "10")}}))


def _baseline(args) -> None:
    from rasekit.runs import experiments
    rec = experiments.baseline(args.dataset, args.name, args.profile, transition=args.transition)
    print(json.dumps({"key": rec["key"], "model": rec["model"],
                      **{k: round(v, 4) for k, v in rec["metrics"].items() if k.split("@")[1] in ("5", "10")}}))


def _batch(args) -> None:
    from rasekit.runs.runner import run_batch
    parameters = dict(_parameters(args.parameter))
    run_batch(args.profile, notebooks=args.notebooks or None, parameters=parameters, reference=args.reference,
              workers=args.workers)


def _promote(args) -> None:
    from rasekit.runs import store
    from rasekit.files import paths
    # a misspelt profile would match no run and promote nothing, in silence: refused by name instead
    profile = None if args.profile is None else profiles.get(args.profile).name
    keys = store.promote(args.keys or None, profile, weights=not args.no_weights)
    print(f"promoted {len(keys)} runs into the reference ({paths.ledger_dir(paths.reference_dir())})"
          + "".join(f"\n  {k}" for k in keys))


def _migrate(args) -> None:
    from rasekit.runs import keys
    from rasekit.files import paths
    root = paths.reference_dir() if args.reference else paths.output_dir()
    renamed = keys.migrate(root, checkpoints=not args.reference)  # the cache holds the user's own runs
    print(f"{len(renamed)} runs renamed to schema-{keys.SCHEMA} keys under {root}" if renamed
          else f"no run under {root} needed a new key (schema {keys.SCHEMA})")


def _verify(args) -> int:
    from rasekit.runs import store
    from rasekit.files import paths
    root = paths.reference_dir() if args.reference else paths.output_dir()
    count, problems = store.verify(root)
    for problem in problems:
        print(problem)
    print(f"{count} records under {root}: " + (f"{len(problems)} problem(s)" if problems
                                                else "every file present and matching its sha256"))
    return 1 if problems else 0


def _report(args) -> int:
    from rasekit.files import paths
    from rasekit.report import document
    changed = document.write(paths.reference_dir(), check=args.check)
    if args.check:
        print(f"stale: {', '.join(changed)} (regenerate with `python -m rasekit report`)" if changed
              else "REPORT.md and the README's claims table match the committed tables")
        return 1 if changed else 0
    print(f"regenerated {', '.join(changed)}" if changed else "REPORT.md and the README's claims were up to date")
    return 0


def _plan(args) -> int:
    from rasekit import settings
    from rasekit.runs import executors, plan
    settings.integer("workers", args.workers, 1)  # checked with or without --run: never taken in silence
    settings.integer("cpus_per_run", args.cpus_per_run, 1)
    settings.real("gpus_per_run", args.gpus_per_run, 0, 1)
    parameters = dict(_parameters(args.parameter))
    profile = profiles.get(args.profile).name
    steps = plan.build(profile, args.notebooks or None, parameters)
    print(plan.describe(steps, profile))
    if not args.run:
        return 0
    if args.ray:
        failures = executors.run_ray(steps, args.ray, cpus_per_run=args.cpus_per_run, gpus_per_run=args.gpus_per_run)
    else:
        failures = executors.run_local(steps, args.workers)
    print(f"{len(failures)} runs failed" if failures else "plan complete: every run is in the ledger")
    return 1 if failures else 0


def _parameters(pairs) -> list[tuple[str, object]]:
    """Notebook parameters from `-p NAME VALUE` pairs, VALUE as JSON (else a bare string)."""
    out = []
    for name, value in pairs:
        if name in dict(out):  # the last one would win, in silence
            raise ValueError(f"-p {name} is given twice ({dict(out)[name]!r} and {value}): expected it once")
        try:
            out.append((name, json.loads(value)))
        except json.JSONDecodeError:
            out.append((name, value))
    return out


def _settings(text: str) -> dict:
    """A JSON object of settings given on the command line, e.g. '{"batch_size": 1024}'."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not JSON ({err}): {text}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object of settings, got {text}")
    return value


PROFILE_HELP = f"run profile ({', '.join(profiles.PROFILE_ORDER)}; default $RASEKIT_PROFILE or default)"


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m rasekit", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)
    for add in (_reading_commands, _training_commands, _notebook_commands, _store_commands):
        add(sub)
    return top


def _reading_commands(sub) -> None:
    p = sub.add_parser("stats", help="dataset statistics (users, items, interactions, instances)")
    p.add_argument("--dataset", default="Beauty")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--offline", action="store_true", help="never download")
    p.set_defaults(func=_stats)

    p = sub.add_parser("results", help="list the results ledger")
    p.add_argument("--json", action="store_true", help="one JSON object per run")
    p.add_argument("--summary", action="store_true", help="mean and std over seeds instead of one row per run")
    p.add_argument("--reference", action="store_true", help="the reference (committed) runs, not your own")
    p.set_defaults(func=_results)


def _training_commands(sub) -> None:
    p = sub.add_parser("pretrain", help="stage 1: train an encoder (cached in the ledger)")
    p.add_argument("--dataset", default="Beauty")
    p.add_argument("--encoder", default="sasrec", choices=["sasrec", "gru4rec", "bert4rec"])
    p.add_argument("--objective", default="duorec", choices=["ce", "duorec", "cl4srec", "bpr", "cloze"],
                   help="bert4rec trains with cloze, the other encoders with any other objective")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--profile", default=None, help=PROFILE_HELP)
    p.add_argument("--train", type=_settings, default=None, metavar="JSON",
                   help="training settings that differ from the official ones, e.g. '{\"batch_size\": 1024}'")
    p.set_defaults(func=_pretrain)

    p = sub.add_parser("finetune", help="stage 2: retrieval-augmented fine-tuning on a cached encoder")
    p.add_argument("--dataset", default="Beauty")
    p.add_argument("--backbone", default="duorec", help="stage-1 model: duorec, sasrec, cl4srec, gru4rec")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--profile", default=None, help=PROFILE_HELP)
    p.add_argument("--ram", type=_settings, default=None, metavar="JSON",
                   help="module and retrieval settings, e.g. '{\"k\": 10, \"index\": \"exact\"}'")
    p.add_argument("--train", type=_settings, default=None, metavar="JSON", help="stage-2 training settings")
    p.add_argument("--pretrain-train", type=_settings, default=None, metavar="JSON",
                   help="training settings of the stage-1 run it starts from")
    p.set_defaults(func=_finetune)

    p = sub.add_parser("baseline", help="a training-free baseline (popularity, item transitions), as a ledger run")
    p.add_argument("--dataset", default="Beauty")
    p.add_argument("--name", default="transition", choices=["popularity", "transition"])
    p.add_argument("--profile", default=None, help=PROFILE_HELP)
    p.add_argument("--transition", type=_settings, default=None, metavar="JSON",
                   help="item-transition settings, e.g. '{\"hops\": 1, \"hop_weights\": [1.0]}'")
    p.set_defaults(func=_baseline)


def _notebook_commands(sub) -> None:
    p = sub.add_parser("batch", help="run the notebooks with papermill into runs/executed/<time>-<profile>/")
    p.add_argument("--profile", default=None, help=PROFILE_HELP)
    p.add_argument("notebooks", nargs="*", help="notebook names (default: the profile's; default runs those of "
                                                "the paper's tables and figures and the report; the others all)")
    p.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="notebook parameter, VALUE as JSON (e.g. -p seeds '[1, 2]')")
    p.add_argument("--reference", action="store_true",
                   help="train nothing: rebuild the committed tables and figures from the reference runs")
    p.add_argument("--workers", type=int, default=threads.cores(),
                   help="training runs side by side before the notebooks (default: the cores; 0: each "
                        "notebook trains its own runs, one at a time)")
    p.set_defaults(func=_batch)

    p = sub.add_parser("plan", help="the training runs the notebooks need (graph, status, estimated CPU "
                                    "time); --run runs the missing ones")
    p.add_argument("--profile", default=None, help=PROFILE_HELP)
    p.add_argument("notebooks", nargs="*", help="notebook names (default: every notebook that trains, of those "
                                                "the profile's batch runs)")
    p.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="notebook parameter that changes the runs, e.g. -p seeds '[1]'")
    p.add_argument("--run", action="store_true", help="execute the runs the ledger lacks")
    p.add_argument("--workers", type=int, default=1, help="local worker processes (threads split the cores)")
    p.add_argument("--ray", metavar="ADDRESS", help="run on Ray: a cluster address, 'auto', or 'local'")
    p.add_argument("--cpus-per-run", type=int, default=1, help="with --ray: CPUs each run asks for")
    p.add_argument("--gpus-per-run", type=float, default=0, help="with --ray: share of a GPU each run asks for")
    p.set_defaults(func=_plan)


def _store_commands(sub) -> None:
    p = sub.add_parser("promote", help="copy your finished runs (record, ranks, weights) into the reference")
    p.add_argument("keys", nargs="*", help="run keys (default: all your runs, or those of --profile)")
    p.add_argument("--profile", default=None, help="only runs of this profile")
    p.add_argument("--no-weights", action="store_true",
                   help="record and ranks only, for runs no notebook loads again from the reference")
    p.set_defaults(func=_promote)

    p = sub.add_parser("migrate", help="rename runs of older key schemas (records, ranks, weights, checkpoints) "
                                       "and give older records the sha256 of their ranks")
    p.add_argument("--reference", action="store_true",
                   help="the committed reference instead of your own runs (checkpoints are left alone)")
    p.set_defaults(func=_migrate)

    p = sub.add_parser("verify", help="check every run's record against its files (ranks and weights with their "
                                      "sha256, no orphaned or temporary file); exit status 1 on any problem")
    p.add_argument("--reference", action="store_true", help="the committed reference instead of your own runs")
    p.set_defaults(func=_verify)

    p = sub.add_parser("report", help="regenerate REPORT.md and the README's claims table from the committed "
                                      "tables and records")
    p.add_argument("--check", action="store_true", help="change nothing; exit status 1 if either is stale")
    p.set_defaults(func=_report)


def _check_environment() -> None:
    """Every environment variable the kit reads, checked before a command does any work."""
    from rasekit.files import paths
    paths.check_environment()
    threads.fixed_by_user()
    profiles.from_environment()


def _reader_gone() -> int:
    """Standard output's reader has exited (`... | head`): stop quietly, as Unix tools do, with nothing
    left for Python to complain about when it flushes standard output at exit."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 141  # 128 + SIGPIPE: what a shell reports for a tool whose reader went away


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        _check_environment()
        code = args.func(args) or 0
        sys.stdout.flush()  # a reader that went away shows here, not in Python's own flush at exit
        return code
    except BrokenPipeError:
        return _reader_gone()
    except (ValueError, KeyError, OSError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
