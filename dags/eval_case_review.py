"""
### eval_case_review

Takes eval cases out of a model's **must-pass** regression set, or puts them back, in one audited
transaction.

When `model_retraining` rejects a candidate on "eval cases (must pass)", its decision names the failing case
ids. If a case's label is wrong (a reviewer "corrected" a prediction that was right), trigger this DAG with
those ids and *demote*: the case is then *watched*, scored and reported by the gate on every run but never
gating. *Restore* makes it must-pass again. Every change is kept in `eval_case_events` with who triggered
the run and why; ids that do not belong to the model fail the run and change nothing. The task log lists
each case with its labels and the feedback it came from; `feedback-loop eval-cases list --model NAME`
shows them all.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, get_current_context, task

from feedback_loop.adapters.airflow_dags import actor_from_context, on_call_dag


@dag(
    schedule=None,
    **on_call_dag(
        __doc__,
        model="The model whose regression set changes.",
        params={
            "case_ids": Param(
                [],
                type="array",
                items={"type": "integer", "minimum": 1},
                minItems=1,
                title="Eval case ids",
                description="The ids from the gate's verdict ('failing case ids [...]') as a JSON list, "
                "e.g. [17, 23].",
            ),
            "action": Param(
                "demote",
                type="string",
                enum=["demote", "restore"],
                title="Action",
                description="demote: watched, reported but not gating. restore: must-pass again.",
            ),
        },
        reason="Why, e.g. 'reviewer slip: the input is a 7' (kept in eval_case_events).",
    ),
)
def eval_case_review():
    @task
    def change_must_pass() -> dict:
        from feedback_loop.core import db
        from feedback_loop.retrain import eval_cases

        context = get_current_context()
        params = context["params"]
        model_name, ids = params["model_name"], params["case_ids"]
        with db.connect() as conn:
            result = eval_cases.set_must_pass(
                conn,
                model_name,
                ids,
                must_pass=params["action"] == "restore",
                actor=actor_from_context(context),
                reason=params["reason"],
            )
            cases = eval_cases.list_cases(conn, model_name, ids)
        print(eval_cases.change_report(model_name, params["action"] == "restore", result, cases))
        return {"model_name": model_name, "action": params["action"], **result}

    change_must_pass()


eval_case_review()
