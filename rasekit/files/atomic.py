"""Every file the kit writes appears whole or not at all: it is written to a temporary file in its own
folder, flushed to the disk and renamed over its name (a rename within a folder is atomic). A kill at any
moment leaves the old file or the new one, never half of one; a failed write (a full disk above all)
raises WriteError, which names the file and the disk, and leaves neither a partial file nor a temporary one.

Temporary names are `.<name>.<pid>-<random>.tmp` (git ignores `*.tmp`): a temporary file whose writer is
gone is a leftover of a kill, which `stray` finds and `python -m rasekit verify` names.

For tests: RASEKIT_KILL_AFTER=N makes the process kill itself (SIGKILL) after its N-th file operation
(a temporary file written, renamed, a file removed), to show that a kill at any point leaves a store
that the same command, run again, completes."""
from __future__ import annotations

import errno
import os
import secrets
import shutil
import signal
from contextlib import contextmanager
from pathlib import Path

SUFFIX = ".tmp"
_operations = 0  # file operations of this process, counted for RASEKIT_KILL_AFTER


class WriteError(OSError):
    """A file could not be written; the file is as it was and no partial or temporary copy is left."""


def _operation_done() -> None:
    global _operations
    _operations += 1
    if os.environ.get("RASEKIT_KILL_AFTER") == str(_operations):
        os.kill(os.getpid(), signal.SIGKILL)


def _mount(folder: Path) -> Path:
    """Where the disk that holds `folder` is mounted."""
    while not os.path.ismount(folder) and folder != folder.parent:
        folder = folder.parent
    return folder


def _failed(path: Path, tmp: Path, err: OSError) -> WriteError:
    """The error of a failed write, naming the file and, for a full disk, the disk and its free space."""
    reason = err.strerror or str(err)
    if err.filename and str(err.filename) != str(tmp):
        reason += f": {err.filename}"
    if err.errno == errno.ENOSPC:
        folder = next((p for p in (path.parent, *path.parents) if p.exists()), path.parent)
        free = shutil.disk_usage(folder).free / 1e6
        reason = (f"the disk is full ({reason}): the disk mounted at {_mount(folder)}, which holds {path.parent}, "
                  f"has {free:.1f} MB free; free some space and run again")
    error = WriteError(f"{path}: not written, {reason}. The file is as it was; no partial or temporary "
                       f"copy of it is left")
    error.errno = err.errno  # (a filename too would replace the message in str(error))
    return error


@contextmanager
def produced(path: Path):
    """A temporary path in `path`'s folder, for a writer that wants a file name (papermill): when the
    block ends the file is flushed to the disk and renamed over `path`; if the block fails it is removed
    (an OSError becomes a WriteError)."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}{SUFFIX}"
        os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))  # the umask applies, as to any file
        yield tmp
        with open(tmp, "rb") as fh:  # a disk that fills up may say so only here
            os.fsync(fh.fileno())
        _operation_done()
        os.replace(tmp, path)
        _operation_done()
    except BaseException as err:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        if isinstance(err, OSError) and not isinstance(err, WriteError):
            raise _failed(path, tmp, err) from err
        raise


@contextmanager
def replacing(path: Path, text: bool = False):
    """A file open for writing (bytes, or UTF-8 text) whose contents replace `path` when the block ends
    (see `produced`)."""
    with produced(path) as tmp, open(tmp, "w" if text else "wb", encoding="utf-8" if text else None,
                                     newline="" if text else None) as fh:  # "\n" as given, on every system
        yield fh


def write_bytes(path: Path, data: bytes) -> Path:
    with replacing(path) as fh:
        fh.write(data)
    return Path(path)


def write_text(path: Path, text: str) -> Path:
    with replacing(path, text=True) as fh:
        fh.write(text)
    return Path(path)


def copy(source: Path, target: Path) -> Path:
    with open(source, "rb") as src, replacing(target) as fh:
        shutil.copyfileobj(src, fh)
    return Path(target)


def remove(path: Path) -> bool:
    """Remove a file if it is there (counted as a file operation); whether it was."""
    try:
        Path(path).unlink()
    except FileNotFoundError:
        return False
    _operation_done()
    return True


def rename(source: Path, target: Path) -> None:
    """Rename a file or folder (atomic within a file system; counted as a file operation)."""
    os.rename(source, target)
    _operation_done()


def _writer_gone(tmp: Path) -> bool:
    """Whether the process that wrote a temporary file is gone (its pid is in the name)."""
    pid = tmp.name[:-len(SUFFIX)].rsplit(".", 1)[-1].split("-")[0]
    if not pid.isdigit():
        return True  # written before the pid was part of the name
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's process
        return False
    return False


def stray(*folders: Path, recursive: bool = False) -> list[Path]:
    """Temporary files under `folders` whose writer is gone: leftovers of a killed write."""
    found = []
    for folder in folders:
        if folder.is_dir():
            found += (folder.rglob if recursive else folder.glob)(f".*{SUFFIX}")
    return sorted(p for p in found if p.is_file() and _writer_gone(p))


def sweep(*folders: Path) -> None:
    """Remove the leftovers of killed writes in `folders` (a command run again after a kill does this)."""
    for tmp in stray(*folders):
        tmp.unlink(missing_ok=True)
