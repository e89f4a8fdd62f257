"""`make up` / `make down`: a local Airflow 3 (api-server, scheduler, dag-processor, triggerer) plus the
feedback database, bound to 127.0.0.1, each component in its own process group so `down` leaves nothing.

State lives in `.local/airflow/`: the Airflow home (logs; the metadata DB is on PostgreSQL), the generated
login passwords (`passwords.json`, owner-only), a JWT secret made on first start (never committed) and
`stack.json` with pids and ports.

Airflow runs the FAB auth manager (adapters.airflow_fab_manager) with the package's roles, created by
`feedback-loop roles sync` at every start (idempotent), and one login per role (USERS).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import requests

from feedback_loop.api.workers import default_workers
from feedback_loop.core import db, embedded_postgres, migrations, paths
from feedback_loop.core.console import Heartbeat, progress
from feedback_loop.core.errors import FeedbackLoopError
from feedback_loop.lab import celery_stack, process_groups

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
# One login per role; the roles are the package's (docs/operations.md, "Roles"), Admin is FAB's.
USERS = {
    "admin": "Admin",
    "reviewer": "feedback_reviewer",
    "oncall": "feedback_oncall",
    "app": "feedback_app",
    "viewer": "feedback_viewer",
}
AUTH_MANAGER = "feedback_loop.adapters.airflow_fab_manager.FeedbackLoopFabAuthManager"
PASSWORDS_FILE = "passwords.json"


@dataclass
class StackState:
    api_url: str
    pids: dict[str, int]
    feedback_db_url: str
    airflow_home: str
    executor: str = "local"
    broker_url: str | None = None  # CeleryExecutor only

    @property
    def passwords(self) -> dict[str, str]:
        return read_passwords(Path(self.airflow_home))


def read_passwords(home: Path) -> dict[str, str]:
    """The generated logins of the stack whose Airflow home is `home` (`feedback-loop roles sync` writes them)."""
    path = home / PASSWORDS_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def airflow_home() -> Path:
    path = paths.state_dir() / "airflow"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _state_file() -> Path:
    return airflow_home() / "stack.json"


def _free_port(preferred: int | None = None) -> int:
    for candidate in ([preferred] if preferred else []) + [0]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise FeedbackLoopError("no free TCP port on 127.0.0.1")


def _secret(home: Path, name: str) -> str:
    """A random secret kept in the stack's home (owner-only), the same at every `make up` of this state."""
    path = home / name
    if not path.is_file():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def metadata_database_name() -> str:
    """One Airflow metadata database per state folder, so two checkouts (or a test session and the demo)
    on one PostgreSQL server never share Airflow state."""
    return f"feedback_loop_airflow_{paths.state_tag()}"


def metadata_database_url(feedback_db_url: str) -> str:
    """Airflow's metadata DB: a database of its own on the same PostgreSQL server (created if missing).

    Not SQLite: concurrent answers to review tasks get "database is locked" from it (HTTP 500 on
    PATCH .../hitlDetails), and PostgreSQL is there anyway."""
    return db.ensure_database(feedback_db_url, metadata_database_name())


def metadata_db_url(feedback_db_url: str) -> str:
    """metadata_database_url as Airflow's SQLAlchemy setting names it (with the psycopg driver)."""
    return "postgresql+psycopg://" + metadata_database_url(feedback_db_url).split("://", 1)[1]


def airflow_env(home: Path, api_port: int, feedback_db_url: str) -> dict[str, str]:
    root = paths.project_root() or Path.cwd()
    api_url = f"http://127.0.0.1:{api_port}"
    # Airflow settings of the calling process (a test session, a shell) must not leak into the stack.
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
    env = {
        **inherited,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(root / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "8",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__AUTH_MANAGER": AUTH_MANAGER,
        # Signs the FAB login session of the UI; per state folder, never committed.
        "AIRFLOW__API__SECRET_KEY": _secret(home, "api_secret_key"),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api_url}/execution/",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_db_url(feedback_db_url),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__BASE_URL": api_url,
        "AIRFLOW__API__WORKERS": str(default_workers()),  # one per core, as Airflow advises
        "AIRFLOW__API_AUTH__JWT_SECRET": _secret(home, "jwt_secret"),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(_free_port(8793)),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(_free_port(8794)),
        "AIRFLOW_CONN_FEEDBACK_DB": feedback_db_url,
        "FEEDBACK_LOOP_DB_URL": feedback_db_url,
        "FEEDBACK_LOOP_STATE_DIR": str(paths.state_dir()),
        # Keys the pseudonyms of user ids holding personal data (core.privacy): stable per state folder.
        "FEEDBACK_LOOP_PSEUDONYM_KEY": _secret(home, "pseudonym_key"),
    }
    env.setdefault("FEEDBACK_LOOP_CONFIG", str(root / "config" / "feedback_loop.yaml"))
    return env


