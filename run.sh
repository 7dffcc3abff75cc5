#!/usr/bin/env bash
# The main job: set up (first run only), then execute every notebook with papermill on the default
# dataset (Beauty) into runs/<time>-<profile>/, writing figures/ and results/.
#   ./run.sh              default profile (minutes on a laptop CPU)
#   ./run.sh full         the paper's protocol (hours on a CPU; use a GPU)
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
exec .venv/bin/python -m rasekit batch --profile "${1:-default}" "${@:2}"
