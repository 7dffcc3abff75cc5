"""Threads for a training run on a machine it may share.

Threads that outnumber the free cores wait on each other: on 2 cores with one other busy process, a
2-thread DuoRec epoch took about 3 times as long as on an idle machine, while one thread on the free core
loses less than half. So unless the user fixes the count (RASEKIT_THREADS or OMP_NUM_THREADS), a run
starts with the cores the other processes leave free, measured from /proc/stat over a fifth of a second.
The count is then kept for the whole run, resumes included: float sums differ in their last bits between
thread counts, so a run whose count changed midway could not be reproduced exactly.

A run's threads show in /proc/stat only once it computes (after its imports and its data), so two runs
started together would each see an idle machine and take every core. Each count chosen is therefore
claimed (a file under the cache, written under a lock) until the run ends, and a claim younger than
GRACE_S counts as busy cores for the runs that start meanwhile."""
from __future__ import annotations

import fcntl
import os
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

from rasekit import settings
from rasekit.files import paths

SAMPLE_S = 0.2  # how long the machine is watched before a run starts
THREADS_MAX = 256  # beyond any machine here: a larger count is a typo, not a setting
GRACE_S = 60.0  # a run's threads show in the load within this time (imports, data, first batches)


def fixed_by_user() -> int | None:
    """The thread count the user set, if any: RASEKIT_THREADS, whose wrong value is an error, else
    OMP_NUM_THREADS, which other tools set too (also in forms such as "4,2"): a value of it that is not
    a count is ignored, with a warning."""
    fixed = settings.environment_integer("RASEKIT_THREADS", 1, THREADS_MAX)
    if fixed is not None:
        return fixed
    try:
        return settings.environment_integer("OMP_NUM_THREADS", 1, THREADS_MAX)
    except settings.SettingsError as err:
        warnings.warn(f"{err}; ignored: the kit chooses the thread count (set RASEKIT_THREADS to fix it)")
        return None


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _busy_seconds() -> float | None:
    """CPU-seconds all processes of the machine have spent busy since boot; None off Linux."""
    try:
        with open("/proc/stat") as fh:
            fields = [int(v) for v in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle and iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    times = os.times()
    return times.user + times.system


def other_load(seconds: float = SAMPLE_S) -> float | None:
    """Cores the other processes keep busy, watched for `seconds`; None where it cannot be measured."""
    t0, busy0, own0 = time.monotonic(), _busy_seconds(), _own_seconds()
    time.sleep(seconds)
    t1, busy1, own1 = time.monotonic(), _busy_seconds(), _own_seconds()
    if busy0 is None or busy1 is None or t1 <= t0:
        return None
    return max(0.0, ((busy1 - busy0) - (own1 - own0)) / (t1 - t0))


def claims_dir() -> Path:
    return paths.cache_dir() / "threads"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recent_claims() -> int:
    """Cores claimed in the last GRACE_S seconds by other live processes (older and dead claims are
    removed)."""
    total = 0
    for path in claims_dir().glob("*.claim"):
        try:
            pid, count, age = int(path.stem), int(path.read_text()), time.time() - path.stat().st_mtime
        except (OSError, ValueError):
            continue
        if pid != os.getpid() and age < GRACE_S and _alive(pid):
            total += count
        elif pid != os.getpid():
            path.unlink(missing_ok=True)
    return total


def release() -> None:
    """End this process's claim (its run is over)."""
    (claims_dir() / f"{os.getpid()}.claim").unlink(missing_ok=True)


def choose(n_cores: int | None = None) -> int:
    """The thread count for a new run: the user's, else the cores that neither the other processes' load
    nor their recent claims take (at least one), else all cores. The count is claimed for this process."""
    fixed = fixed_by_user()
    if fixed is not None:
        return fixed
    n_cores = n_cores or cores()
    claims_dir().mkdir(parents=True, exist_ok=True)
    with open(claims_dir() / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # measure and claim as one step: the next run sees this claim
        load, claimed = other_load(), recent_claims()
        busy = max(round(load or 0.0), claimed)  # a recent claim's threads may already be in the load
        count = n_cores if load is None and not claimed else max(1, min(n_cores, n_cores - busy))
        (claims_dir() / f"{os.getpid()}.claim").write_text(str(count))
    return count


@contextmanager
def limited():
    """Torch's and faiss's threads set to `choose()` for an evaluation (a test-time variant) and restored
    after: an evaluation beside a training run must not take the core that run computes on."""
    import faiss
    import torch

    count = choose()
    before = torch.get_num_threads(), faiss.omp_get_max_threads()
    torch.set_num_threads(count)
    faiss.omp_set_num_threads(count)
    try:
        yield count
    finally:
        torch.set_num_threads(before[0])
        faiss.omp_set_num_threads(before[1])
        release()


class Claim:
    """The thread count of a training run (`rasekit.stages.loop.fit`): the user's (RASEKIT_THREADS or
    OMP_NUM_THREADS), else the count it ran with before it was interrupted, so that a resumed run stays
    reproducible, else the cores free now (`choose`, which claims them); released when the run ends."""

    def choose(self, resumed: int | None) -> int:
        return fixed_by_user() or resumed or choose()

    def release(self) -> None:
        release()
