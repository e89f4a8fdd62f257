"""The wheel is what a deployment installs into its Airflow image: it must carry the SQL and the example
config, declare every dependency it imports, and work outside this checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import ROOT

pytestmark = pytest.mark.integration

PROBE = """
import feedback_loop.cli
from feedback_loop.core import config, migrations, paths
assert paths.project_root() is None, paths.project_root()
assert [m.version for m in migrations.discover()][:1] == ["0001"], "migrations missing from the wheel"
settings = config.load()
print("models:", [m.name for m in settings.models])
import feedback_loop.adapters.airflow_dags, feedback_loop.api.app, feedback_loop.dashboard
print("ok")
"""


def _uv() -> str:
    found = shutil.which("uv") or str(ROOT / ".local" / "bootstrap" / "bin" / "uv")
    assert Path(found).exists(), "uv is installed by `make install`"
    return found


def _run(*args: str, cwd: Path | None = None, env: dict | None = None) -> str:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, f"{' '.join(args)}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.mark.timeout(900)
def test_the_wheel_installs_and_runs_in_a_fresh_venv(tmp_path):
    uv = _uv()
    _run(uv, "build", "--wheel", "--out-dir", str(tmp_path / "dist"), cwd=ROOT)
    (wheel,) = (tmp_path / "dist").glob("airflow_feedback_loop-*.whl")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(
        _run(uv, "export", "--locked", "--no-dev", "--no-emit-project", "--no-hashes", cwd=ROOT)
    )
    venv = tmp_path / "venv"
    _run(uv, "venv", "--python", sys.executable, str(venv))
    python = str(venv / "bin" / "python")
    _run(uv, "pip", "install", "--python", python, "-r", str(requirements), str(wheel))
    clean_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FEEDBACK_LOOP_", "PYTHONPATH", "VIRTUAL_ENV"))
    }
    out = _run(python, "-c", PROBE, cwd=tmp_path, env=clean_env)
    assert "models: ['digits']" in out and out.strip().endswith("ok")
    help_text = _run(str(venv / "bin" / "feedback-loop"), "--help", cwd=tmp_path, env=clean_env)
    assert "model" in help_text and "simulate" in help_text
