#!/usr/bin/env bash
# The whole test suite: unit tests and every notebook under nbval on the smoke profile. Sets itself up.
# Real-data tests read RASEKIT_DATA_DIR (CI points it at ../shared/data), else the kit's download cache.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh ray  # the optional Ray extra too, so that its test runs
export RASEKIT_DATA_DIR=${RASEKIT_DATA_DIR:-$HOME/.cache/rasekit/data}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# Runs, figures and ledger records of the tests go to a scratch folder, never over the committed ones.
export RASEKIT_CACHE=$scratch/cache RASEKIT_OUTPUT=$scratch/out RASEKIT_PROFILE=smoke TQDM_DISABLE=1
export PYDEVD_DISABLE_FILE_VALIDATION=1  # no MPLBACKEND: notebook kernels show figures inline
status=0
# nbval runs the kit's notebooks (conftest.py: those with checked values in tests/expected/) and compares
# no stored output: tests/test_notebooks.py compares what their checked cells print with tests/expected/.
.venv/bin/python -m pytest tests notebooks --nbval-lax -p no:cacheprovider "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "test.sh: pytest collected no tests; that is a failure" >&2
fi
exit "$status"
