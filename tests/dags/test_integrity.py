"""Every DAG file imports cleanly, quickly and without heavy modules, and declares what on-call needs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import ROOT

pytestmark = pytest.mark.dags

DAG_FILES = sorted((ROOT / "dags").glob("*.py"))
HEAVY_MODULES = ("pandas", "sklearn", "skops", "psycopg", "matplotlib")
IMPORT_BOUND_SECONDS = 30  # a guard against work at parse time, not a performance target


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_file_imports_fast_without_heavy_modules(path: Path):
    probe = (
        "import json, runpy, sys, time\n"
        "start = time.perf_counter()\n"
        f"runpy.run_path({str(path)!r})\n"
        "print(json.dumps({'seconds': time.perf_counter() - start,"
        f" 'heavy': [m for m in {HEAVY_MODULES!r} if m in sys.modules]}}))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["heavy"] == [], f"{path.name} imports {report['heavy']} at parse time"
    assert report["seconds"] < IMPORT_BOUND_SECONDS


def test_dagbag_has_no_import_errors(dagbag):
    assert dagbag.import_errors == {}


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_one_dag_per_file_named_after_it_with_owner_tags_retries_and_docs(dagbag, path: Path):
    dags = [d for d in dagbag.dags.values() if Path(d.fileloc).resolve() == path.resolve()]
    assert [d.dag_id for d in dags] == [path.stem]
    dag = dags[0]
    assert "feedback-loop" in dag.tags
    assert dag.doc_md and "Needs:" in dag.doc_md, "say which connections and env vars the DAG needs"
    for task in dag.tasks:
        assert task.owner == "feedback-loop"
        assert task.retries is not None
    for name, param in dag.params.items():
        schema = param.schema if hasattr(param, "schema") else {}
        description = getattr(param, "description", None) or schema.get("description")
        assert schema.get("title") and description, f"Param {name} needs a title and description"
