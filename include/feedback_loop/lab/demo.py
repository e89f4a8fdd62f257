"""`make demo`: the whole loop on the bundled digits data, driven through a real Airflow.

1. start PostgreSQL (see docs/architecture.md) and Airflow (api-server, scheduler, dag-processor, triggerer) on
   127.0.0.1, each in its own process group;
2. register digits v1, trained on a small slice of the data;
3. enqueue inference requests and trigger `feedback_inference`; simulated reviewers answer the review tasks
   through Airflow's REST API (PATCH .../hitlDetails) as the `reviewer` user;
4. simulated users post feedback (thumbs, ratings, corrections, comments with personal data) to the
   feedback API plugin as the `app` user;
5. trigger `feedback_aggregation` for the current interval;
6. trigger `model_retraining`: v2 is trained, gated, registered and promoted;
7. trigger `model_rollback` (back to v1), then undo it by promoting v2 again (audited);
8. score a second batch with v2 and collect feedback again, so the negative rate can be compared;
9. print a summary, write plots to demo-output/, print the UI URL and logins, and stop every process.

The demo works in its own database (`feedback_loop_demo`, recreated each run) unless FEEDBACK_LOOP_DB_URL
names one, so it never mixes with other data on the same server.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from feedback_loop.core import db, paths, queries
from feedback_loop.core.console import Heartbeat, progress
from feedback_loop.lab import plots, simulate
from feedback_loop.lab.airflow_rest import AirflowClient
from feedback_loop.registry import versions as registry
from feedback_loop.retrain import datasets

MODEL = "digits"
# Scripted reviewers wait this long after a review task parks before answering (see pending_reviews).
# Scripted reviewers answer as soon as a task parks: answers are recorded on arrival, whatever Airflow does
# with the task afterwards (docs/architecture.md, "An accepted answer is recorded exactly once").
REVIEWER_PAUSE_SECONDS = 0
DEMO_DATABASE = "feedback_loop_demo"
DAGS = ["feedback_inference", "feedback_aggregation", "model_retraining", "model_rollback"]
PII_COMMENTS = [
    "It read my 7 as a 1, email me at jane.doe@example.com",
    "Wrong digit again. Call +1 415 555 0100 if you need the scan",
    "Charged twice? card 4111 1111 1111 1111 - also the digit is wrong",
]


@dataclass
class DemoSettings:
    requests_per_round: int = 200
    rounds: int = 2  # the second round shows the new champion's feedback; the e2e test runs one
    aggregation_every_minutes: int = 1  # the demo waits for a scheduled rollup after each round
    review_budget: int = 20
    reviewer_noise: float = 0.05
    feedback_share: float = 0.6
    holdout_rows: int = 400
    seed: int = 7
    keep_running: bool = False
    output_dir: Path = field(default_factory=lambda: Path("demo-output"))


@dataclass
class DemoResult:
    versions: list[dict[str, Any]]
    reviews_answered: int
    feedback_stored: int
    accuracy_before: float
    accuracy_after: float
    rollback: dict[str, Any]
    negative_rate: dict[str, float]
    rollups: int
    plots: list[str]
    ui_url: str
    gate: dict[str, Any]
    training_runs: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__ | {"plots": self.plots}


class Step:
    """Numbered progress lines on stderr, with the time each step took."""

    def __init__(self, total: int) -> None:
        self.total, self.index, self.started = total, 0, time.monotonic()

    def __call__(self, message: str) -> None:
        self.index += 1
        progress(f"[{self.index}/{self.total}] {message}  (+{time.monotonic() - self.started:.0f}s)")


def demo_config(every_minutes: int) -> Path:
    """The bundled config with a one-minute aggregation interval, so the scheduler rolls up the demo's
    feedback within the demo's few minutes (the shipped default is hourly)."""
    from feedback_loop.core import config

    source = config.default_path()
    text = source.read_text()
    marker = 'aggregation: "@hourly"'
    if marker not in text:
        raise RuntimeError(f"{source}: expected {marker!r} to adapt it for the demo")
    target = paths.state_dir() / "demo" / "feedback_loop.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text.replace(marker, f'aggregation: "*/{every_minutes} * * * *"'))
    config.parse(target.read_text(), str(target))  # fail here, not inside Airflow, if it broke
    return target


