"""Shared fixtures: an isolated kit (cache, results and output in tmp dirs), a network guard and the real
Beauty data from RASEKIT_DATA_DIR (CI sets it to ../shared/data)."""
import os
import socket
from pathlib import Path

import pytest


@pytest.fixture
def tmp_kit(tmp_path, monkeypatch):
    """Point every location the kit writes to at tmp dirs, and unset the data-directory setting."""
    dirs = {name: tmp_path / name for name in ("cache", "results", "output", "downloads", "reference")}
    for name, path in dirs.items():
        path.mkdir()
        monkeypatch.setenv(f"RASEKIT_{name.upper()}", str(path))
    monkeypatch.delenv("RASEKIT_DATA_DIR", raising=False)
    return dirs


@pytest.fixture
def no_network(monkeypatch):
    """Fail any attempt to open a network connection (file:// downloads still work)."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"a test tried to reach the network: {args}")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real data folder (RASEKIT_DATA_DIR). Tests that need it are skipped when it has no data,
    except in CI (CI=true), where missing data is a failure rather than a silent skip."""
    value = os.environ.get("RASEKIT_DATA_DIR")
    if value and (Path(value) / "Beauty" / "Beauty.txt").exists():
        return Path(value)
    reason = (f"RASEKIT_DATA_DIR={value!r} holds no Beauty/Beauty.txt: point it at a folder with the S3-Rec "
              "data files (e.g. ../shared/data), or run ./run.sh once to download them")
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def beauty(data_dir):
    """The real Beauty dataset, verified and split (loaded once per session)."""
    from rasekit.data import load
    return load("Beauty", download=False)
