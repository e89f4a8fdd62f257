"""
### model_rollback

Moves a model's **champion** alias back to an earlier version, in one audited transaction.

Trigger it from the Airflow UI (Trigger DAG → fill the form). Leave *Target version* empty to restore the
version that the current champion replaced. The run records who triggered it and why in
`model_alias_events`; `feedback-loop model history --model NAME` shows it.

Automatic rollback (off unless `gate.auto_rollback_accuracy_drop` is set for a model): the DAG then also
runs on every `feedback_loop://rollups` event and, for those models, compares the champion's first rollups
after its promotion with the previous champion's; a drop in accuracy on labelled feedback beyond the
threshold rolls back, audited as `feedback-loop:auto-rollback` with the numbers in the reason.

Every rollback first verifies the target: its artifact's sha256 and that it fits the model (feature columns
and classes, see `registry.check_servable`). A target that fails leaves the champion where it is and fails
the task with one line saying why.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, get_current_context, task

from feedback_loop.adapters import airflow_retraining
from feedback_loop.adapters.airflow_dags import CHAMPION, actor_from_context, on_call_dag, run_type


@dag(
    schedule=airflow_retraining.auto_rollback_schedule(),
    **on_call_dag(
        __doc__,
        model="The model whose champion moves back.",
        params={
            "target_version": Param(
                None,
                type=["null", "integer"],
                minimum=1,
                title="Target version",
                description="Version to restore. Empty = the version the current champion replaced.",
            ),
        },
        reason="Why you are rolling back (kept in the alias history).",
    ),
)
def model_rollback():
    @task.branch
    def route() -> str:
        """A person asked (form, CLI, REST) -> roll back; new rollups arrived -> check recent promotions."""
        if run_type(get_current_context()) == "asset_triggered":
            return "check_recent_promotions"
        return "roll_back_champion"

    @task(outlets=[CHAMPION])
    def check_recent_promotions() -> list[dict]:
        """Automatic rollback for models that enable it; skipped (no champion event) when nothing moved."""
        from airflow.sdk.exceptions import AirflowSkipException

        from feedback_loop.core import config, db
        from feedback_loop.registry import auto_rollback

        with db.connect() as conn:
            results = auto_rollback.check_all(conn, config.load())
        for r in results:
            print(f"{r['model_name']}: {r['decision']} {r}")
        refused = [r for r in results if r["decision"] == "refused"]
        if refused:  # a regressed champion keeps serving: on-call must look (the others were handled)
            raise RuntimeError("; ".join(f"{r['model_name']}: {r['reason']}" for r in refused))
        rolled = [r for r in results if r["decision"] == "rolled_back"]
        if not rolled:
            raise AirflowSkipException("no promotion regressed beyond its threshold; nothing rolled back")
        get_current_context()["outlet_events"][CHAMPION].extra = {"rolled_back": rolled}
        return results

    @task(outlets=[CHAMPION])
    def roll_back_champion() -> dict:
        from feedback_loop.core import db
        from feedback_loop.registry import versions as registry

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

    route() >> [roll_back_champion(), check_recent_promotions()]


model_rollback()
