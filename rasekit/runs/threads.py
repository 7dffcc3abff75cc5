"""Threads for a training run on a machine it may share.

Threads that outnumber the free cores wait on each other: on 2 cores with one other busy process, a
2-thread DuoRec epoch took about 3 times as long as on an idle machine, while one thread on the free core
loses less than half. So unless the user fixes the count (RASEKIT_THREADS or OMP_NUM_THREADS), a run
starts with the cores the other processes leave free, measured from /proc/stat over a fifth of a second.
The count is then kept for the whole run, resumes included: float sums differ in their last bits between
thread counts, so a run whose count changed midway could not be reproduced exactly."""
from __future__ import annotations

import os
import time

SAMPLE_S = 0.2  # how long the machine is watched before a run starts


def fixed_by_user() -> int | None:
    """The thread count the user set, if any."""
    for name in ("RASEKIT_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(name, "")
        if value.strip().isdigit() and int(value) > 0:
            return int(value)
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


def choose(n_cores: int | None = None) -> int:
    """The thread count for a new run: the user's, else the cores the other processes leave free (at
    least one), else all cores."""
    fixed = fixed_by_user()
    if fixed is not None:
        return fixed
    n_cores = n_cores or cores()
    load = other_load()
    return n_cores if load is None else max(1, min(n_cores, n_cores - round(load)))
