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

Needs: Airflow connection `feedback_db` (PostgreSQL), or `FEEDBACK_LOOP_DB_URL`; `FEEDBACK_LOOP_CONFIG`
for the list of models (defaults to the bundled example).
"""

from __future__ import annotations

from airflow.sdk import Param, dag, get_current_context, task

from feedback_loop.adapters.airflow_dags import (
    DEFAULT_ARGS,
    TAGS,
    actor_from_context,
    model_param,
    required_reason_param,
)


@dag(
    schedule=None,
    catchup=False,
    max_active_runs=1,
    default_args={**DEFAULT_ARGS, "retries": 0},
    tags=[*TAGS, "registry", "on-call"],
    doc_md=__doc__,
    params={
        "model_name": model_param("The model whose regression set changes."),
        "case_ids": Param(
            [],
            type="array",
            items={"type": "integer", "minimum": 1},
            minItems=1,
            title="Eval case ids",
            description="The ids from the gate's verdict ('failing case ids [...]') as a JSON list, e.g. [17, 23].",
        ),
        "action": Param(
            "demote",
            type="string",
            enum=["demote", "restore"],
            title="Action",
            description="demote: watched, reported but not gating. restore: must-pass again.",
        ),
        "reason": required_reason_param(
            "Why, e.g. 'reviewer slip: the input is a 7' (kept in eval_case_events)."
        ),
    },
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
        state = "must-pass" if params["action"] == "restore" else "watched (reported, not gating)"
        print(
            f"{model_name}: changed {result['changed'] or 'none'}, already {state}: {result['unchanged'] or 'none'}"
        )
        for case in cases:
            print(
                f"  case {case['id']}: now {'must-pass' if case['must_pass'] else 'watched'}; expected "
                f"{case['expected_label']!r}, the model said {case['wrong_label']!r}; from feedback "
                f"{case['feedback_id']} ({case['feedback_source']}, {case['feedback_by'] or 'anonymous'})"
            )
        return {"model_name": model_name, "action": params["action"], **result}

    change_must_pass()


eval_case_review()
