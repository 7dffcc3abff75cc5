#!/usr/bin/env bash
# The main job: set up (first run only), then execute every notebook with papermill on the default
# dataset (Beauty). Your runs, tables and figures land in runs/own/, beside the committed reference.
#   ./run.sh                        default profile (tens of minutes on a laptop CPU)
#   ./run.sh full                   the paper's protocol (hours on a CPU; use a GPU)
#   ./run.sh default --reference    train nothing: rebuild the committed tables from the reference runs
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
exec .venv/bin/python -m rasekit batch --profile "${1:-default}" "${@:2}"
