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


def output_dir() -> Path:
    """Root under which figures/ and results/ (ledger and tables) are written; tests and CI move it."""
    return _env_path("RASEKIT_OUTPUT", REPO_ROOT)


def ledger_dir() -> Path:
    """The results ledger: one JSON file per run, named by the hash of its configuration."""
    return output_dir() / "results" / "ledger"


def ranks_dir() -> Path:
    """Per-instance test and validation ranks of every ledger run, for paired tests and group metrics."""
    return output_dir() / "results" / "ranks"


def figures_dir(profile: str) -> Path:
    return output_dir() / "figures" / profile


def tables_dir(profile: str) -> Path:
    return output_dir() / "results" / "tables" / profile


def runs_dir() -> Path:
    """Checkpoints and per-instance ranks of training runs, by configuration hash."""
    return cache_dir() / "runs"
