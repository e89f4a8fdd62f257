"""`make demo`: the loop on the bundled digits data.

Current scope (foundation): find or start PostgreSQL, migrate, train and register v1 of the demo model on
a small slice of digits, promote it, and list the registry. The Airflow-driven loop (inference, reviews,
feedback, aggregation, retraining) joins here as those parts land.
"""

from __future__ import annotations

import sys
import time
from urllib.parse import urlsplit

from feedback_loop import baseline, config, db, migrations, registry
from feedback_loop.commands.output import progress, table

DEMO_MODEL = "digits"


def main() -> int:
    started = time.monotonic()
    progress("[1/4] finding PostgreSQL (FEEDBACK_LOOP_DB_URL, else 127.0.0.1:5432, else a throwaway server)")
    url = db.resolve_url()
    parts = urlsplit(url)
    progress(f"      using {parts.hostname}:{parts.port}{parts.path}")
    progress("[2/4] applying schema migrations")
    applied = migrations.upgrade(url)
    progress(f"      {len(applied)} applied" if applied else "      schema already current")
    model = config.load().model(DEMO_MODEL)
    with db.connect(url) as conn:
        champion = registry.current_version(conn, DEMO_MODEL)
        if champion is None:
            progress(f"[3/4] training {DEMO_MODEL} v1 on {model.training_data.limit or 'all'} bundled rows")
            version = baseline.train_and_register(
                conn,
                model,
                created_by="demo",
                promote=True,
                reason="demo: first version on a small slice of digits",
            )
            progress(
                f"      registered and promoted v{version.version} "
                f"(holdout accuracy {version.metrics['accuracy']:.3f})"
            )
        else:
            progress(f"[3/4] {DEMO_MODEL} already has champion v{champion}; keeping it")
        progress("[4/4] the registry now holds:")
        champion = registry.current_version(conn, DEMO_MODEL)
        rows = [
            {**v.summary(), "champion": "*" if v.version == champion else ""}
            for v in registry.list_versions(conn, DEMO_MODEL)
        ]
    print(
        table(rows, ["model_name", "version", "champion", "status", "accuracy", "train_rows", "created_at"])
    )
    progress(f"done in {time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