def wait_for_rollup(client: AirflowClient, covering: datetime, timeout: float = 420) -> dict[str, Any]:
    """Wait for a successful scheduled feedback_aggregation run whose interval ends after `covering`."""
    deadline = time.monotonic() + timeout
    heartbeat = Heartbeat("the scheduler's next feedback_aggregation run")
    while time.monotonic() < deadline:
        heartbeat()
        runs = client.request(
            "GET",
            "/api/v2/dags/feedback_aggregation/dagRuns",
            params={"order_by": "-run_after", "limit": 5},
        )["dag_runs"]
        for run in runs:
            end = datetime.fromisoformat(run["data_interval_end"].replace("Z", "+00:00"))
            if end > covering and run["state"] == "success":
                return run
            if end > covering and run["state"] == "failed":
                raise RuntimeError(f"feedback_aggregation run {run['dag_run_id']} failed")
        time.sleep(5)
    raise RuntimeError(f"no feedback_aggregation run covered {covering:%H:%M:%S} within {timeout:.0f}s")


def settle_retraining(client: AirflowClient, timeout: float = 240) -> None:
    """Wait for model_retraining runs still in flight (an aggregation alert may have triggered one through
    the retraining_needed asset), so the summary shows their outcome instead of 'running'."""
    deadline = time.monotonic() + timeout
    heartbeat = Heartbeat("a retraining the aggregation's alerts triggered")
    while time.monotonic() < deadline:
        heartbeat()
        runs = client.request(
            "GET",
            "/api/v2/dags/model_retraining/dagRuns",
            params={"state": ["queued", "running"], "limit": 20},
        )["dag_runs"]
        if not runs:
            return
        time.sleep(5)
    progress("      a retraining run is still going; its training_runs row may read 'running'")


def prepare_database() -> str:
    """The demo's own database, recreated; or FEEDBACK_LOOP_DB_URL as given."""
    if os.environ.get(db.ENV_URL, "").strip() not in ("", db.EMBEDDED):
        return db.resolve_url()
    from feedback_loop.lab import stack

    server = db.resolve_url()
    db.drop_database(server, DEMO_DATABASE)
    if not stack.is_running():
        # Airflow's state from an earlier demo (queued asset-triggered runs, old review tasks) would act
        # on the new demo database; start Airflow from a clean metadata database as well.
        db.drop_database(server, stack.metadata_database_name())
    url = db.ensure_database(server, DEMO_DATABASE)
    os.environ[db.ENV_URL] = url
    db.reset_resolution()
    return url


def split_digits(settings: DemoSettings):
    """(holdout, the rest) of the digits data; v1 trains on the configured slice of the rest."""
    from sklearn.model_selection import train_test_split

    frame = datasets.digits()
    rest, holdout = train_test_split(
        frame, test_size=settings.holdout_rows, random_state=settings.seed, stratify=frame["label"]
    )
    return holdout.reset_index(drop=True), rest.reset_index(drop=True)


def accuracy_of(conn, version: int, holdout) -> float:
    estimator, entry = registry.load(conn, MODEL, version)
    predicted = estimator.predict(holdout[entry.feature_columns]).astype(str)
    return float((predicted == holdout["label"].to_numpy()).mean())


def enqueue(conn, rows) -> simulate.PendingTruth:
    """Enqueue digits rows as inference requests; their labels stay with the scripted reviewers."""
    features = [c for c in rows.columns if c.startswith("pixel_")]
    return simulate.enqueue_with_truth(conn, MODEL, rows, features, "writer_group", "label")


