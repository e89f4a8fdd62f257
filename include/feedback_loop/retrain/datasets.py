"""Base training data: the bundled digits set, a CSV/Parquet file, or a SQL query on feedback_db."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg

from feedback_loop.core import db
from feedback_loop.core.errors import ConfigError, InvalidInputError

if TYPE_CHECKING:
    import pandas as pd

    from feedback_loop.core.config import ModelConfig


def digits() -> pd.DataFrame:
    """scikit-learn's 8x8 digits (1,797 rows, shipped inside scikit-learn) as a table.

    `writer_group` is a deterministic pseudo-slice (row index mod 3) so slice metrics have something to
    group by; it carries no signal about the label.
    """
    import pandas as pd
    from sklearn.datasets import load_digits

    bunch = load_digits()
    frame = pd.DataFrame(bunch.data, columns=[f"pixel_{i}" for i in range(bunch.data.shape[1])])
    frame["writer_group"] = [("a", "b", "c")[i % 3] for i in range(len(frame))]
    frame["label"] = [str(int(v)) for v in bunch.target]
    return frame


def read_table(path: str | Path) -> pd.DataFrame:
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"data file {path}: not found")
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise InvalidInputError(
            f"data file {path}: expected .csv or .parquet, got {suffix or 'no extension'}"
        )
    try:
        return pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    except (ValueError, OSError, pd.errors.ParserError) as exc:  # pyarrow's errors derive from these
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidInputError(f"data file {path}: cannot be read: {reason}") from None


@contextmanager
def configured_query(
    conn: psycopg.Connection, model: ModelConfig, *, cursor_name: str | None = None, itersize: int = 1_000
) -> Iterator[psycopg.Cursor]:
    """The cursor of the model's training_data.query, run in a read-only transaction (core.db.read_only):
    the config check refuses writing SQL when the file loads, and PostgreSQL refuses it here whatever got
    through. `cursor_name`: a server-side cursor, to stream a large result."""
    try:
        with db.read_only(conn), conn.cursor(name=cursor_name) if cursor_name else conn.cursor() as cursor:
            if cursor_name:
                cursor.itersize = itersize
            cursor.execute(model.training_data.query)
            yield cursor
    except psycopg.errors.ReadOnlySqlTransaction as exc:
        raise ConfigError(
            f"model {model.name!r}: training_data.query tried to write ({_first_line(exc)}); configured "
            "queries run read-only"
        ) from None
    except (psycopg.ProgrammingError, psycopg.NotSupportedError, psycopg.DataError) as exc:
        raise ConfigError(
            f"model {model.name!r}: training_data.query cannot run: {_first_line(exc)}"
        ) from None


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def load_training_data(model: ModelConfig, conn=None) -> pd.DataFrame:
    """The configured base training set, with the label column as strings."""
    import pandas as pd

    source = model.training_data
    if source.bundled == "digits":
        frame = digits()
    elif source.path:
        frame = read_table(source.path)
    else:
        if conn is None:
            raise ConfigError(f"model {model.name!r}: training_data.query needs a database connection")
        with configured_query(conn, model) as cursor:
            frame = pd.DataFrame(cursor.fetchall(), columns=[c.name for c in cursor.description])
    if model.label_column not in frame.columns:
        raise ConfigError(
            f"model {model.name!r}: label_column {model.label_column!r} is not in the training data "
            f"(columns: {', '.join(map(str, frame.columns[:12]))})"
        )
    frame = frame.dropna(subset=[model.label_column])
    frame[model.label_column] = frame[model.label_column].astype(str)
    if source.limit:
        frame = stratified_head(frame, model.label_column, source.limit, seed=model.seed)
    return frame.reset_index(drop=True)


def stratified_head(frame: pd.DataFrame, label: str, n: int, seed: int) -> pd.DataFrame:
    """About `n` rows with every class represented, reproducible for a seed."""
    if n >= len(frame):
        return frame
    from sklearn.model_selection import train_test_split

    counts = frame[label].value_counts()
    stratify = frame[label] if counts.min() >= 2 and n >= counts.size else None
    picked, _ = train_test_split(frame, train_size=n, random_state=seed, stratify=stratify)
    return picked.sort_index()
