"""The sandbox's boundary: it reads no app module, and the app reaches it through one door."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import hookengine
import hookengine.sandbox

PACKAGE = Path(hookengine.__file__).parent


def _imported_modules(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def test_the_zygote_loads_nothing_of_the_app_outside_the_sandbox():
    code = ("import sys, hookengine.sandbox.zygote; print(sorted(m for m in sys.modules "
            "if m.split('.')[0] in ('hookengine', 'flask', 'werkzeug', 'dotenv')))")
    loaded = ast.literal_eval(subprocess.run([sys.executable, "-I", "-c", code], check=True,
                                             capture_output=True, text=True).stdout)
    assert [m for m in loaded if not m.startswith("hookengine.sandbox")
            and m not in ("hookengine", "hookengine.clock")] == []


def test_the_sandbox_imports_no_settings_errors_or_dotenv():
    for path in (PACKAGE / "sandbox").glob("*.py"):
        for module in _imported_modules(path):
            assert module.split(".")[0] != "dotenv", path
            assert module not in ("hookengine.config", "hookengine.errors"), path


def test_the_engine_imports_the_sandbox_only_through_its_package():
    for path in PACKAGE.rglob("*.py"):
        if (PACKAGE / "sandbox") in path.parents:
            continue
        for module in _imported_modules(path):
            assert not module.startswith("hookengine.sandbox."), (path, module)


def test_the_package_exports_what_it_promises():
    for name in hookengine.sandbox.__all__:
        assert hasattr(hookengine.sandbox, name), name