def answer_reviews(
    client: AirflowClient,
    conn,
    run_id: str,
    truth: dict[str, str],
    settings: DemoSettings,
    rng: random.Random,
    answered: set[str],
) -> int:
    """Answer every pending review task of the run like a careful but fallible human."""
    count = 0
    for detail in client.pending_reviews(
        "feedback_inference", run_id, settled_seconds=REVIEWER_PAUSE_SECONDS
    ):
        ti = detail["task_instance"]
        key = f"{ti['dag_run_id']}/{ti['task_id']}/{ti.get('map_index', -1)}"
        row = conn.execute(
            queries.sql("demo/trace_of_review_task"),
            {"run_id": ti["dag_run_id"], "map_index": ti.get("map_index", -1)},
        ).fetchone()
        conn.commit()
        if row is None:
            continue
        label = truth[str(row["trace_id"])]
        if rng.random() < settings.reviewer_noise:
            label = rng.choice([str(d) for d in range(10) if str(d) != label])
        options = [o for o in detail["options"] if o not in ("None of these", "Skip")]
        if label in options:
            chosen, params = [label], {}
        else:
            chosen, params = (
                [next(o for o in detail["options"] if o.lower().startswith("none"))],
                {
                    "corrected_label": label,
                    "comment": "not among the options",
                },
            )
        client.answer_review(detail, chosen, params)
        answered.add(key)
        count += 1
    return count


def run_inference_round(
    operator, reviewer, conn, truth: dict[str, str], pending, settings, rng, round_no: int
) -> tuple[str, int]:
    """`operator` (admin) triggers the round; `reviewer` answers its review tasks: the reviewer role may
    not trigger runs (docs/operations.md, "Roles")."""
    run_id = operator.trigger(
        "feedback_inference",
        {
            "model_name": MODEL,
            "batch_size": settings.requests_per_round,
            "review_budget": settings.review_budget,
        },
    )
    answered: set[str] = set()
    resolved = False

    def on_wait() -> None:
        nonlocal resolved
        if not resolved:
            scored = simulate.resolve_truth(conn, pending, require_all=False)
            conn.commit()
            if scored:
                truth.update(scored)
                resolved = True
        if resolved:
            answer_reviews(reviewer, conn, run_id, truth, settings, rng, answered)

    state = operator.wait_for_run("feedback_inference", run_id, timeout=600, on_wait=on_wait)
    if state != "success":
        raise RuntimeError(f"feedback_inference round {round_no} ended {state}; see the Airflow UI")
    truth.update(simulate.resolve_truth(conn, pending))
    conn.commit()
    return run_id, len(answered)


