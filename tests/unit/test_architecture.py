"""No back doors: the library (src/thrifty) never reaches the Prefect layer, by import or by string.

Two checks, because each misses what the other sees:
- the import contracts in pyproject.toml (``lint-imports``, run by ``make lint``) walk the real import
  graph, indirect chains and function-level imports included, but cannot see a module named in a
  string (``importlib.import_module("flows.deploy_model")``);
- the AST scan below reads every file of src/thrifty for import statements, for import calls
  (``import_module``, ``__import__``, ``find_spec``…) naming flows/tasks/blocks/prefect, and for any
  other string that spells a dotted path into them (a name kept in a table and imported later).

Each check is also run on a planted violation, so a check that silently passes everything fails here.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "src" / "thrifty"
PREFECT_LAYER = ("flows", "tasks", "blocks")
IMPORT_CALLS = {"import_module", "__import__", "find_spec", "resolve_name", "import_string", "run_module"}
#: "tasks.providers", "flows.deploy_model:deploy_model", "prefect.events" — a module path, not prose
MODULE_PATH = re.compile(r"^(flows|tasks|blocks|prefect\w*)((\.\w+)+(:[\w.]+)?|:[\w.]+)$")


def _forbidden(module: str) -> bool:
    root = module.split(".", 1)[0].split(":", 1)[0]
    return root in PREFECT_LAYER or root.startswith("prefect")


def _documentation(tree: ast.AST) -> set[int]:
    """ids of the string constants that are docstrings or other bare string statements."""
    return {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    }


def _import_call_names(tree: ast.AST) -> set[str]:
    """IMPORT_CALLS and the aliases a file binds them to (``from importlib import import_module as load``)."""
    aliases = {
        alias.asname
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
        if alias.name in IMPORT_CALLS and alias.asname
    }
    return IMPORT_CALLS | aliases


def _call_target(call: ast.Call, calls: set[str]) -> str | None:
    """The module named by an import call's first argument (a literal, or an f-string's literal head)."""
    name = call.func.id if isinstance(call.func, ast.Name) else getattr(call.func, "attr", None)
    if name not in calls or not call.args:
        return None
    arg = call.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    if isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
        return str(arg.values[0].value)
    return None


def _node_findings(node: ast.AST, docs: set[int], calls: set[str]) -> list[str]:
    if isinstance(node, ast.Import):
        return [f"import {a.name}" for a in node.names if _forbidden(a.name)]
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and _forbidden(node.module):
        return [f"from {node.module} import …"]
    if isinstance(node, ast.Call):
        target = _call_target(node, calls)
        if target is not None and _forbidden(target):
            return [f"import call naming {target!r}"]
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
        return [f"module path in a string {node.value!r}"] if MODULE_PATH.match(node.value) else []
    return []


def back_doors(root: Path) -> list[str]:
    """``path:line: what`` for every way a file under ``root`` reaches the Prefect layer."""
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        docs, calls = _documentation(tree), _import_call_names(tree)
        for node in ast.walk(tree):
            for what in _node_findings(node, docs, calls):
                found.append(f"{path.relative_to(root)}:{getattr(node, 'lineno', 0)}: {what}")
    return sorted(set(found))


def test_the_library_has_no_back_door_into_the_prefect_layer() -> None:
    assert back_doors(LIBRARY) == []


PLANTED = {
    "static.py": "import flows.deploy_model\nfrom tasks import providers\nimport prefect.events\n",
    "lazy.py": "def f():\n    from blocks.targets import AwsTarget\n    return AwsTarget\n",
    "importlib_call.py": (
        "import importlib\n"
        "from importlib import import_module as load\n"
        "a = importlib.import_module('flows.deploy_model')\n"
        "b = load('tasks.providers').emit_interruption_event\n"
        "c = __import__('prefect')\n"
        "d = importlib.util.find_spec('blocks')\n"
        "e = importlib.import_module(f'tasks.{a}')\n"
    ),
    "table.py": "HANDLERS = {'emit': 'tasks.providers:emit_interruption_event'}\n",
    "clean.py": (
        '"""Docs may mention tasks.providers.emit_interruption_event and flows.deploy_model."""\n'
        "import importlib\n"
        "x = importlib.import_module('thrifty.providers.local')\n"
        "y = {'tasks': 3, 'kind': 'flows', 'url': 'prefect server'}\n"
        "def f():\n"
        '    """Runs after flows.demo."""\n'
    ),
}


def test_the_scan_finds_every_planted_back_door(tmp_path: Path) -> None:
    for name, source in PLANTED.items():
        (tmp_path / name).write_text(source)
    found = back_doors(tmp_path)
    assert found == [
        "importlib_call.py:3: import call naming 'flows.deploy_model'",
        "importlib_call.py:3: module path in a string 'flows.deploy_model'",
        "importlib_call.py:4: import call naming 'tasks.providers'",
        "importlib_call.py:4: module path in a string 'tasks.providers'",
        "importlib_call.py:5: import call naming 'prefect'",
        "importlib_call.py:6: import call naming 'blocks'",
        "importlib_call.py:7: import call naming 'tasks.'",
        "lazy.py:2: from blocks.targets import …",
        "static.py:1: import flows.deploy_model",
        "static.py:2: from tasks import …",
        "static.py:3: import prefect.events",
        "table.py:1: module path in a string 'tasks.providers:emit_interruption_event'",
    ]


# -- the import contracts (import-linter) --------------------------------------------------------
def _lint_imports(cwd: Path, pythonpath: list[Path]) -> tuple[int, str]:
    exe = Path(sys.executable).parent / "lint-imports"
    if not exe.exists():
        pytest.skip(f"lint-imports is not installed next to {sys.executable} (the dev extra: import-linter)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in pythonpath)}
    done = subprocess.run(
        [str(exe), "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    return done.returncode, " ".join((done.stdout + done.stderr).split())


def _contract_names() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return [c["name"] for c in config["tool"]["importlinter"]["contracts"]]


def test_the_import_contracts_hold_on_the_tree() -> None:
    rc, out = _lint_imports(ROOT, [ROOT / "src", ROOT])
    names = _contract_names()
    assert rc == 0, out
    assert all(f"{name} KEPT" in out for name in names), out
    assert f"Contracts: {len(names)} kept, 0 broken" in out


#: one violation per contract, in a copy of the tree (the module is new, so nothing else changes)
VIOLATIONS = {
    "src/thrifty/registry/_planted.py": "def load():\n    import tasks.providers\n",
    "blocks/_planted.py": "import tasks.deploy\n",
    "src/thrifty/bench/_planted.py": "from thrifty.optimize import config\n",
    "src/thrifty/serving/_planted.py": "from thrifty.providers.base import DeploySpec\n",
}


def test_each_import_contract_fails_on_a_planted_violation(tmp_path: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("src/thrifty", *PREFECT_LAYER):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    for path, source in VIOLATIONS.items():
        (tmp_path / path).write_text(source)
    rc, out = _lint_imports(tmp_path, [tmp_path / "src", tmp_path])
    names = _contract_names()
    assert rc == 1, out
    assert [name for name in names if f"{name} BROKEN" in out] == names, out
    for planted in ("thrifty.registry._planted", "blocks._planted", "thrifty.bench._planted"):
        assert planted in out, out
    assert "thrifty.serving._planted -> thrifty.providers.base" in out, out
