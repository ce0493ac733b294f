"""The package's shape stays as docs/architecture.md describes it: modules small, and no module reaching into
another's private names (what a module shares, it names publicly)."""

from __future__ import annotations

import ast
from pathlib import Path

import edgeml

PACKAGE = Path(edgeml.__file__).parent
MODULES = {".".join(("edgeml", *p.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")
           for p in PACKAGE.rglob("*.py")}
MAX_LINES = 420  # "about 400"; the board runner must be one self-contained file


def test_no_module_imports_another_modules_private_names():
    found = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("edgeml"):
                for alias in node.names:
                    private = alias.name.startswith("_") and not alias.name.startswith("__")
                    if private and f"{node.module}.{alias.name}" not in MODULES:  # a private module is fine
                        found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.module}.{alias.name}")
    assert not found, f"make these public (or move them where they are used): {found}"


def test_modules_stay_about_400_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES and p.name != "device_runner.py"}
    assert not long, f"split these along their seams: {long}"
