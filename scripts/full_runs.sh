#!/usr/bin/env bash
# The full profile's training runs for one dataset and seed, in the background, one thread each so that
# two can share a 2-core machine. Resumable: run it again after an interruption and it continues.
# The runs land in your own store (runs/own/); `python -m rasekit promote --profile full` copies them
# into the committed reference. `python -m rasekit plan --profile full --run --workers 2` does the same
# for every run the notebooks need.
#   nohup bash scripts/full_runs.sh Beauty 1 > ~/.cache/rasekit/logs/Beauty-1.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
dataset=${1:-Beauty} seed=${2:-1}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} TQDM_DISABLE=1
py=.venv/bin/python
$py -m rasekit pretrain --dataset "$dataset" --objective duorec --seed "$seed" --profile full
$py -m rasekit finetune --dataset "$dataset" --backbone duorec --seed "$seed" --profile full
