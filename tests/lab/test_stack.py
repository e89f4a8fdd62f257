"""`make up` on a fresh database: every configured model gets a first version, or the command that makes one."""

from __future__ import annotations

import pytest

from feedback_loop.core import config
from feedback_loop.lab import stack
from feedback_loop.registry import versions as registry

pytestmark = pytest.mark.integration


def test_a_fresh_stack_serves_the_bundled_model_and_names_the_command_for_one_without_data(
    conn, tmp_path, monkeypatch
):
    import yaml

    from ..conftest import ROOT

    settings = yaml.safe_load((ROOT / "config" / "feedback_loop.yaml").read_text(encoding="utf-8"))
    missing = {
        **settings["models"][0],
        "name": "orders",
        "training_data": {"path": str(tmp_path / "none.csv")},
    }
    settings["models"].append(missing)
    path = tmp_path / "feedback_loop.yaml"
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    monkeypatch.setenv(config.ENV_CONFIG, str(path))

    digits, orders = stack.ensure_first_versions()
    assert digits == "digits: trained v1 on its base data and promoted it"
    assert registry.current_version(conn, "digits") == 1
    assert orders.startswith("orders: no version yet (") and orders.endswith(
        "run `feedback-loop model register --model orders --train --promote`"
    )
    assert registry.model_names(conn) == ["digits"]
    # Run again (a second `make up`): nothing new is trained.
    assert stack.ensure_first_versions()[0] == "digits: v1 serves"
    assert [v.version for v in registry.list_versions(conn, "digits")] == [1]


def test_the_summary_names_the_logins_and_for_celery_the_broker_and_each_workers_queues(tmp_path):
    (tmp_path / stack.PASSWORDS_FILE).write_text('{"admin": "pw-a", "reviewer": "pw-r"}')
    local = stack.StackState("http://127.0.0.1:8080", {}, "postgresql://x/y", str(tmp_path))
    celery = stack.StackState(
        "http://127.0.0.1:8080", {}, "postgresql://x/y", str(tmp_path), "celery", "redis://127.0.0.1:6379/0"
    )
    assert "login admin / pw-a" in stack.describe(local) and "login reviewer / pw-r" in stack.describe(local)
    assert "Celery" not in stack.describe(local)
    line = next(x for x in stack.describe(celery).splitlines() if x.startswith("CeleryExecutor"))
    assert "redis://127.0.0.1:6379/0" in line
    assert "celery-worker-training serves default, training" in line
