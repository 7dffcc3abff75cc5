"""Executing a plan: the steps not in the ledger, each as soon as the runs it needs are done, with local
worker processes or as tasks on a Ray cluster."""
from __future__ import annotations

import os
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict
from multiprocessing import get_context

from rasekit import settings
from rasekit.runs.plan import Step, downstream_s
from rasekit.runs.spec import Run
from rasekit.runs.threads import choose as choose_threads
from rasekit.runs.threads import release as release_threads


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """Threads for each of `workers` processes so that together they use the free cores and no more:
    threads of one process that outnumber its share wait on each other when the machine is busy.
    `cores`: the cores to share (default: those the other processes leave free, or the user's
    RASEKIT_THREADS / OMP_NUM_THREADS, as `rasekit.runs.threads.choose` says)."""
    return max(1, (cores or choose_threads()) // workers)


def _execute(run: dict, threads: int, need_weights: bool, *_needs) -> str:
    """Run one step in a worker (`need_weights`: train it again if its trained model is not here;
    `_needs`: results of the steps it waits for, so Ray orders them)."""
    import torch
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = os.environ["RASEKIT_THREADS"] = str(threads)  # fit() reads these
    spec = Run(**{**run, **{k: tuple(tuple(p) for p in run[k]) for k in ("train", "noise", "base_train")}})
    record = spec.execute(log=lambda message: print(f"[{spec.label()}] {message}", flush=True),
                          need_weights=need_weights)
    return record["key"]


def _exit_with_parent() -> None:
    """In a worker: end when the plan's process is gone (killed), so that no orphan trains on beside the
    plan started again, two processes writing one run's checkpoints."""
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(2)
        os._exit(1)
    threading.Thread(target=watch, daemon=True).start()


def run_local(steps: dict[str, Step], workers: int, log=print) -> list[str]:
    """Execute the steps not in the ledger with `workers` processes, each as soon as what it needs is done.
    A failed step is reported and the steps that need it are skipped; returns the failures."""
    settings.integer("workers", workers, 1)
    threads = threads_per_worker(workers)
    todo = {k: s for k, s in steps.items() if not s.done}
    finished = {k for k, s in steps.items() if s.done}
    failures: list[str] = []
    if not todo:
        log("nothing to run: every run of the plan is in the ledger")
        return failures
    log(f"running {len(todo)} runs with {workers} workers x {threads} threads")
    downstream = downstream_s(steps)
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_exit_with_parent) as pool:
        running = {}
        while todo or running:
            blocked = [k for k, s in todo.items() if any(n in failures for n in s.needs)]
            for key in blocked:
                failures.append(key)
                log(f"skipped {todo.pop(key).run.label()}: a run it needs failed")
            ready = [k for k, s in todo.items() if all(n in finished for n in s.needs)]
            ready.sort(key=lambda k: -downstream[k])  # the longest chain first: it bounds the wall time
            for key in ready[:workers - len(running)]:  # the pool's queue would hide which runs train
                step = todo.pop(key)
                log(f"{'take' if step.from_reference else 'start'} {step.run.label()} ({key})")
                future = pool.submit(_execute, asdict(step.run), threads, step.weights_missing)
                running[future] = (key, time.perf_counter())
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                key, start = running.pop(future)
                try:
                    future.result()
                    finished.add(key)
                    log(f"done  {steps[key].run.label()} in {time.perf_counter() - start:.0f} s")
                except Exception as err:  # noqa: BLE001 (reported, and the rest of the plan goes on)
                    failures.append(key)
                    log(f"FAILED {steps[key].run.label()}: {type(err).__name__}: {err}")
    release_threads()
    return failures


def run_ray(steps: dict[str, Step], address: str | None, cpus_per_run: int = 1, gpus_per_run: float = 0,
            log=print) -> list[str]:
    """Execute the steps not in the ledger as Ray tasks, each asking for `cpus_per_run` CPUs (and a
    `gpus_per_run` share of a GPU); a task waits for the tasks of the runs it needs. The ledger and the
    checkpoints must be on storage every worker shares: RASEKIT_OUTPUT and RASEKIT_CACHE are passed on."""
    settings.integer("cpus_per_run", cpus_per_run, 1)
    if not 0 <= gpus_per_run <= 1:
        raise settings.SettingsError(f"gpus_per_run={gpus_per_run!r} is not allowed: expected a share of one "
                                     f"GPU, 0 to 1")
    try:
        import ray
    except ImportError:
        raise RuntimeError("Ray is an optional extra: pip install 'rasekit[ray]'") from None
    env = {k: v for k, v in os.environ.items() if k.startswith("RASEKIT_") or k == "TQDM_DISABLE"}
    started_here = not ray.is_initialized()
    if started_here:
        local = address in (None, "local")  # a fresh single-machine Ray, without its web dashboard
        try:
            ray.init(address=None if local else address, runtime_env={"env_vars": env},
                     **({"include_dashboard": False} if local else {}))
        except Exception as err:  # Ray's own message names neither the address nor a way out
            raise RuntimeError(f"Ray did not start ({'a local node' if local else address}): {err} "
                               "A local node has a fixed 30 s to start, which a machine whose cores are "
                               "all busy can miss; run the plan with --workers instead.") from err
    remote = ray.remote(num_cpus=cpus_per_run, num_gpus=gpus_per_run, max_retries=0)(_execute)
    refs: dict[str, object] = {}
    for key, step in steps.items():  # dependency order: a stage-1 step comes before its stage-2 steps
        if not step.done:
            needs = [refs[n] for n in step.needs if n in refs]
            refs[key] = remote.remote(asdict(step.run), cpus_per_run, step.weights_missing, *needs)
    log(f"submitted {len(refs)} runs to Ray ({cpus_per_run} CPUs each)")
    failures = []
    for key, ref in refs.items():
        try:
            ray.get(ref)
            log(f"done  {steps[key].run.label()}")
        except Exception as err:  # noqa: BLE001 (Ray wraps the run's error; report and go on)
            failures.append(key)
            log(f"FAILED {steps[key].run.label()}: {type(err).__name__}: {str(err).splitlines()[0]}")
    if started_here:
        ray.shutdown()
    return failures
