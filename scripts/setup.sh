#!/usr/bin/env bash
# Creates .venv with the pinned stack and the rasekit kernel for JupyterLab. Idempotent: does nothing
# when requirements.lock and pyproject.toml have not changed since the last successful set-up.
#   bash scripts/setup.sh        the base set-up (./run.sh)
#   bash scripts/setup.sh ray    also the optional Ray extra, pinned in requirements-ray.lock (./test.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
pip_install() {
  # Some machines configure package folders that do not exist; pip warns about each one. Hide only that.
  .venv/bin/python -m pip install --quiet "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}
# One stamp per part, so that the base set-up and the extra never undo each other's.
stamp=.venv/.setup-stamp
want=$(cat requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[setup] creating .venv with $($PYTHON --version) (first run only, a few minutes)"
  "$PYTHON" -m venv .venv
  pip_install --upgrade pip
  pip_install -r requirements.lock
  pip_install --no-deps -e .
  echo "$want" > "$stamp"
  rm -f .venv/.setup-stamp-ray .venv/.setup-stamp-kernel  # a new base may have replaced what they need
  echo "[setup] done"
fi
# A kernel named "rasekit" inside the venv, so JupyterLab started from .venv runs the notebooks as they are,
# with the venv first on its PATH, so that `!python -m rasekit ...` in a notebook runs the kit's Python.
# Its stamp is its install line, so a changed line (or a moved clone) installs it again.
kernel=(--sys-prefix --name rasekit --display-name "Python (rasekit)" --env PATH "$PWD/.venv/bin:\${PATH}")
kernel_stamp=.venv/.setup-stamp-kernel
if [ ! -f "$kernel_stamp" ] || [ "$(cat "$kernel_stamp")" != "${kernel[*]}" ]; then
  .venv/bin/python -m ipykernel install "${kernel[@]}" >/dev/null
  echo "${kernel[*]}" > "$kernel_stamp"
fi
# Running a notebook never dirties the clone: git takes the notebooks without their outputs (.gitattributes;
# nothing is configured where git is missing or this folder is not a git clone), and JupyterLab's post-save
# hook keeps `git status` from listing a notebook whose outputs alone changed.
.venv/bin/python -m rasekit.runs.notebook_files configure-git
mkdir -p .venv/etc/jupyter
echo '{"ContentsManager": {"post_save_hook": "rasekit.runs.notebook_files.refresh_git_index"}}' \
  > .venv/etc/jupyter/jupyter_server_config.json
if [ "${1:-}" = ray ]; then
  extra_stamp=.venv/.setup-stamp-ray
  extra_want=$(sha256sum requirements-ray.lock | cut -d' ' -f1)
  if [ ! -f "$extra_stamp" ] || [ "$(cat "$extra_stamp")" != "$extra_want" ]; then
    echo "[setup] installing the optional Ray extra (requirements-ray.lock)"
    pip_install -r requirements-ray.lock
    echo "$extra_want" > "$extra_stamp"
  fi
fi
