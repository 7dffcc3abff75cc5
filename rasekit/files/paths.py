"""Where the kit reads and writes. Every location can be moved with an environment variable."""
import os
from pathlib import Path

from rasekit.settings import SettingsError

REPO_ROOT = Path(__file__).resolve().parents[2]  # rasekit/files/paths.py -> the repository


def _env_path(name: str, default: Path | None) -> Path | None:
    """The folder an environment variable names (one that does not exist yet is made when needed)."""
    value = os.environ.get(name)
    if not value:
        return default
    path = Path(value).expanduser().resolve()
    if path.exists() and not path.is_dir():
        raise SettingsError(f"{name}={value!r} is not allowed: expected a folder, and {path} is a file")
    return path


def data_dir() -> Path | None:
    """A folder holding `<Dataset>/<files>` (CI points it at ../shared/data); None if unset."""
    return _env_path("RASEKIT_DATA_DIR", None)


def cache_dir() -> Path:
    """Checkpoints and precomputed arrays; kept outside the work tree so they survive it."""
    return _env_path("RASEKIT_CACHE", Path.home() / ".cache" / "rasekit")


def downloads_dir() -> Path:
    """Where downloaded datasets land: data/ in the repository (its contents ignored by git)."""
    return _env_path("RASEKIT_DOWNLOADS", REPO_ROOT / "data")


def reference_dir() -> Path:
    """The reference: the committed results/ (ledger, ranks, weights, tables) and figures/."""
    return _env_path("RASEKIT_REFERENCE", REPO_ROOT)


def output_dir() -> Path:
    """Root of this user's own results (ledger, ranks, weights, tables, figures, executed notebooks):
    runs/own/ in the repository, ignored by git, so that a user's runs never pass for the reference.
    Tests and CI move it; `batch --reference` points it at the reference itself."""
    return _env_path("RASEKIT_OUTPUT", REPO_ROOT / "runs" / "own")


def is_reference() -> bool:
    """Whether the output root is the reference itself (tables rebuilt from the committed runs)."""
    return output_dir() == reference_dir()


def ledger_dir(root: Path | None = None) -> Path:
    """The results ledger under `root` (default: the output root): one JSON file per run, named by the
    hash of its configuration."""
    return (root or output_dir()) / "results" / "ledger"


def ranks_dir(root: Path | None = None) -> Path:
    """Per-instance test and validation ranks of every ledger run, for paired tests and group metrics."""
    return (root or output_dir()) / "results" / "ranks"


def weights_dir(root: Path | None = None) -> Path:
    """Trained weights (weights only) of the runs that are loaded again, beside their ledger records."""
    return (root or output_dir()) / "results" / "weights"


def executed_dir() -> Path:
    """Executed copies of the notebooks (batch runs): runs/executed/, or under a moved output root."""
    moved = _env_path("RASEKIT_OUTPUT", None)
    return (moved or REPO_ROOT / "runs") / "executed"


def check_environment() -> None:
    """Every location setting (RASEKIT_DATA_DIR, _CACHE, _DOWNLOADS, _REFERENCE, _OUTPUT), checked at once."""
    for location in (data_dir, cache_dir, downloads_dir, reference_dir, output_dir):
        location()


def figures_dir(profile: str) -> Path:
    return output_dir() / "figures" / profile


def tables_dir(profile: str) -> Path:
    return output_dir() / "results" / "tables" / profile


def runs_dir() -> Path:
    """Checkpoints of training runs (to resume them), by configuration hash."""
    return cache_dir() / "runs"
