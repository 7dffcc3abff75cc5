"""What every result records about where it came from: code, data, libraries, device and time."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import platform
import re
import subprocess
from importlib import metadata

import torch

from rasekit.runs import ledger
from rasekit.files import paths
from rasekit.data import sources

LIBRARIES = ("torch", "numpy", "pandas", "faiss-cpu", "rasekit")


def config_hash(config: dict) -> str:
    """Stable short hash of a JSON-serialisable configuration (key order does not matter)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def git_commit() -> str:
    """HEAD of the kit's repository, with '-dirty' if tracked files changed; 'unknown' outside git.
    The committed outputs (figures/, results/) are left out: regenerating them is not a code change."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=paths.REPO_ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip()
    try:
        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)figures",
                    ":(exclude)results")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (commit + ("-dirty" if dirty else "")) if commit else "unknown"


def device_name(device: torch.device | str | None = None) -> str:
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"cpu: {cpu}, {torch.get_num_threads()} threads"


def processor(device: str) -> str:
    """A device as `device_name` writes it, without its thread count: 'cpu: Intel Xeon, 2 threads' ->
    'cpu: Intel Xeon' (a GPU's name is kept as it is)."""
    return re.sub(r", \d+ threads?$", "", device)


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def record(datasets: list, device=None, wall_time_s: float | None = None, commit: str | None = None,
           **extra) -> dict:
    """Provenance of a result computed now from `datasets`. `commit` is the code's commit when the work
    began (a training run takes hours, and HEAD may move meanwhile); by default, HEAD now. A result built
    from ledger runs (`runs`, a list of keys) also carries where and when each of them was trained, since
    its own wall time may be only that of reading them back."""
    if "runs" in extra:
        extra["run_provenance"] = _runs(extra["runs"])
    return {"git_commit": commit or git_commit(),
            "data_sha256": {d.name: d.checksums() for d in map(sources.resolve, datasets)},
            "versions": versions(), "device": device_name(device),
            "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "wall_time_s": None if wall_time_s is None else round(wall_time_s, 1), **extra}


def _runs(keys: list[str]) -> dict[str, dict]:
    out = {}
    for key in keys:
        rec = ledger.get(key)
        if rec is not None:
            prov = rec["provenance"]
            facts = {k: prov.get(k) for k in ("git_commit", "device", "train_seconds", "finished_at")}
            if "resumed_after_epochs" in prov:  # then its commit and device are those of the last process
                facts["resumed_after_epochs"] = prov["resumed_after_epochs"]
            out[key] = {"model": rec["model"], "seed": rec["seed"], "profile": rec["profile"], **facts}
    return out
