"""Test metrics of stage-1 runs at their early-stopped (best) and last checkpoints, with the epoch each
holds: shows whether early stopping left accuracy on the table.
    RASEKIT_DATA_DIR=../shared/data .venv/bin/python scripts/best_vs_last.py KEY [KEY ...]
KEY: a stage-1 run of the ledger (`python -m rasekit results`); its checkpoints must be in the cache."""
import sys

from rasekit.runs import experiments, ledger, profiles
from rasekit.evaluate import metrics
from rasekit.models.objectives import make_objective
from rasekit.stages.pretraining import PretrainTask
from rasekit.stages.loop import evaluate_part

SHOWN = ("HR@5", "HR@10", "NDCG@5", "NDCG@10")


def main(keys: list[str]) -> None:
    for key in keys:
        rec = ledger.get(key)
        if rec is None or rec.get("stage") != "pretrain":
            sys.exit(f"{key}: no stage-1 run of that key in the ledger")
        data = experiments.load_data(rec["dataset"], profiles.get(rec["profile"]))
        objective = make_objective(rec["config"]["objective"], **rec["config"]["objective_params"])
        for name, epoch in {"best.pt": rec["best_epoch"], "last.pt": rec["epochs_run"] - 1}.items():
            model = experiments.load_pretrained(rec, "cpu", checkpoint=name)
            got = metrics(evaluate_part(PretrainTask(model, objective, data, "cpu"), "test", 1024))
            print(f"{rec['dataset']} {rec['model']} seed {rec['seed']} {name} (epoch {epoch}): "
                  + "  ".join(f"{m} {got[m]:.4f}" for m in SHOWN))


if __name__ == "__main__":
    main(sys.argv[1:])
