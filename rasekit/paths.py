"""Where the kit reads and writes. Every location can be moved with an environment variable."""
import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def _env_path(name: str, default: Path | None) -> Path | None:
    value = os.environ.get(name)
    return Path(value).expanduser().resolve() if value else default


def data_dir() -> Path | None:
    """A folder holding `<Dataset>/<files>` (CI points it at ../shared/data); None if unset."""
    return _env_path("RASEKIT_DATA_DIR", None)


def cache_dir() -> Path:
    """Downloads, checkpoints and precomputed arrays; kept outside the work tree so they survive it."""
    return _env_path("RASEKIT_CACHE", Path.home() / ".cache" / "rasekit")


def results_dir() -> Path:
    """The results ledger (one JSON file per run)."""
    return _env_path("RASEKIT_RESULTS", REPO_ROOT / "results")


def output_dir() -> Path:
    """Root under which figures/ and tables/ are written."""
    return _env_path("RASEKIT_OUTPUT", REPO_ROOT)
