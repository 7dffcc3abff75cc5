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


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules_imported(path: Path) -> set[str]:
    """The kit's modules `path` imports, a package's submodules named one by one
    (`from rasekit.runs import ledger` imports rasekit.runs.ledger)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "rasekit":
            package = ROOT.parent.joinpath(*node.module.split("."))
            found |= {f"{node.module}.{a.name}" if (package / f"{a.name}.py").exists() or (package / a.name).is_dir()
                      else node.module for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("rasekit.")}
    return found


def test_no_two_modules_import_each_other_even_through_others():
    graph = {module_name(p): modules_imported(p) for p in ROOT.rglob("*.py")}

    def reaches(start: str, goal: str, seen: set) -> bool:
        for m in graph.get(start, ()):
            if m == goal or (m not in seen and (seen.add(m) or reaches(m, goal, seen))):
                return True
        return False
    cycles = [m for m in graph if m != "rasekit" and reaches(m, m, set())]  # (the package's lazy export)
    assert cycles == []


def test_modules_and_functions_stay_short_enough_to_read():
    # about 400 lines a module and 60 a function (a command-line parser's table of options included)
    long_modules, long_functions = [], []
    for path in ROOT.rglob("*.py"):
        tree = ast.parse(path.read_text())
        if tree.body and tree.body[-1].end_lineno > 430:
            long_modules.append(f"{path.relative_to(ROOT)}: {tree.body[-1].end_lineno}")
        long_functions += [f"{path.relative_to(ROOT)}:{n.name}: {n.end_lineno - n.lineno + 1}"
                           for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                           and n.end_lineno - n.lineno + 1 > 60]
    assert long_modules == [] and long_functions == []
