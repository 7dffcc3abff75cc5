"""Dataset registry: names, resolution order (setting, cache, download) and verification. Downloads come
from a file:// origin in a tmp folder; nothing here touches the network."""
import hashlib
import subprocess
import sys
import urllib.error

import pytest

from rasekit.files import paths
from rasekit.data import registry
from rasekit.data.registry import ChecksumError, DataFile, Dataset, DataUnavailableError, UnknownDatasetError

pytestmark = pytest.mark.usefixtures("no_network")

SEQUENCES = b"1 1 2 3\n2 2 3 1 4\n"
ATTRIBUTES = b'{"1": [1], "2": [1, 2], "3": [], "4": [2]}'


def spec(name: str, content: bytes) -> DataFile:
    return DataFile(name, len(content), hashlib.sha256(content).hexdigest())


@pytest.fixture
def tiny(tmp_kit, tmp_path, monkeypatch):
    """A registered dataset 'Tiny' whose origin is a local folder (file:// URL)."""
    origin = tmp_path / "origin"
    origin.mkdir()
    (origin / "Tiny.txt").write_bytes(SEQUENCES)
    (origin / "Tiny_item2attributes.json").write_bytes(ATTRIBUTES)
    monkeypatch.setitem(registry.DATASETS, "Tiny", Dataset(
        "Tiny", spec("Tiny.txt", SEQUENCES), spec("Tiny_item2attributes.json", ATTRIBUTES)))
    monkeypatch.setattr(registry, "ORIGIN", origin.as_uri() + "/")
    return origin


def cache_files(tmp_kit):
    return sorted(p.name for p in tmp_kit["downloads"].rglob("*") if p.is_file())


