"""The per-model lock that serialises everything that moves a model's champion.

A PostgreSQL session advisory lock held on a dedicated connection for the whole critical section (read the
champion, pull, train, gate, register, promote; or an automatic rollback). Two runs for one model, from one
Airflow or from two deployments sharing the database, never interleave; the second waits and logs which
training run it waits for. If the holder's process dies, its connection closes and the lock goes with it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

from feedback_loop.core import db, queries
from feedback_loop.core.errors import ConflictError

log = logging.getLogger(__name__)

LOCK_CLASS = 0x46425254  # first key of the two-key advisory lock: "FBRT", feedback-loop retraining
DEFAULT_LOCK_TIMEOUT_S = 3600.0


@contextmanager
def model_lock(
    model_name: str,
    *,
    url: str | None = None,
    timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
    poll_s: float = 1.0,
) -> Iterator[None]:
    """Hold the per-model retraining lock (session advisory lock on a dedicated connection)."""
    started = time.monotonic()
    lock_key = {"lock_class": LOCK_CLASS, "model_name": model_name}
    with db.connect(url, autocommit=True) as lock_conn:
        waited = False
        while True:
            row = lock_conn.execute(queries.sql("retraining/try_lock"), lock_key).fetchone()
            if row["ok"]:
                break
            if not waited:
                holder = lock_conn.execute(
                    queries.sql("retraining/running_run"), {"model_name": model_name}
                ).fetchone()
                what = (
                    f"training run #{holder['id']} (started {holder['started_at']:%Y-%m-%d %H:%M:%S})"
                    if holder
                    else "another run"
                )
                log.info("%s: waiting for %s to release the retraining lock", model_name, what)
                waited = True
            if time.monotonic() - started > timeout_s:
                raise ConflictError(
                    f"model {model_name!r}: another retraining run held the lock for more than {timeout_s:.0f}s"
                )
            time.sleep(poll_s)
        if waited:
            log.info("%s: got the retraining lock after %.1fs", model_name, time.monotonic() - started)
        try:
            yield
        finally:
            lock_conn.execute(queries.sql("retraining/unlock"), lock_key)
