"""
### feedback_inference

Scores pending inference requests with a model's **champion**, logs every prediction (trace id, model
version, confidence, class probabilities, slice attributes) and sends the least confident ones to human
review in the Airflow UI (**Browse → Required Actions**).

A run triggered by hand serves the model in the form. Scheduled runs fire at every model's
`schedules.inference` (UTC) and serve each model whose own schedule fires at that time; a model that cannot
be scored (no champion, a tampered artifact) fails the run with its reason after the others are scored.

1. `score_requests` takes up to *Batch size* pending rows of `inference_requests` (apps enqueue them under
   their own request ids with the feedback API's `POST /requests`, or `feedback-loop predict --model NAME
   --input FILE.csv`), verifies the champion artifact's checksum, scores and logs the predictions (each
   request gets its trace id, which apps read back by request id), and queues those below the confidence
   threshold in `review_items`.
   Queued items older than `review_queue_max_age_hours` expire.
2. `route_reviews` branches: `open_reviews` when review items are waiting and the budget is above zero,
   else `no_review`.
3. `open_reviews` picks up to *Review budget* queued items, lowest confidence first (the rest stay queued
   for later runs), and `review` asks one human-in-the-loop question per item: the input as a table, the
   prediction, its confidence and the top alternatives; options are the candidate labels by probability,
   *None of these* (type the corrected label) and *Skip*. Reviewers are notified through the webhook.
4. Each answer is written to `feedback` (source `review`, the reviewer's id, latency since the review
   opened) and closes its review item. An unanswered review expires after `review_timeout_minutes`.
5. `close_round` puts back in the queue any item whose review task failed before recording an answer.

Needs: Airflow connection `feedback_db` (PostgreSQL), or `FEEDBACK_LOOP_DB_URL`; `FEEDBACK_LOOP_CONFIG`
for the models (defaults to the bundled example); a champion registered for the model; optionally
`FEEDBACK_LOOP_WEBHOOK_URL` for reviewer notifications and `[api] base_url` for links to the review tasks.
"""

from __future__ import annotations

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import Param, TriggerRule, dag, get_current_context, task

from feedback_loop.adapters.airflow_dags import (
    DEFAULT_ARGS,
    FEEDBACK,
    PREDICTIONS,
    TAGS,
    model_param,
    models_schedule,
    run_time,
    run_type,
)
from feedback_loop.adapters.airflow_hitl import ReviewNotifier, ReviewOperator, review_params
from feedback_loop.core import dag_config

_CONFIGURED = ", ".join(
    f"{m.name}: threshold {m.confidence_threshold}, budget {m.review_budget}" for m in dag_config.models()
)


@dag(
    # Fires at every model's `schedules.inference`; a scheduled run scores the models due at its time.
    schedule=models_schedule("inference"),
    catchup=False,
    # Runs wait for humans; a later run may score new requests meanwhile (rows are locked per run).
    max_active_runs=4,
    default_args=DEFAULT_ARGS,
    tags=[*TAGS, "inference", "review"],
    doc_md=__doc__,
    params={
        "model_name": model_param("The model whose pending requests are scored (manual runs)."),
        "confidence_threshold": Param(
            None,
            type=["null", "number"],
            exclusiveMinimum=0,
            maximum=1,
            title="Confidence threshold",
            description=f"Predictions below this go to human review. Empty = the model's configured value "
            f"({_CONFIGURED}).",
        ),
        "review_budget": Param(
            None,
            type=["null", "integer"],
            minimum=0,
            maximum=500,
            title="Review budget",
            description="At most this many review tasks in this run (lowest confidence first); the rest "
            "stay queued. Empty = the model's configured value.",
        ),
        "batch_size": Param(
            1000,
            type="integer",
            minimum=1,
            maximum=100_000,
            title="Batch size",
            description="How many pending requests to score in this run (oldest first), per model.",
        ),
    },
)
def feedback_inference():
    @task(outlets=[PREDICTIONS])
    def score_requests() -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        from feedback_loop.core import config, db
        from feedback_loop.inference import rounds

        context = get_current_context()
        settings = config.load()
        planned = rounds.plan(
            settings, run_type=run_type(context), params=context["params"], at=run_time(context)
        )
        with db.connect() as conn:
            scored = rounds.score(conn, settings, planned, run_id=context["run_id"])
        if scored.failures:
            # Retrying cannot fix a tampered artifact, a missing champion or a bad parameter; the models
            # that were scored keep their predictions and their reviews open in the next run.
            raise AirflowFailException(scored.failure_text())
        return scored.to_dict()

    @task.branch
    def route_reviews(scored: dict) -> str:
        from feedback_loop.inference import rounds

        return "open_reviews" if rounds.Scored(**scored).wants_review() else "no_review"

    @task
    def open_reviews(scored: dict) -> list[dict]:
        from feedback_loop.adapters.airflow_hitl import review_task_kwargs
        from feedback_loop.core import config, db
        from feedback_loop.inference import rounds

        context = get_current_context()
        ref = {"dag_id": context["dag"].dag_id, "run_id": context["run_id"], "task_id": "review"}
        with db.connect() as conn:
            opened = rounds.open_reviews(conn, config.load(), rounds.Scored(**scored), ref)
        return [kwargs for model, tasks in opened for kwargs in review_task_kwargs(model, tasks)]

    @task(trigger_rule=TriggerRule.NONE_SKIPPED, outlets=[FEEDBACK])
    def close_round() -> dict:
        from feedback_loop.core import db
        from feedback_loop.inference import reviews

        context = get_current_context()
        with db.connect() as conn:
            requeued = reviews.requeue_unfinished(conn, context["dag"].dag_id, context["run_id"])
        if requeued:
            print(f"review item(s) {requeued} got no recorded answer; they are queued again for a later run")
        return {"requeued": requeued}

    scored = score_requests()
    route = route_reviews(scored)
    opened = open_reviews(scored)
    reviews = ReviewOperator.partial(
        task_id="review",
        params=review_params(),
        notifiers=[ReviewNotifier()],
        map_index_template="review item {{ task.review_item_id }}",
    ).expand_kwargs(opened)
    route >> [opened, EmptyOperator(task_id="no_review")]
    reviews >> close_round()


feedback_inference()
