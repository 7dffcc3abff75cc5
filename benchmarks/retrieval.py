"""What retrieval costs, printed on purpose (the figures of notebook 10): inference latency and
throughput of a trained RaSeRec with and without retrieval, the memory it holds, and the bank at scale
(build, memory, search, recall@K against exact search) with the estimate beyond.

    RASEKIT_DATA_DIR=... python benchmarks/retrieval.py [--profile full] [--dataset Beauty] [--seed 1]
        [--sizes 1000000 3000000 10000000] [--queries 1000] [--threads 2] [--reference]

It needs the trained run's weights: your own (runs/own) or, with --reference, the committed ones.
"""
from __future__ import annotations

import argparse
import os

import pandas as pd


def main() -> None:
    args = parse()
    if args.reference:
        from rasekit.files import paths
        os.environ["RASEKIT_OUTPUT"] = str(paths.reference_dir())
    import faiss
    import torch

    from rasekit.analysis import efficiency
    from rasekit.runs import experiments, notebook_runs, profiles, provenance, variants

    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    prof = profiles.get(args.profile)
    _, run = notebook_runs.main_results_runs(prof.name, [args.dataset], [args.seed])[0]
    parent = run.execute(reuse_only=True)
    if parent is None or not experiments.loadable(parent):
        raise SystemExit(f"{run.label()}: not trained here with its weights; train it first "
                         f"(python -m rasekit finetune --dataset {args.dataset} --seed {args.seed} --profile {prof.name})")
    task = variants.trained_task(parent, variants.TestVariant(), experiments.load_data(parent["config"], prof),
                                 torch.device("cpu"))
    pd.set_option("display.width", 160)
    print(f"machine: {provenance.device_name('cpu')}; torch and FAISS threads: {args.threads}")
    print(efficiency.inference(task).round(2).to_string(index=False), end="\n\n")
    print(efficiency.memory(task).round(1).to_string(index=False), end="\n\n")
    real = task.bank.keys.numpy()
    curve = efficiency.scale_curve(real, [len(real)] + args.sizes, queries=args.queries)
    print(curve.drop(columns=["device"]).round(3).to_string(index=False), end="\n\n")
    print(efficiency.at_scale(curve).round(2).to_string(index=False))


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="full")
    p.add_argument("--dataset", default="Beauty")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--sizes", type=int, nargs="*", default=[1_000_000, 3_000_000, 10_000_000])
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--reference", action="store_true", help="the committed reference's trained run")
    return p.parse_args()


if __name__ == "__main__":
    main()
