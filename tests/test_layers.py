"""The package imports one way, from the bottom up: a module never imports one of a layer above its own
(a function-level import counts too), so each layer can be read, tested and replaced without the ones above."""
import ast
from pathlib import Path

import rasekit

LAYERS = ["settings", "files", "evaluate", "data", "models", "memory", "stages", "runs", "analysis", "raserec",
          "report", "notebook", "cli", "__main__"]
ROOT = Path(rasekit.__file__).parent


def layer_of(module: str) -> int:
    return LAYERS.index(module.split(".")[1])


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rasekit."):
            found.add(node.module)
        elif isinstance(node, ast.ImportFrom) and node.module == "rasekit":
            found |= {f"rasekit.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("rasekit.")}
    return found


def test_every_module_belongs_to_a_layer():
    for path in ROOT.rglob("*.py"):
        if path != ROOT / "__init__.py":
            assert path.relative_to(ROOT).parts[0].removesuffix(".py") in LAYERS, path


def test_no_module_imports_from_a_layer_above_its_own():
    upward = []
    for path in ROOT.rglob("*.py"):
        if path == ROOT / "__init__.py":  # the package's lazy `RaSeRec` export
            continue
        own = LAYERS.index(path.relative_to(ROOT).parts[0].removesuffix(".py"))
        upward += [f"{path.relative_to(ROOT)} imports {m}" for m in sorted(imports(path)) if layer_of(m) > own]
    assert upward == []