def _airflow_bin() -> str:
    candidate = Path(sys.executable).with_name("airflow")
    return str(candidate) if candidate.exists() else "airflow"


def read_state() -> StackState | None:
    path = _state_file()
    if not path.is_file():
        return None
    return StackState(**json.loads(path.read_text()))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _api_ready(url: str) -> bool:
    try:
        return requests.get(f"{url}/api/v2/monitor/health", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def is_running() -> bool:
    """Whether a stack started by this checkout is up (all components alive, API answering)."""
    current = read_state()
    return (
        current is not None and all(_alive(p) for p in current.pids.values()) and _api_ready(current.api_url)
    )


def _spawn(name: str, argv: list[str], env: dict[str, str], logs: Path) -> int:
    log_file = (logs / f"{name}.log").open("ab")
    process = subprocess.Popen(
        argv,
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # own process group: `down` kills the component and all its children
    )
    return process.pid


def _worker_commands(env: dict[str, str]) -> dict[str, tuple[list[str], dict[str, str]]]:
    return {
        worker.name: (
            celery_stack.worker_command(_airflow_bin(), worker),
            celery_stack.worker_env(env, _free_port()),
        )
        for worker in celery_stack.WORKERS
    }


def restart_worker(name: str) -> StackState:
    """Start a Celery worker of the running stack again (as a supervisor restarts a dead one)."""
    state = read_state()
    if state is None or state.executor != "celery" or state.broker_url is None:
        raise FeedbackLoopError("no CeleryExecutor stack started by this checkout is running")
    home = Path(state.airflow_home)
    env = airflow_env(home, int(state.api_url.rsplit(":", 1)[1]), state.feedback_db_url)
    env |= celery_stack.airflow_settings(state.broker_url, env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    argv, worker_env = _worker_commands(env)[name]
    state.pids[name] = _spawn(name, argv, worker_env, home / "logs")
    _state_file().write_text(json.dumps(asdict(state), indent=2))
    return state


def up(*, wait_seconds: float = 180, executor: str | None = None) -> StackState:
    """Start the stack (or return the running one). `executor`: local (default) or celery, else
    FEEDBACK_LOOP_EXECUTOR (`make up EXECUTOR=celery`)."""
    executor = celery_stack.executor(executor)
    current = read_state()
    if current is not None and is_running() and current.executor == executor:
        progress(f"Airflow already running at {current.api_url}")
        return current
    if current is not None:
        down(quiet=True)

    progress("preparing the feedback database ...")
    feedback_url = db.resolve_url()
    migrations.upgrade(feedback_url)
    home = airflow_home()
    api_port = _free_port(8080)
    env = airflow_env(home, api_port, feedback_url)
    broker = None
    if executor == "celery":
        broker = celery_stack.broker_url()
        env |= celery_stack.airflow_settings(broker, env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    logs = home / "logs"
    logs.mkdir(exist_ok=True)

    progress("migrating Airflow's metadata database (PostgreSQL) ...")
    migrate = subprocess.run([_airflow_bin(), "db", "migrate"], env=env, capture_output=True, text=True)
    if migrate.returncode != 0:
        raise FeedbackLoopError(f"airflow db migrate failed: {migrate.stderr.strip()[-400:]}")

    progress("creating the roles and logins (feedback-loop roles sync) ...")
    sync_roles(env, home)

    commands = {component: ([_airflow_bin(), component], env) for component in COMPONENTS}
    if executor == "celery":
        commands |= _worker_commands(env)
    pids = {name: _spawn(name, argv, component_env, logs) for name, (argv, component_env) in commands.items()}
    state = StackState(
        api_url=f"http://127.0.0.1:{api_port}",
        pids=pids,
        feedback_db_url=feedback_url,
        airflow_home=str(home),
        executor=executor,
        broker_url=broker,
    )
    _state_file().write_text(json.dumps(asdict(state), indent=2))

    progress(f"starting Airflow ({', '.join(pids)}, {executor} executor) on {state.api_url} ...")
    deadline = time.monotonic() + wait_seconds
    heartbeat = Heartbeat("the Airflow API server to answer")
    while not _api_ready(state.api_url):
        heartbeat()
        dead = [name for name, pid in pids.items() if not _alive(pid)]
        if dead:
            down(quiet=True)
            raise FeedbackLoopError(f"Airflow component(s) {dead} exited during start-up; see {logs}")
        if time.monotonic() > deadline:
            down(quiet=True)
            raise FeedbackLoopError(f"Airflow API not ready after {wait_seconds:.0f}s; see {logs}")
        time.sleep(2)
    return state


def sync_roles(env: dict[str, str], home: Path) -> None:
    """The package's roles and one login per role in Airflow's metadata DB; new logins get generated
    passwords in `home/passwords.json`, existing ones keep theirs."""
    cli = Path(sys.executable).with_name("feedback-loop")
    command = [str(cli) if cli.exists() else "feedback-loop", "roles", "sync", "--json"]
    command += [arg for user, role in USERS.items() for arg in ("--user", f"{user}:{role}")]
    command += ["--passwords-file", str(home / PASSWORDS_FILE)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or ["no output"]
        raise FeedbackLoopError(f"feedback-loop roles sync failed: {lines[-1]}")


def down(*, quiet: bool = False, stop_database: bool = True) -> None:
    """Stop every Airflow component we started, and the throwaway PostgreSQL if we started one."""
    state = read_state()
    if state is not None:
        process_groups.stop(list(state.pids.values()))
        if not quiet:
            progress(f"stopped {', '.join(state.pids)}")
        _state_file().unlink(missing_ok=True)
        if state.broker_url is not None:
            celery_stack.forget_keys(state.broker_url)
    if celery_stack.stop_throwaway(celery_stack.redis_dir()) and not quiet:
        progress("stopped the throwaway Redis server")
    if stop_database and embedded_postgres.status(db.embedded_data_dir()) is not None:
        embedded_postgres.stop(db.embedded_data_dir())
        if not quiet:
            progress("stopped the throwaway PostgreSQL server")
    if state is None and not quiet:
        progress("no Airflow started by this project is running")


ROLES = {
    "admin": "everything",
    "reviewer": "answers review tasks of feedback_inference",
    "oncall": "triggers retraining, rollback and eval-case review, approves promotions",
    "app": "sends feedback and inference requests (feedback API only)",
    "viewer": "reads the dashboard and the package's DAGs",
}


def ensure_first_versions() -> list[str]:
    """Every configured model without a champion gets its first version, trained on its configured base
    data and promoted, so `feedback-loop predict` works on a fresh stack; a model whose data cannot be
    read gets the command that does it once the data is there. Returns what was done, one line each."""
    from feedback_loop.core import config
    from feedback_loop.registry import versions as registry
    from feedback_loop.retrain import baseline

    done = []
    with db.connect() as conn:
        for model in config.load().models:
            current = registry.current_version(conn, model.name)
            conn.commit()
            if current is not None:
                done.append(f"{model.name}: v{current} serves")
                continue
            try:
                version = baseline.train_and_register(
                    conn, model, created_by="make up", promote=True, reason="first version on a fresh stack"
                )
                conn.commit()
                done.append(f"{model.name}: trained v{version.version} on its base data and promoted it")
            except FeedbackLoopError as exc:
                conn.rollback()
                done.append(
                    f"{model.name}: no version yet ({exc}); once its data is readable, run "
                    f"`feedback-loop model register --model {model.name} --train --promote`"
                )
    return done


def login_lines(passwords: dict[str, str], indent: str) -> list[str]:
    """One line per generated login, with what its role may do."""
    return [
        f"{indent}login {user} / {passwords[user]}  ({role})"
        for user, role in ROLES.items()
        if user in passwords
    ]


def describe(state: StackState) -> str:
    lines = [f"Airflow UI: {state.api_url}  (Browse -> Required Actions for review tasks)"]
    lines += login_lines(state.passwords, "  ")
    if state.executor == "celery":
        workers = "; ".join(f"{w.name} serves {', '.join(w.queues)}" for w in celery_stack.WORKERS)
        lines.append(f"CeleryExecutor, broker {state.broker_url}: {workers}")
    lines.append(f"Feedback dashboard: {state.api_url}/feedback-dashboard/  (also under Browse in the UI)")
    lines.append(f"Feedback API: {state.api_url}/feedback-api/docs")
    lines.append(
        "Score something: feedback-loop predict --model digits --input FILE.csv, then trigger feedback_inference"
    )
    lines.append("Stop everything with: make down")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    try:
        if argv[:1] == ["up"]:
            state = up()
            for line in ensure_first_versions():
                progress(line)
            print(describe(state))
            return 0
        if argv[:1] == ["down"]:
            down()
            return 0
    except FeedbackLoopError as exc:
        print(f"feedback-loop stack: error: {exc}", file=sys.stderr)
        return 1
    print("usage: python -m feedback_loop.lab.stack up|down", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
