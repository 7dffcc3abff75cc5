"""Only the kit's own notebooks run under nbval (`./test.sh`): those with checked values in
tests/expected/. A scratch notebook saved in notebooks/ (Untitled.ipynb, a copy of one) is not collected."""
from rasekit.runs import notebook_files


def pytest_ignore_collect(collection_path, config):
    if collection_path.suffix == ".ipynb" and not notebook_files.expected_path(collection_path).exists():
        return True
    return None
