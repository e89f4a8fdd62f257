"""`make up` / `make down`: the local stack.

`up` prepares the feedback database (found or started, migrated). `down` stops the throwaway PostgreSQL
server if this project started one. Starting Airflow itself arrives with the end-to-end issue.
"""

from __future__ import annotations

import sys

from feedback_loop import db, embedded_postgres, migrations


def up() -> int:
    url = db.resolve_url()
    migrations.upgrade(url)
    print(f"feedback database ready: {url}")
    print(
        "Airflow is not started by `make up` yet; run it yourself with AIRFLOW_CONN_FEEDBACK_DB set to the URL above."
    )
    return 0


def down() -> int:
    directory = db.embedded_data_dir()
    if embedded_postgres.status(directory) is not None:
        embedded_postgres.stop(directory)
        print(f"stopped the throwaway PostgreSQL server in {directory}")
    else:
        print("nothing to stop")
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["up"]:
        return up()
    if argv[:1] == ["down"]:
        return down()
    print("usage: python -m feedback_loop.stack up|down", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
