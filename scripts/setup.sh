#!/usr/bin/env bash
# Creates .venv with the pinned stack and the rasekit kernel for JupyterLab. Idempotent: does nothing
# when requirements.lock and pyproject.toml have not changed since the last successful set-up.
#   bash scripts/setup.sh        the base set-up (./run.sh)
#   bash scripts/setup.sh ray    also the optional Ray extra, pinned in requirements-ray.lock (./test.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
stamp=.venv/.setup-stamp
extra=${1:-}
locks=(requirements.lock)
[ "$extra" = ray ] && locks+=(requirements-ray.lock)
want=$(cat "${locks[@]}" pyproject.toml | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
pip_install() {
  # Some machines configure package folders that do not exist; pip warns about each one. Hide only that.
  .venv/bin/python -m pip install --quiet "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}
echo "[setup] creating .venv with $($PYTHON --version) (first run only, a few minutes)"
"$PYTHON" -m venv .venv
pip_install --upgrade pip
for lock in "${locks[@]}"; do
  pip_install -r "$lock"
done
pip_install --no-deps -e .
# A kernel named "rasekit" inside the venv, so JupyterLab started from .venv runs the notebooks as they are.
.venv/bin/python -m ipykernel install --sys-prefix --name rasekit --display-name "Python (rasekit)" >/dev/null
echo "$want" > "$stamp"
echo "[setup] done"
