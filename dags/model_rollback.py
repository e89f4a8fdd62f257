"""
### model_rollback

Moves a model's **champion** alias back to an earlier version, in one audited transaction.

Trigger it from the Airflow UI (Trigger DAG → fill the form). Leave *Target version* empty to restore the
version that the current champion replaced. The run records who triggered it and why in
`model_alias_events`; `feedback-loop model history --model NAME` shows it.

Needs: Airflow connection `feedback_db` (PostgreSQL), or `FEEDBACK_LOOP_DB_URL`; `FEEDBACK_LOOP_CONFIG`
for the list of models (defaults to the bundled example).
"""

from __future__ import annotations

from airflow.sdk import Param, dag, get_current_context, task

from feedback_loop.adapters.airflow_dags import CHAMPION, DEFAULT_ARGS, TAGS, actor_from_context, model_param


@dag(
    schedule=None,
    catchup=False,
    max_active_runs=1,
    default_args={**DEFAULT_ARGS, "retries": 0},
    tags=[*TAGS, "registry", "on-call"],
    doc_md=__doc__,
    params={
        "model_name": model_param("The model whose champion moves back."),
        "target_version": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            title="Target version",
            description="Version to restore. Empty = the version the current champion replaced.",
        ),
        "reason": Param(
            "",
            type="string",
            minLength=3,
            maxLength=500,
            title="Reason",
            description="Why you are rolling back (kept in the alias history).",
        ),
    },
)
def model_rollback():
    @task(outlets=[CHAMPION])
    def roll_back_champion() -> dict:
        from feedback_loop import db, registry

        context = get_current_context()
        params = context["params"]
        model_name, target_version, reason = params["model_name"], params["target_version"], params["reason"]
        with db.connect() as conn:
            event = registry.rollback(
                conn, model_name, actor=actor_from_context(context), reason=reason, to_version=target_version
            )
        print(
            f"{model_name}: champion rolled back from v{event.previous_version} to v{event.version} "
            f"by {event.actor}: {event.reason}"
        )
        return {
            "model_name": model_name,
            "version": event.version,
            "previous_version": event.previous_version,
        }

    roll_back_champion()


model_rollback()
