#!/usr/bin/env bash
# The main job: set up (first run only), then execute the paper's notebooks with papermill on Beauty.
# Your runs, tables and figures land in runs/own/, beside the committed reference.
#   ./run.sh                        default profile: you train stage 2 (RaSeRec, official settings) on the
#                                   reference's stage-1 models, taken from it checked; about half an hour on 2 cores
#   ./run.sh default 08_sensitivity a notebook the default batch leaves out, by name
#   ./run.sh full                   the paper's whole protocol from scratch (hours on a CPU; use a GPU)
#   ./run.sh default --reference    train nothing: rebuild the committed tables from the reference runs
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
exec .venv/bin/python -m rasekit batch --profile "${1:-default}" "${@:2}"