def post_user_feedback(api_url: str, token: str, conn, trace_truth: dict[str, str], settings, rng) -> int:
    """Simulated end users: some confirm, some complain, some correct; retries carry idempotency keys."""
    traces = list(trace_truth)
    rng.shuffle(traces)
    chosen = traces[: int(len(traces) * settings.feedback_share)]
    if not chosen:
        return 0
    predicted = {
        str(r["trace_id"]): r["output_label"]
        for r in conn.execute(queries.sql("demo/predicted_labels"), {"trace_ids": chosen}).fetchall()
    }
    conn.commit()
    items = []
    for trace in chosen:
        right = predicted[trace] == trace_truth[trace]
        event = {
            "trace_id": trace,
            "user_id": f"user-{rng.randint(1, 40)}",
            "client_event_id": f"demo-{trace}",
        }
        roll = rng.random()
        if right:
            event |= {"kind": "thumbs_up"} if roll < 0.6 else {"kind": "rating", "rating": rng.choice([4, 5])}
        elif roll < 0.5:
            event |= {"kind": "correction", "label": trace_truth[trace]}
        elif roll < 0.8:
            event |= {"kind": "thumbs_down", "comment": rng.choice(PII_COMMENTS)}
        else:
            event |= {"kind": "rating", "rating": rng.choice([1, 2]), "comment": "Wrong digit, please fix"}
        items.append(event)
    response = requests.post(
        f"{api_url}/feedback-api/feedback/batch",
        json={"items": items},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    if response.status_code not in (200, 201):
        raise RuntimeError(
            f"feedback API refused the batch: HTTP {response.status_code}: {response.text[:300]}"
        )
    # A client retry of the same batch stores nothing new (idempotency keys).
    retry = requests.post(
        f"{api_url}/feedback-api/feedback/batch",
        json={"items": items},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    if retry.status_code not in (200, 201) or retry.json()["created"] != 0:
        raise RuntimeError(
            f"a retried batch was not idempotent: HTTP {retry.status_code}: {retry.text[:300]}"
        )
    return int(response.json()["created"])


def negative_rates(conn) -> dict[str, list[tuple[datetime, float]]]:
    """Negative feedback rate per rollup interval and model version, from feedback_rollups."""
    rows = conn.execute(queries.sql("demo/negative_rates"), {"model_name": MODEL}).fetchall()
    series: dict[str, list] = {}
    for row in rows:
        series.setdefault(f"v{row['model_version']}", []).append(
            (row["interval_start"], float(row["negative_rate"]))
        )
    return series


class DemoRun:
    """The demo's steps, in order; each one a method, sharing the database, the Airflow clients and what
    the scripted people know (the true label of every scored trace)."""

    def __init__(self, settings: DemoSettings) -> None:
        self.settings = settings
        self.step = Step(12 if settings.rounds >= 2 else 10)
        self.rng = random.Random(settings.seed)
        self.truth: dict[str, str] = {}
        self.answered = 0
        self.previous_config = os.environ.get("FEEDBACK_LOOP_CONFIG")

    def prepare(self) -> None:
        from feedback_loop.core import config, migrations

        self.step("preparing the demo database and configuration")
        self.url = prepare_database()
        os.environ["FEEDBACK_LOOP_CONFIG"] = str(demo_config(self.settings.aggregation_every_minutes))
        migrations.upgrade(self.url)
        self.holdout, self.rest = split_digits(self.settings)
        self.model = config.load().model(MODEL)

    def start_airflow(self) -> None:
        from feedback_loop.lab import stack

        self.step("starting Airflow (api-server, scheduler, dag-processor, triggerer) on 127.0.0.1")
        self.state = stack.up()

    def train_v1(self, conn) -> None:
        from feedback_loop.retrain import baseline

        self.step(f"training {MODEL} v1 on {self.model.training_data.limit} rows of digits and promoting it")
        self.v1 = baseline.train_and_register(
            conn, self.model, created_by="demo", promote=True, reason="demo: first version on a small slice"
        )
        pixels = [f"pixel_{i}" for i in range(64)]
        held_out = set(map(tuple, self.holdout[pixels].to_numpy().tolist()))
        unseen = self.rest[[tuple(r) not in held_out for r in self.rest[pixels].to_numpy().tolist()]]
        self.stream = unseen.sample(frac=1.0, random_state=self.settings.seed).reset_index(drop=True)
        self.accuracy_before = accuracy_of(conn, self.v1.version, self.holdout)
        progress(f"      v1 holdout accuracy {self.accuracy_before:.3f}")

    def connect_people(self) -> None:
        passwords = self.state.passwords
        self.admin = AirflowClient(self.state.api_url, "admin", passwords["admin"])
        self.reviewer = AirflowClient(self.state.api_url, "reviewer", passwords["reviewer"])
        self.app = AirflowClient(self.state.api_url, "app", passwords["app"])
        self.admin.wait_for_dags(DAGS, timeout=180)
        for dag_id in DAGS:
            self.admin.unpause(dag_id)

    def feedback_round(self, conn, round_no: int) -> None:
        """Requests scored by the champion, reviews answered in Airflow, users' feedback, the rollup."""
        n = self.settings.requests_per_round
        self.step(f"round {round_no}: {n} requests through feedback_inference; reviewers answer in Airflow")
        pending = enqueue(conn, self.stream.iloc[(round_no - 1) * n : round_no * n])
        before = set(self.truth)
        _, answered = run_inference_round(
            self.admin, self.reviewer, conn, self.truth, pending, self.settings, self.rng, round_no
        )
        self.answered += answered
        scored = {t: self.truth[t] for t in self.truth if t not in before}
        progress(f"      {answered} review task(s) answered through PATCH .../hitlDetails")
        fed = post_user_feedback(self.state.api_url, self.app.token(), conn, scored, self.settings, self.rng)
        progress(f"      {fed} feedback event(s) stored through the feedback API (a retry stored 0)")
        self.step(
            f"waiting for the scheduler's feedback_aggregation run (every "
            f"{self.settings.aggregation_every_minutes} minutes in the demo)"
        )
        aggregated = wait_for_rollup(self.admin, datetime.now(UTC))
        progress(f"      rolled up the interval ending {aggregated['data_interval_end']}")

    def retrain(self, conn) -> None:
        self.step("retraining (model_retraining): pull labels, train, gate, register, promote")
        run_id = self.admin.trigger(
            "model_retraining", {"model_name": MODEL, "reason": "demo: feedback arrived"}
        )
        state = self.admin.wait_for_run("model_retraining", run_id, timeout=600)
        runs = conn.execute(queries.sql("demo/training_runs"), {"model_name": MODEL}).fetchall()
        self.last_run = runs[-1] if runs else None
        conn.commit()
        progress(
            f"      retraining run {state}: {self.last_run['status'] if self.last_run else 'no run'}: "
            f"{(self.last_run or {}).get('decision', '')}"
        )
        self.champion = registry.current_version(conn, MODEL)
        conn.commit()

    def show_rollback(self, conn) -> None:
        self.step("rolling back (model_rollback) and undoing it")
        self.rollback: dict[str, Any] = {"shown": False}
        if self.champion is None or self.champion == self.v1.version:
            progress("      skipped: the candidate did not pass the gate, v1 is still champion")
            return
        run_id = self.admin.trigger(
            "model_rollback", {"model_name": MODEL, "reason": "demo: show a rollback"}
        )
        state = self.admin.wait_for_run("model_rollback", run_id, timeout=300)
        after_rollback = registry.current_version(conn, MODEL)
        conn.commit()
        registry.promote(
            conn,
            MODEL,
            self.champion,
            actor="demo",
            reason="demo: undo the rollback, the retrained model is better",
        )
        conn.commit()
        self.rollback = {
            "shown": True,
            "run_state": state,
            "rolled_back_to": after_rollback,
            "restored": registry.current_version(conn, MODEL),
        }
        progress(
            f"      champion v{self.champion} -> v{after_rollback} (rollback) -> v{self.rollback['restored']} (undo)"
        )

    def summarise(self, conn) -> DemoResult:
        self.step("summarising (after any retraining the alerts triggered has finished)")
        settle_retraining(self.admin)
        final = registry.current_version(conn, MODEL)
        versions = [
            {
                **version.summary(),
                "champion": version.version == final,
                "holdout_accuracy": accuracy_of(conn, version.version, self.holdout)
                if version.status != "rejected"
                else None,
            }
            for version in registry.list_versions(conn, MODEL)
        ]
        counts = conn.execute(queries.sql("demo/row_counts")).fetchone()
        training_runs = conn.execute(queries.sql("demo/training_runs"), {"model_name": MODEL}).fetchall()
        series = negative_rates(conn)
        conn.commit()
        result = DemoResult(
            versions=[
                {k: v[k] for k in ("version", "status", "champion", "holdout_accuracy")} for v in versions
            ],
            reviews_answered=self.answered,
            feedback_stored=int(counts["feedback"]),
            accuracy_before=self.accuracy_before,
            accuracy_after=accuracy_of(conn, final, self.holdout),
            rollback=self.rollback,
            negative_rate={k: sum(r for _, r in v) / len(v) for k, v in series.items() if v},
            rollups=int(counts["rollups"]),
            plots=self.write_plots(versions, series),
            ui_url=self.state.api_url,
            gate=(self.last_run or {}).get("gate") or {},
            training_runs=[{k: v for k, v in r.items() if k != "gate"} for r in training_runs],
        )
        (self.settings.output_dir / "summary.json").write_text(
            json.dumps(result.to_dict(), indent=2, default=str)
        )
        return result

    def write_plots(self, versions: list[dict[str, Any]], series: dict[str, list]) -> list[str]:
        out = self.settings.output_dir
        self.step(f"writing plots to {out}/")
        out.mkdir(parents=True, exist_ok=True)
        bars = [{**v, "accuracy": v["holdout_accuracy"] or 0.0} for v in versions]
        return [
            str(
                plots.accuracy_per_version(
                    bars,
                    out / "accuracy_per_version.png",
                    f"{MODEL}: accuracy on {len(self.holdout)} held-out digits",
                )
            ),
            str(
                plots.rate_over_time(
                    series,
                    out / "negative_rate_over_time.png",
                    f"{MODEL}: negative feedback rate per rollup interval, by version",
                )
            ),
        ]

    def finish(self) -> None:
        from feedback_loop.lab import stack

        if self.previous_config is None:
            os.environ.pop("FEEDBACK_LOOP_CONFIG", None)
        else:
            os.environ["FEEDBACK_LOOP_CONFIG"] = self.previous_config
        if self.settings.keep_running:
            progress("Airflow keeps running (--keep-running); stop it with: make down")
        else:
            self.step("stopping every process the demo started")
            stack.down(quiet=True)


def run(settings: DemoSettings) -> DemoResult:
    demo = DemoRun(settings)
    try:
        demo.prepare()
        demo.start_airflow()
        with db.connect(demo.url) as conn:
            demo.train_v1(conn)
            demo.connect_people()
            demo.feedback_round(conn, 1)
            demo.retrain(conn)
            demo.show_rollback(conn)
            for round_no in range(2, settings.rounds + 1):
                demo.feedback_round(conn, round_no)
            return demo.summarise(conn)
    finally:
        demo.finish()


def print_summary(result: DemoResult, logins: dict[str, str]) -> None:
    print()
    print("airflow-feedback-loop demo")
    print("==========================")
    for version in result.versions:
        accuracy = "-" if version["holdout_accuracy"] is None else f"{version['holdout_accuracy']:.3f}"
        marker = " (champion)" if version["champion"] else ""
        print(f"  {MODEL} v{version['version']}: {version['status']}, holdout accuracy {accuracy}{marker}")
    print(f"  accuracy before -> after: {result.accuracy_before:.3f} -> {result.accuracy_after:.3f}")
    print(f"  reviews answered in Airflow: {result.reviews_answered}")
    print(f"  feedback rows stored: {result.feedback_stored} (reviews + API)")
    for version, rate in sorted(result.negative_rate.items()):
        print(f"  negative user feedback on {version}: {rate:.0%}")
    print(f"  rollup rows: {result.rollups}")
    for run in result.training_runs:
        version = f" -> v{run['candidate_version']}" if run["candidate_version"] else ""
        print(
            f"  training run #{run['id']} ({run['triggered_by']}, {run['reason'][:60]}): {run['status']}{version}"
        )
    if result.rollback.get("shown"):
        print(
            f"  rollback: champion moved to v{result.rollback['rolled_back_to']} and back to "
            f"v{result.rollback['restored']} (see: feedback-loop model history --model {MODEL})"
        )
    print(f"  plots: {', '.join(result.plots)}")
    from feedback_loop.lab import stack

    print(f"  Airflow UI: {result.ui_url}  (up only with `make up` or --keep-running)")
    for line in stack.login_lines(logins, "    "):
        print(line)
    print("  (passwords are in .local/airflow/passwords.json)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep-running", action="store_true", help="leave Airflow running afterwards")
    parser.add_argument("--requests", type=int, default=200, help="inference requests per round")
    parser.add_argument("--output", type=Path, default=Path("demo-output"), help="where plots are written")
    args = parser.parse_args(argv)
    if args.requests < 20:
        parser.error("--requests must be at least 20")
    settings = DemoSettings(
        requests_per_round=args.requests, keep_running=args.keep_running, output_dir=args.output
    )
    os.environ.setdefault("FEEDBACK_LOOP_STATE_DIR", str(paths.state_dir()))
    try:
        result = run(settings)
    except Exception as exc:  # noqa: BLE001 - one readable line, details in the Airflow logs
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    from feedback_loop.lab import stack

    print_summary(result, stack.read_passwords(stack.airflow_home()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
