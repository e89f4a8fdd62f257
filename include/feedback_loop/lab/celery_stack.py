"""The CeleryExecutor variant of the local stack (`make up EXECUTOR=celery`, the Celery e2e tests).

What it adds to `feedback_loop.lab.stack`: a Redis broker, the Airflow settings that point the executor at
it (result backend: Airflow's own PostgreSQL metadata database), and two Celery workers, each in its own
process group like every other component. Only the `training` worker serves the `training` queue, which the
retraining tasks are sent to (`FEEDBACK_LOOP_TRAINING_QUEUE`); both serve the default queue.

The broker is the Redis answering on 127.0.0.1:6379 when there is one; otherwise a throwaway
`redis-server` (Debian's package, installed by `make redis` when missing) started under
`.local/redis/` on a free port, keeping nothing on disk, and stopped by `make down`.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from feedback_loop.core import paths
from feedback_loop.core.errors import FeedbackLoopError
from feedback_loop.lab import process_groups

EXECUTORS = ("local", "celery")
ENV_EXECUTOR = "FEEDBACK_LOOP_EXECUTOR"
ENV_TRAINING_QUEUE = "FEEDBACK_LOOP_TRAINING_QUEUE"
DEFAULT_QUEUE = "default"
TRAINING_QUEUE = "training"
LOCAL_REDIS = ("127.0.0.1", 6379)
STATE_FILE = "redis.json"
HEARTBEAT_TIMEOUT_S = 30


@dataclass(frozen=True)
class Worker:
    name: str  # the stack component name, also the Celery node name's prefix
    queues: tuple[str, ...]
    concurrency: int


# Two workers: the training one also serves the default queue, so a lone `make up` never idles it; the
# other never picks up a retraining (a training host can be the one with the memory and the CPUs).
WORKERS = (
    Worker("celery-worker", (DEFAULT_QUEUE,), 4),
    Worker("celery-worker-training", (DEFAULT_QUEUE, TRAINING_QUEUE), 2),
)


def executor(requested: str | None = None) -> str:
    """`local` or `celery`: the argument, else FEEDBACK_LOOP_EXECUTOR, else local."""
    value = (requested or os.environ.get(ENV_EXECUTOR) or "local").strip().lower()
    if value not in EXECUTORS:
        raise FeedbackLoopError(f"executor {value!r}: expected one of {', '.join(EXECUTORS)}")
    return value


def redis_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether a Redis server answers PING on host:port (a plain socket: no client library needed)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def redis_dir() -> Path:
    return paths.state_dir() / "redis"


def throwaway_status(data_dir: Path) -> dict | None:
    """The running throwaway Redis started in data_dir ({"pid", "port"}), or None."""
    state = data_dir / STATE_FILE
    if not state.is_file():
        return None
    info = json.loads(state.read_text())
    if redis_answers("127.0.0.1", int(info["port"])):
        return info
    return None


def start_throwaway(data_dir: Path, *, wait_seconds: float = 20) -> str:
    """Start a Redis server on 127.0.0.1 (free port, no persistence) in its own process group; its URL."""
    running = throwaway_status(data_dir)
    if running is not None:
        return f"redis://127.0.0.1:{running['port']}/0"
    binary = shutil.which("redis-server")
    if binary is None:
        raise FeedbackLoopError(
            "the CeleryExecutor needs a Redis broker: none answers on 127.0.0.1:6379 and redis-server is not "
            "installed (`make redis` installs Debian's package as root)"
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = (data_dir / "redis.log").open("ab")
    process = subprocess.Popen(
        # The broker holds only queued task messages of a throwaway stack: nothing is written to disk.
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        cwd=data_dir,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    (data_dir / STATE_FILE).write_text(json.dumps({"pid": process.pid, "port": port}))
    deadline = time.monotonic() + wait_seconds
    while not redis_answers("127.0.0.1", port):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_throwaway(data_dir)
            raise FeedbackLoopError(f"redis-server did not start; see {data_dir / 'redis.log'}")
        time.sleep(0.2)
    return f"redis://127.0.0.1:{port}/0"


def stop_throwaway(data_dir: Path) -> bool:
    """Stop the throwaway Redis started in data_dir, if any; whether one was stopped."""
    state = data_dir / STATE_FILE
    if not state.is_file():
        return False
    pid = int(json.loads(state.read_text())["pid"])
    state.unlink()
    return process_groups.stop([pid], grace=10) > 0


def broker_url() -> str:
    """The Redis on 127.0.0.1:6379 when it answers, else a throwaway one (`stack.down` stops it)."""
    if redis_answers(*LOCAL_REDIS):
        return f"redis://{LOCAL_REDIS[0]}:{LOCAL_REDIS[1]}/0"
    return start_throwaway(redis_dir())


def forget_keys(broker: str) -> int:
    """Delete this stack's keys (queues, bindings, messages a killed worker left unacknowledged) from a
    Redis the stack did not start, so a shared server keeps nothing of it; the number deleted."""
    import redis

    client = redis.Redis.from_url(broker, socket_timeout=5)
    try:
        keys = list(client.scan_iter(match=f"{key_prefix()}*", count=500))
        return int(client.delete(*keys)) if keys else 0
    except redis.RedisError:
        return 0  # the broker is gone: nothing of ours is left on it either
    finally:
        client.close()


def key_prefix() -> str:
    """Every Redis key of this stack starts with this: two checkouts (or a test session and `make up`)
    sharing one Redis would otherwise take each other's task messages from the same queue names."""
    return f"feedback-loop-{paths.state_tag()}:"


def airflow_settings(broker: str, metadata_db_url: str) -> dict[str, str]:
    """The environment that turns the stack's Airflow into a CeleryExecutor deployment."""
    return {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": broker,
        # Task states go to the metadata database (PostgreSQL), not to the broker.
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + metadata_db_url,
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__GLOBAL_KEYPREFIX": key_prefix(),
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": DEFAULT_QUEUE,
        # A task whose worker died (SIGKILL, host lost) is failed, and retried if it may be, once its
        # heartbeats stop for this long; Airflow's default is 300 s. Running tasks beat every 5 s.
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT_S),
        ENV_TRAINING_QUEUE: TRAINING_QUEUE,
    }


def worker_command(airflow_bin: str, worker: Worker) -> list[str]:
    return [
        airflow_bin,
        "celery",
        "worker",
        "--queues",
        ",".join(worker.queues),
        "--concurrency",
        str(worker.concurrency),
        # Two workers on one host need distinct Celery node names.
        "--celery-hostname",
        f"{worker.name}@%h",
    ]


def worker_env(env: dict[str, str], log_server_port: int) -> dict[str, str]:
    """A worker's environment: each serves its task logs on its own port (two on one host)."""
    return {**env, "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(log_server_port)}
