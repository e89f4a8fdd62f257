"""The package's import rules are a contract (import-linter, in pyproject.toml), and its declared
dependencies are what the code imports (deptry): both run here as in `make lint`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import ROOT

pytestmark = pytest.mark.unit


def _tool(name: str) -> str:
    found = Path(sys.executable).parent / name
    assert found.exists() or shutil.which(name), f"{name} is a dev dependency installed by `make install`"
    return str(found) if found.exists() else shutil.which(name)


def test_the_import_contracts_hold():
    result = subprocess.run(
        [_tool("lint-imports"), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_the_declared_dependencies_are_what_the_code_imports():
    result = subprocess.run(
        [_tool("deptry"), "include"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


def test_the_package_top_level_holds_only_the_cli_and_the_stage_packages():
    package = ROOT / "include" / "feedback_loop"
    modules = sorted(p.name for p in package.glob("*.py"))
    assert modules == ["__init__.py", "cli.py"]
    stages = sorted(p.name for p in package.iterdir() if (p / "__init__.py").is_file())
    assert stages == sorted(
        [
            "adapters",
            "api",
            "commands",
            "core",
            "dashboard",
            "inference",
            "labels",
            "lab",
            "monitoring",
            "registry",
            "retrain",
        ]
    )
