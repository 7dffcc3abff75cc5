"""Thread counts: a run starts with the cores the other processes leave free (or the user's count) and
keeps that count to the end, resumes included."""
import pytest
import torch

from rasekit.runs import threads
from rasekit.stages.loop import TrainConfig, fit

from .test_train import META, ToyTask


@pytest.fixture
def machine(monkeypatch):
    """A 2-core machine whose other processes keep `machine["others"]` cores busy."""
    state = {"t": 0.0, "others": 0.0}
    monkeypatch.setattr(threads.time, "monotonic", lambda: state["t"])
    monkeypatch.setattr(threads.time, "sleep", lambda s: state.update(t=state["t"] + s))
    monkeypatch.setattr(threads, "_busy_seconds", lambda: state["t"] * state["others"])
    monkeypatch.setattr(threads, "_own_seconds", lambda: 0.0)
    monkeypatch.setattr(threads, "cores", lambda: 2)
    for name in ("RASEKIT_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    before = torch.get_num_threads()
    yield state
    torch.set_num_threads(before)


@pytest.mark.parametrize("others, expected", [(0.0, 2), (0.3, 2), (1.0, 1), (1.7, 1), (5.0, 1)])
def test_a_run_takes_the_cores_the_other_processes_leave_free(machine, others, expected):
    machine["others"] = others
    assert threads.choose() == expected


def test_a_count_the_user_fixed_is_kept(machine, monkeypatch):
    machine["others"] = 1.0
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert threads.choose() == 2
    monkeypatch.setenv("RASEKIT_THREADS", "1")
    assert threads.choose() == 1


def test_a_resumed_run_keeps_the_count_it_started_with(machine, tmp_path):
    config = TrainConfig(epochs=2, batch_size=32, lr=0.05, valid_metric="HR@5")
    machine["others"] = 1.0  # busy at the start: one thread
    with pytest.raises(KeyboardInterrupt):
        fit(ToyTask(fail_at_call=12), config, tmp_path / "run", META, seed=3, log=lambda *_: None,
            threads=threads.Claim())
    machine["others"] = 0.0  # idle when it resumes: still one thread, so it stays reproducible
    lines = []
    fit(ToyTask(), config, tmp_path / "run", META, seed=3, log=lines.append, threads=threads.Claim())
    assert torch.get_num_threads() == 1 and lines[-1].endswith("1 thread)")


def test_a_recent_claim_of_another_live_process_counts_as_busy_until_it_ends_or_ages(machine, monkeypatch, tmp_path):
    import os
    import subprocess
    monkeypatch.setenv("RASEKIT_CACHE", str(tmp_path))
    other = subprocess.Popen(["sleep", "60"])
    try:
        assert threads.choose() == 2  # an idle machine, no claim: both cores, claimed for this process
        assert (threads.claims_dir() / f"{os.getpid()}.claim").read_text() == "2"
        threads.claims_dir().joinpath(f"{other.pid}.claim").write_text("2")  # started, not computing yet
        assert threads.choose() == 1  # the load shows nothing yet, the claim does
        old = threads.claims_dir() / f"{other.pid}.claim"
        os.utime(old, (0, 0))  # older than GRACE_S: its threads would be in the load by now
        assert threads.choose() == 2 and not old.exists()
        old.write_text("2")
    finally:
        other.kill()
        other.wait()
    assert threads.choose() == 2 and not old.exists()  # the claimant is gone
    threads.release()
    assert not (threads.claims_dir() / f"{os.getpid()}.claim").exists()
