"""The CeleryExecutor's pieces of the local stack: choosing the executor, finding or starting a broker."""

from __future__ import annotations

import shutil

import pytest

from feedback_loop.core.errors import FeedbackLoopError
from feedback_loop.lab import celery_stack

pytestmark = pytest.mark.integration


def test_the_executor_comes_from_the_argument_else_the_environment_else_local(monkeypatch):
    monkeypatch.delenv(celery_stack.ENV_EXECUTOR, raising=False)
    assert celery_stack.executor() == "local"
    monkeypatch.setenv(celery_stack.ENV_EXECUTOR, "Celery")
    assert celery_stack.executor() == "celery"
    assert celery_stack.executor("local") == "local"
    with pytest.raises(FeedbackLoopError, match="executor 'kubernetes': expected one of local, celery"):
        celery_stack.executor("kubernetes")


def test_the_workers_share_the_default_queue_and_one_serves_training():
    assert [w for w in celery_stack.WORKERS if celery_stack.TRAINING_QUEUE in w.queues] == [
        celery_stack.WORKERS[1]
    ]
    assert all(celery_stack.DEFAULT_QUEUE in w.queues for w in celery_stack.WORKERS)
    command = celery_stack.worker_command("airflow", celery_stack.WORKERS[1])
    assert command[:3] == ["airflow", "celery", "worker"]
    assert command[command.index("--queues") + 1] == "default,training"


def test_a_throwaway_redis_starts_answers_and_stops(tmp_path):
    """What `make up EXECUTOR=celery` does on a machine where nothing answers on 127.0.0.1:6379."""
    if shutil.which("redis-server") is None:
        if celery_stack.redis_answers(*celery_stack.LOCAL_REDIS):
            pytest.skip("redis-server is not installed; the stack uses the Redis answering on 127.0.0.1:6379")
        pytest.fail("no Redis answers on 127.0.0.1:6379 and redis-server is not installed: run `make redis`")
    url = celery_stack.start_throwaway(tmp_path)
    try:
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        assert url == f"redis://127.0.0.1:{port}/0"
        assert celery_stack.redis_answers("127.0.0.1", port)
        assert celery_stack.start_throwaway(tmp_path) == url  # a second start finds the running one
        # `down` removes the stack's keys from a broker it shares, and only those.
        import redis

        client = redis.Redis.from_url(url)
        client.set(f"{celery_stack.key_prefix()}unacked", "a task message")
        client.set("someone-else:queue", "theirs")
        assert celery_stack.forget_keys(url) == 1
        assert client.keys("*") == [b"someone-else:queue"]
        client.close()
    finally:
        assert celery_stack.stop_throwaway(tmp_path)
    assert not celery_stack.redis_answers("127.0.0.1", port)
    assert celery_stack.throwaway_status(tmp_path) is None
    assert not celery_stack.stop_throwaway(tmp_path)  # nothing left to stop
