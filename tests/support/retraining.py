"""Builders for retraining tests: the demo model, v1 on its base slice, production traffic with feedback."""

from __future__ import annotations

import uuid

from feedback_loop.core import config, store
from feedback_loop.registry import versions as registry
from feedback_loop.retrain import baseline, datasets


def digits_model(**gate_overrides):
    model = config.load().model("digits")
    if gate_overrides:
        model = model.model_copy(update={"gate": model.gate.model_copy(update=gate_overrides)})
    return model


def production_rows(model, n: int, offset: int = 0):
    """Digits rows that are not in the model's base slice (what production would send)."""
    frame = datasets.digits()
    base = datasets.stratified_head(frame, model.label_column, model.training_data.limit, seed=model.seed)
    rest = frame.drop(index=base.index)
    return rest.iloc[offset : offset + n].reset_index(drop=True)


def champion_v1(conn, model):
    return baseline.train_and_register(conn, model, created_by="test", promote=True, reason="v1")


def log_scored(conn, model, rows, version: int | None = None) -> list[dict]:
    """Score `rows` with the champion (or `version`) and log them as predictions; returns
    [{trace_id, predicted, truth}]."""
    estimator, entry = registry.load(conn, model.name, version)
    features = entry.feature_columns
    probabilities = estimator.predict_proba(rows[features])
    classes = [str(c) for c in estimator.classes_]
    out, predictions = [], []
    for i, row in rows.iterrows():
        best = int(probabilities[i].argmax())
        trace = uuid.uuid4()
        predictions.append(
            store.Prediction(
                trace_id=trace,
                model_name=model.name,
                model_version=entry.version,
                input={c: float(row[c]) for c in features},
                output_label=classes[best],
                confidence=float(probabilities[i][best]),
                slice={"writer_group": row["writer_group"]},
            )
        )
        out.append({"trace_id": trace, "predicted": classes[best], "truth": str(row["label"])})
    store.log_predictions(conn, predictions)
    conn.commit()
    return out


def add_feedback(conn, rows: list[tuple]) -> None:
    """rows: (trace_id, kind, rating, label, source, user_id); model fields come from the prediction."""
    with conn.cursor() as cur:
        cur.executemany(
            """
            INSERT INTO feedback (trace_id, model_name, model_version, kind, rating, label, source, user_id)
            SELECT trace_id, model_name, model_version, %s, %s, %s, %s, %s FROM predictions WHERE trace_id = %s
            """,
            [(kind, rating, label, source, user, trace) for trace, kind, rating, label, source, user in rows],
        )
    conn.commit()


def honest_feedback(conn, scored: list[dict]) -> int:
    """Users confirm right predictions (thumbs up) and correct wrong ones; returns the number corrected."""
    rows = []
    for item in scored:
        if item["predicted"] == item["truth"]:
            rows.append((item["trace_id"], "thumbs_up", None, None, "api", None))
        else:
            rows.append((item["trace_id"], "correction", None, item["truth"], "api", "user-1"))
    add_feedback(conn, rows)
    return sum(1 for item in scored if item["predicted"] != item["truth"])


def flipped_feedback(conn, scored: list[dict]) -> None:
    """Poisoned feedback: every prediction 'corrected' to a wrong label."""
    add_feedback(
        conn,
        [
            (s["trace_id"], "correction", None, str((int(s["truth"]) + 1) % 10), "api", "troll")
            for s in scored
        ],
    )


def runs(conn) -> list[dict]:
    return conn.execute("SELECT * FROM training_runs ORDER BY id").fetchall()