def forbid_download(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("downloaded although a local copy exists")
    monkeypatch.setattr(registry.urllib.request, "urlopen", refuse)


def write(folder, content=SEQUENCES, name="Tiny.txt"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(content)
    return folder / name


# --- names ---------------------------------------------------------------------------------------------

def test_unknown_dataset_names_it_and_lists_known():
    with pytest.raises(UnknownDatasetError) as err:
        registry.get("Beautyy")
    message = str(err.value)
    assert "'Beautyy'" in message
    for known in ("Beauty", "Sports_and_Outdoors", "Toys_and_Games", "Yelp", "Sports", "Toys"):
        assert known in message
    assert isinstance(err.value, KeyError)


def test_unknown_dataset_in_fetch(tmp_kit):
    with pytest.raises(UnknownDatasetError, match="Clothing"):
        registry.fetch("Clothing", download=False)


@pytest.mark.parametrize("alias, name", [("Sports", "Sports_and_Outdoors"), ("Toys", "Toys_and_Games")])
def test_aliases(alias, name):
    assert registry.get(alias) is registry.get(name) is registry.DATASETS[name]
    assert registry.checksums(alias) == registry.checksums(name)


def test_registry_matches_readme_checksums():
    beauty = registry.get("Beauty")
    assert (beauty.sequences.name, beauty.sequences.size) == ("Beauty.txt", 1090094)
    assert beauty.sequences.sha256 == "226cce9c3105299ca0db9615d7d3fb32b3175e90da43100ae352599f0f0107b8"
    assert registry.get("Yelp").attributes.size == 600360


# --- resolution order ----------------------------------------------------------------------------------

def test_download_lands_verified_in_cache(tiny, tmp_kit):
    files = registry.fetch("Tiny")
    assert files["sequences"] == tmp_kit["downloads"] / "Tiny" / "Tiny.txt"
    assert files["sequences"].read_bytes() == SEQUENCES
    assert files["attributes"].read_bytes() == ATTRIBUTES
    assert cache_files(tmp_kit) == ["Tiny.txt", "Tiny_item2attributes.json"]  # no .part left over


def test_cache_before_download(tiny, tmp_kit, monkeypatch):
    cached = write(tmp_kit["downloads"] / "Tiny")
    write(cached.parent, ATTRIBUTES, "Tiny_item2attributes.json")
    forbid_download(monkeypatch)
    assert registry.fetch("Tiny")["sequences"] == cached


def test_setting_before_cache(tiny, tmp_kit, tmp_path, monkeypatch):
    data = tmp_path / "data"
    in_setting = write(data / "Tiny")
    write(tmp_kit["downloads"] / "Tiny", b"corrupt")  # would fail verification if it were consulted
    monkeypatch.setenv("RASEKIT_DATA_DIR", str(data))
    forbid_download(monkeypatch)
    assert registry.locate(registry.get("Tiny").sequences, "Tiny") == in_setting


def test_setting_without_the_file_falls_back_to_cache(tiny, tmp_kit, tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    monkeypatch.setenv("RASEKIT_DATA_DIR", str(tmp_path / "data"))
    cached = write(tmp_kit["downloads"] / "Tiny")
    forbid_download(monkeypatch)
    assert registry.locate(registry.get("Tiny").sequences, "Tiny") == cached


def test_corrupt_file_in_setting_is_rejected(tiny, tmp_path, monkeypatch):
    bad = write(tmp_path / "data" / "Tiny", SEQUENCES.replace(b"4", b"5"))
    monkeypatch.setenv("RASEKIT_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(ChecksumError, match="sha256") as err:
        registry.fetch("Tiny")
    assert str(bad) in str(err.value)


def test_no_download_and_nothing_local_names_where_it_looked(tiny, tmp_kit, tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError) as err:
        registry.fetch("Tiny", download=False)
    assert "Tiny.txt" in str(err.value) and str(tmp_kit["downloads"] / "Tiny") in str(err.value)
    monkeypatch.setenv("RASEKIT_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(FileNotFoundError, match="downloading is off") as err:
        registry.fetch("Tiny", download=False)
    assert str(tmp_path / "data" / "Tiny") in str(err.value)
    assert cache_files(tmp_kit) == []


# --- failed downloads leave nothing --------------------------------------------------------------------

@pytest.mark.parametrize("served, check", [
    (SEQUENCES + b"3 1 2 3\n", "size"),                  # wrong length
    (SEQUENCES.replace(b"4", b"5"), "sha256"),            # right length, wrong bytes
])
def test_checksum_mismatch_on_download(tiny, tmp_kit, served, check):
    (tiny / "Tiny.txt").write_bytes(served)
    with pytest.raises(ChecksumError, match=check) as err:
        registry.fetch("Tiny")
    assert "Tiny.txt" in str(err.value)
    assert cache_files(tmp_kit) == []


def test_missing_origin_file_leaves_nothing(tiny, tmp_kit):
    (tiny / "Tiny.txt").unlink()
    with pytest.raises(DataUnavailableError) as err:
        registry.fetch("Tiny")
    message = str(err.value)
    assert "Tiny.txt" in message and registry.ORIGIN + "Tiny.txt" in message  # the file and its origin
    assert "to work offline" in message and "RASEKIT_DATA_DIR" in message       # how to provide it
    assert list(tmp_kit["downloads"].iterdir()) == []                               # not even empty folders


def test_interrupted_download_leaves_nothing(tiny, tmp_kit, monkeypatch):
    class Broken:
        def __init__(self):
            self.calls = 0
        def __enter__(self):
            return self
        def __exit__(self, *exc):
            return False
        def read(self, n):
            self.calls += 1
            if self.calls > 1:
                raise ConnectionResetError("connection lost")
            return SEQUENCES[:5]

    monkeypatch.setattr(registry.urllib.request, "urlopen", lambda *a, **k: Broken())
    with pytest.raises(DataUnavailableError, match="connection lost"):
        registry.fetch("Tiny")
    assert list(tmp_kit["downloads"].iterdir()) == []


def test_no_network_is_a_clear_error_not_a_traceback(tiny, tmp_kit, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError(OSError(-3, "Temporary failure in name resolution"))
    monkeypatch.setattr(registry.urllib.request, "urlopen", offline)
    with pytest.raises(DataUnavailableError, match="Tiny.txt of Tiny is not on this machine") as err:
        registry.fetch("Tiny")
    assert isinstance(err.value, FileNotFoundError)  # the command line reports it as an error, exit 2
    assert list(tmp_kit["downloads"].iterdir()) == []


def test_a_corrupt_cached_copy_is_replaced(tiny, tmp_kit):
    cached = write(tmp_kit["downloads"] / "Tiny", SEQUENCES.replace(b"4", b"5"))
    with pytest.warns(UserWarning, match="deleted the corrupt copy"):
        path = registry.locate(registry.get("Tiny").sequences, "Tiny")
    assert path == cached and cached.read_bytes() == SEQUENCES


def test_a_corrupt_cached_copy_without_download_says_what_to_do(tiny, tmp_kit):
    cached = write(tmp_kit["downloads"] / "Tiny", SEQUENCES.replace(b"4", b"5"))
    with pytest.raises(ChecksumError, match="the corrupt copy was deleted, run again with downloading on"):
        registry.locate(registry.get("Tiny").sequences, "Tiny", download=False)
    assert not cached.exists()


def test_a_corrupt_file_in_the_setting_names_its_origin(tiny, tmp_path, monkeypatch):
    write(tmp_path / "data" / "Tiny", SEQUENCES.replace(b"4", b"5"))
    monkeypatch.setenv("RASEKIT_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(ChecksumError, match="replace it with the original from file://"):
        registry.fetch("Tiny")


def test_loading_a_dataset_needs_only_its_sequences(tiny, tmp_kit, tmp_path, monkeypatch):
    """`stats` and training never read the attributes file, so its absence must not stop them."""
    write(tmp_path / "data" / "Tiny")
    monkeypatch.setenv("RASEKIT_DATA_DIR", str(tmp_path / "data"))
    forbid_download(monkeypatch)
    from rasekit.data import load
    assert load("Tiny", download=False).n_items == 4  # no Tiny_item2attributes.json anywhere


def test_import_touches_no_network(tmp_kit):
    code = ("import socket\n"
            "def refuse(*a, **k): raise SystemExit('network used at import')\n"
            "socket.socket.connect = socket.create_connection = socket.getaddrinfo = refuse\n"
            "import rasekit.data, rasekit.data.registry, rasekit.data.readers\n"
            "import rasekit.data.preprocess, rasekit.data.protocol\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=paths.REPO_ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert cache_files(tmp_kit) == []
