"""
### model_retraining

Retrains a model on its base data plus what humans told us (confirmed and corrected predictions), gates
the candidate against the champion on the same holdout and on every eval case (real failures users
reported), registers it (rejected candidates too, marked rejected) and promotes it if it passed.

Triggers: the schedule in the config (`schedules.retraining`, default weekly), the
`feedback_loop://retraining_needed` asset (from feedback_aggregation), or on-call with the form below.
*Dry run* reports what it would train on and changes nothing (its `training_runs` row says `dry_run`).
Runs for one model never interleave: `max_active_runs=1` plus a PostgreSQL advisory lock per model that
also holds across Airflow deployments. With `gate.require_approval: true`, an approval task in
Browse -> Required Actions shows the before/after table and only *Approve* promotes.
Every attempt is a row in `training_runs` (snapshot, metrics, gate verdict, decision).
Emits `feedback_loop://champion` when a model was promoted.

Needs: Airflow connection `feedback_db` (PostgreSQL), or `FEEDBACK_LOOP_DB_URL`; `FEEDBACK_LOOP_CONFIG`
for the models (defaults to the bundled example); `FEEDBACK_LOOP_ARTIFACT_DIR` on storage every worker sees.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Param, dag, get_current_context, task

from feedback_loop.adapters import airflow_retraining
from feedback_loop.adapters.airflow_dags import (
    CHAMPION,
    DEFAULT_ARGS,
    TAGS,
    actor_from_context,
    asset_extras,
    model_param,
    run_time,
    run_type,
)

APPROVAL_TIMEOUT = timedelta(days=2)


@dag(
    schedule=airflow_retraining.schedule(),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=[*TAGS, "training", "registry", "on-call"],
    doc_md=__doc__,
    params={
        "model_name": model_param("The model to retrain (manual runs; scheduled runs retrain every model)."),
        "min_rating": Param(
            4,
            type="integer",
            minimum=1,
            maximum=5,
            title="Minimum rating",
            description="Ratings at or above this confirm the prediction and make it a training label.",
        ),
        "include_corrections": Param(
            True,
            type="boolean",
            title="Include corrections",
            description="Use corrected labels (API corrections, reviewer answers). Off: confirmations only.",
        ),
        "window_start": Param(
            None,
            type=["null", "string"],
            format="date-time",
            title="Feedback from",
            description="Only feedback created at or after this time. Empty = from the beginning.",
        ),
        "window_end": Param(
            None,
            type=["null", "string"],
            format="date-time",
            title="Feedback until",
            description="Only feedback created before this time. Empty = now.",
        ),
        "window_days": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            title="Or: last N days",
            description="Instead of 'Feedback from': only the last N days before 'Feedback until'.",
        ),
        "dry_run": Param(
            False,
            type="boolean",
            title="Dry run",
            description="Report what would be trained on (counts, classes, window); register and promote nothing.",
        ),
        "reason": Param(
            "",
            type="string",
            maxLength=500,
            title="Reason",
            description="Why you are retraining (kept in training_runs and in the alias history on promotion).",
        ),
    },
)
def model_retraining():
    @task(retries=0)
    def plan_runs() -> list[dict]:
        """Which models this trigger retrains, with validated parameters (bad input fails here, once:
        retrying cannot fix a wrong form)."""
        from feedback_loop.core import config
        from feedback_loop.retrain import planning

        context = get_current_context()
        planned = planning.plan(
            config.load(),
            run_type=run_type(context),
            params=dict(context["params"]),
            asset_extras=asset_extras(context),
            at=run_time(context),
            triggered_by=actor_from_context(context),
            airflow_run_id=context["dag_run"].run_id,
        )
        for p in planned:
            print(
                f"{p.model_name}: window {p.window_start:%Y-%m-%d %H:%M} .. {p.window_end:%Y-%m-%d %H:%M}, "
                f"min_rating {p.min_rating}, corrections {p.include_corrections}, dry run {p.dry_run}"
            )
        return [p.to_dict() for p in planned]

    # The retry is for a lost worker only (see below): no back-off is needed before it.
    @task(retries=1, retry_delay=timedelta(seconds=10), queue=airflow_retraining.training_queue())
    def retrain(spec: dict) -> dict:
        """Under the model's lock: pull, eval cases, train, gate, register, promote (or wait for approval).
        Runs on the training queue. An error fails it at once (recorded as failed; the next trigger starts
        afresh); the one retry is for a worker lost mid-run: the lost attempt's lock went with its
        connection, close_runs marks its run failed, and the retry records a run of its own."""
        from feedback_loop.core import config, db
        from feedback_loop.retrain import pipeline, planning

        params = planning.RunParams.from_dict(spec)
        model = config.load().model(params.model_name)
        with airflow_retraining.no_retry_on_error(), db.connect() as conn:
            outcome = pipeline.run(conn, model, params)
        print(f"{model.name}: {outcome.status}: {outcome.decision}")
        if outcome.table:
            print(outcome.table)
        return outcome.to_dict()

    @task.branch
    def route(outcomes: list[dict]) -> list[str]:
        """Promoted models announce the new champion; candidates awaiting sign-off go to a human."""
        outcomes = list(outcomes)
        chosen = []
        if any(o["status"] == "promoted" for o in outcomes):
            chosen.append("publish_champion")
        if any(o["status"] == "awaiting_approval" for o in outcomes):
            from feedback_loop.retrain import approval

            get_current_context()["ti"].xcom_push(key="approval_body", value=approval.approval_text(outcomes))
            chosen.append("request_approval")
        return chosen

    @task(outlets=[CHAMPION])
    def publish_champion(outcomes: list[dict]) -> list[dict]:
        from feedback_loop.retrain import approval

        promoted = approval.promoted_by_run(list(outcomes))
        get_current_context()["outlet_events"][CHAMPION].extra = {"promoted": promoted}
        return promoted

    request_approval = ApprovalOperator(
        task_id="request_approval",
        subject="Promote the retrained model(s)? {{ dag_run.run_id }}",
        body="{{ ti.xcom_pull(task_ids='route', key='approval_body') }}",
        defaults="Reject",
        response_timeout=APPROVAL_TIMEOUT,
        retries=0,
    )

    @task(outlets=[CHAMPION], retries=0)
    def promote_approved(outcomes: list[dict]) -> list[dict]:
        """Promote what the approver signed off, if the champion has not moved since the gate."""
        from feedback_loop.core import db
        from feedback_loop.retrain import approval

        context = get_current_context()
        approver = airflow_retraining.responder(context["ti"].xcom_pull(task_ids="request_approval"))
        with db.connect() as conn:
            promoted = approval.approve_all(conn, list(outcomes), approver=approver)
        context["outlet_events"][CHAMPION].extra = {"promoted": promoted, "approved_by": approver}
        return promoted

    @task(retries=3)
    def close_runs() -> list[dict]:
        """Always runs last: runs left 'running' are marked failed, unapproved candidates rejected."""
        from feedback_loop.core import db
        from feedback_loop.retrain import pipeline

        context = get_current_context()
        approver = airflow_retraining.responder(context["ti"].xcom_pull(task_ids="request_approval"))
        with db.connect() as conn:
            closed = pipeline.close_airflow_run(conn, context["dag_run"].run_id, approver=approver)
        for c in closed:
            print(f"training run #{c['run_id']} ({c['model_name']}): {c['status']}")
        return closed

    planned = plan_runs()
    outcomes = retrain.expand(spec=planned)
    routed = route(outcomes)
    published = publish_champion(outcomes)
    approved = promote_approved(outcomes)
    routed >> [published, request_approval]
    request_approval >> approved
    closing = close_runs().as_teardown(setups=planned)
    [published, approved] >> closing


model_retraining()
