"""The promotion gate: candidate against champion on the same holdout and on every eval case.

`compare()` is pure (numbers in, verdict out); `score()` runs one estimator over the holdout and the eval
cases. A candidate passes only if all of these hold:

* primary metric: candidate >= champion - tolerance (holdout);
* eval cases: the candidate keeps at least `eval_case_pass_rate` of the must-pass cases the champion
  passes (a shortfall blocks only when significant, as below); cases neither passes are reported;
* slices: on every slice value with at least `min_slice_rows` holdout rows, candidate accuracy >=
  champion accuracy - slice_tolerance.

Holdouts are often small (75 rows: one row is 1.3 points), so a drop beyond a tolerance only blocks when
the paired predictions show it is real: a one-sided exact McNemar test on the rows where exactly one of
the two models is right must give p < `significance`. A drop beyond `max_regression` (when set) always
blocks.

Without a champion (the first model) only the eval cases apply. The verdict carries every number, so
training_runs.gate answers "why" without re-running anything.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from feedback_loop.core.config import GateConfig

if TYPE_CHECKING:
    import pandas as pd

    from feedback_loop.retrain.features import FeatureSpec

MUST_PASS_CHECK = "eval cases (must pass)"
WATCHED_CHECK = "eval cases (watched)"
EPSILON = 1e-12  # float noise must not turn "equal" into "regressed"


@dataclass(frozen=True)
class CaseResult:
    id: int
    expected: str
    predicted: str
    must_pass: bool

    @property
    def passed(self) -> bool:
        return self.expected == self.predicted


@dataclass
class Scores:
    """One model on the gate's data: holdout metrics (training.evaluate shape) and eval-case results."""

    version: int | None
    holdout: dict[str, Any]
    cases: list[CaseResult] = field(default_factory=list)
    # Per holdout row, in holdout order: was the prediction right, and the row's slice values. Both models
    # are scored on the same rows, so these pair up for the significance test.
    correct: list[bool] = field(default_factory=list)
    slice_values: dict[str, list[str]] = field(default_factory=dict)

    def case_pass_rate(self, must_pass_only: bool = True) -> float | None:
        cases = [c for c in self.cases if c.must_pass or not must_pass_only]
        if not cases:
            return None
        return sum(c.passed for c in cases) / len(cases)


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    candidate: float | None
    champion: float | None
    threshold: float | None
    detail: str


@dataclass
class Verdict:
    passed: bool
    reasons: list[str]
    checks: list[Check]
    candidate_version: int | None
    champion_version: int | None
    config: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "reasons": self.reasons,
            "checks": [asdict(c) for c in self.checks],
            "candidate_version": self.candidate_version,
            "champion_version": self.champion_version,
            "config": self.config,
        }

    def table(self) -> str:
        """The before/after table shown to a human approver (Markdown)."""
        champion = f"v{self.champion_version}" if self.champion_version else "none"
        candidate = f"v{self.candidate_version}" if self.candidate_version else "candidate"
        lines = [
            f"| check | champion ({champion}) | {candidate} | threshold | result |",
            "| --- | ---: | ---: | ---: | --- |",
        ]

        def fmt(value: float | None) -> str:
            return "-" if value is None else f"{value:.4f}"

        for check in self.checks:
            lines.append(
                f"| {check.name} | {fmt(check.champion)} | {fmt(check.candidate)} | {fmt(check.threshold)} | "
                f"{'pass' if check.passed else 'FAIL'} |"
            )
        return "\n".join(lines)


def mcnemar_p(champion_only: int, candidate_only: int) -> float:
    """One-sided exact McNemar p-value that the champion is really better: the chance of at least
    `champion_only` wins among the discordant pairs if both models were equally good."""
    from scipy.stats import binomtest

    n = champion_only + candidate_only
    if n == 0:
        return 1.0
    return float(binomtest(champion_only, n, 0.5, alternative="greater").pvalue)


def _paired_p(candidate: list[bool], champion: list[bool], mask: list[bool] | None = None) -> float | None:
    if not candidate or len(candidate) != len(champion):
        return None
    pairs = [
        (a, b) for i, (a, b) in enumerate(zip(candidate, champion, strict=True)) if mask is None or mask[i]
    ]
    champion_only = sum(1 for a, b in pairs if b and not a)
    candidate_only = sum(1 for a, b in pairs if a and not b)
    return mcnemar_p(champion_only, candidate_only)


def _regression_check(
    name: str, cand: float, champ: float, tolerance: float, p: float | None, config: GateConfig, rows: str
) -> Check:
    floor = champ - tolerance
    within = cand >= floor - EPSILON
    hard_floor = None if config.max_regression is None else champ - max(config.max_regression, tolerance)
    if within:
        passed, why = True, "within tolerance"
    elif hard_floor is not None and cand < hard_floor - EPSILON:
        passed, why = False, f"more than max_regression {config.max_regression} below"
    elif config.significance > 0 and p is not None:
        passed = p >= config.significance
        why = f"p={p:.3f} {'>=' if passed else '<'} significance {config.significance}"
        why = ("drop not significant: " if passed else "significant drop: ") + why
    else:
        passed, why = False, "below tolerance"
    return Check(
        name=name,
        passed=passed,
        candidate=cand,
        champion=champ,
        threshold=floor,
        detail=f"{cand:.4f} vs champion {champ:.4f}{rows} (tolerance {tolerance}; {why})",
    )


def compare(candidate: Scores, champion: Scores | None, config: GateConfig) -> Verdict:
    """The verdict for `candidate` against `champion` (None: no champion yet)."""
    checks: list[Check] = []
    metric = config.primary_metric
    if champion is not None:
        cand, champ = float(candidate.holdout[metric]), float(champion.holdout[metric])
        p = _paired_p(candidate.correct, champion.correct)
        checks.append(_regression_check(f"holdout {metric}", cand, champ, config.tolerance, p, config, ""))
        secondary = "macro_f1" if metric == "accuracy" else "accuracy"
        if secondary in candidate.holdout and secondary in champion.holdout:
            checks.append(
                Check(
                    name=f"holdout {secondary} (info)",
                    passed=True,
                    candidate=float(candidate.holdout[secondary]),
                    champion=float(champion.holdout[secondary]),
                    threshold=None,
                    detail="reported, not gated",
                )
            )
        checks.extend(_slice_checks(candidate, champion, config))
    must_pass = _must_pass_check(candidate, champion, config)
    if must_pass is not None:
        checks.append(must_pass)
    watched = [c for c in candidate.cases if not c.must_pass]
    if watched:
        # Demoted by a person (feedback-loop eval-cases demote): still scored, so a wrong demotion shows.
        missed = [c.id for c in watched if not c.passed]
        champion_watched = [c for c in champion.cases if not c.must_pass] if champion is not None else []
        checks.append(
            Check(
                name=WATCHED_CHECK,
                passed=True,
                candidate=(len(watched) - len(missed)) / len(watched),
                champion=(
                    sum(c.passed for c in champion_watched) / len(champion_watched)
                    if champion_watched
                    else None
                ),
                threshold=None,
                detail=f"{len(watched) - len(missed)}/{len(watched)} passed; reported, not gated"
                + (f"; missed case ids {missed[:20]}" if missed else ""),
            )
        )
    reasons = [
        c.detail if c.name.startswith("eval") else f"{c.name}: {c.detail}" for c in checks if not c.passed
    ]
    return Verdict(
        passed=not reasons,
        reasons=reasons,
        checks=checks,
        candidate_version=candidate.version,
        champion_version=champion.version if champion is not None else None,
        config=config.model_dump(),
    )


def _must_pass_check(candidate: Scores, champion: Scores | None, config: GateConfig) -> Check | None:
    """Do not break what was fixed: the candidate must keep the must-pass cases the champion passes.

    Like the holdout check, a shortfall below `eval_case_pass_rate` blocks only when the paired cases show
    it is real (one-sided exact McNemar test on re-broken vs newly fixed cases, p < significance), so one
    case on a small set never decides alone. Cases neither model passes are open failures: reported with
    how many the candidate fixes, never a block. Without a champion, the candidate's own pass rate counts.
    """
    must = [c for c in candidate.cases if c.must_pass]
    if not must:
        return None
    rate = sum(c.passed for c in must) / len(must)
    failing = [c.id for c in must if not c.passed]
    if champion is None:
        passed = rate >= config.eval_case_pass_rate - EPSILON
        detail = f"{len(must) - len(failing)}/{len(must)} passed" + (
            f"; failing case ids {failing[:20]}" if failing else ""
        )
        return Check(MUST_PASS_CHECK, passed, rate, None, config.eval_case_pass_rate, detail)
    champion_passes = {c.id for c in champion.cases if c.must_pass and c.passed}
    candidate_passes = {c.id for c in must if c.passed}
    rebroken = sorted(champion_passes - candidate_passes)
    fixed = sorted(candidate_passes - champion_passes)
    open_failures = sorted({c.id for c in must} - champion_passes - candidate_passes)
    kept = 1.0 - len(rebroken) / len(champion_passes) if champion_passes else 1.0
    if kept >= config.eval_case_pass_rate - EPSILON:
        passed, why = True, "keeps what the champion fixed"
    elif config.significance > 0:
        p = mcnemar_p(len(rebroken), len(fixed))
        passed = p >= config.significance
        why = f"{'not a significant' if passed else 'a significant'} loss: p={p:.3f} vs significance {config.significance}"
    else:
        passed, why = False, "re-breaks fixed cases"
    detail = (
        f"keeps {len(champion_passes) - len(rebroken)}/{len(champion_passes)} of the must-pass cases the "
        f"champion passes ({why})"
        + (f"; re-broken case ids {rebroken[:20]}" if rebroken else "")
        + f"; {len(open_failures)} open failure(s) neither passes, {len(fixed)} fixed by the candidate"
        + (f"; failing case ids {failing[:20]}" if failing else "")
    )
    champion_rate = len(champion_passes) / len(must)
    return Check(MUST_PASS_CHECK, passed, rate, champion_rate, config.eval_case_pass_rate, detail)


def _slice_checks(candidate: Scores, champion: Scores, config: GateConfig) -> list[Check]:
    checks = []
    cand_slices = candidate.holdout.get("slices", {})
    champ_slices = champion.holdout.get("slices", {})
    for column in sorted(set(cand_slices) & set(champ_slices)):
        values = candidate.slice_values.get(column)
        for value in sorted(set(cand_slices[column]) & set(champ_slices[column])):
            cand, champ = cand_slices[column][value], champ_slices[column][value]
            rows = int(cand["rows"])
            if rows < config.min_slice_rows:
                continue  # too few rows to tell a regression from noise
            mask = [v == value for v in values] if values else None
            p = _paired_p(candidate.correct, champion.correct, mask) if mask else None
            checks.append(
                _regression_check(
                    f"slice {column}={value} accuracy",
                    float(cand["accuracy"]),
                    float(champ["accuracy"]),
                    config.slice_tolerance,
                    p,
                    config,
                    f" on {rows} rows",
                )
            )
    return checks


def cases_frame(cases: list[dict[str, Any]], features: list[str]) -> pd.DataFrame:
    """Eval cases (rows with an `input` dict) as a feature frame in `features` order."""
    import pandas as pd

    return pd.DataFrame.from_records(
        [[(case["input"] or {}).get(c) for c in features] for case in cases], columns=features
    )


def score(
    estimator: Any,
    spec: FeatureSpec,
    holdout: pd.DataFrame,
    cases: list[dict[str, Any]],
    *,
    version: int | None,
    numeric: list[str] | None = None,
    holdout_predicted: list[str] | None = None,
) -> Scores:
    """Holdout metrics (as training.evaluate) and every eval case's result of one version.

    `holdout_predicted`: the version's recipe's predictions on the holdout, fitted without those rows
    (training.train); without them `estimator` itself is run over the holdout. Eval cases are always
    run through `estimator`, the served model."""
    import pandas as pd

    from feedback_loop.retrain import training

    if holdout_predicted is None:
        holdout_predicted = [str(p) for p in estimator.predict(holdout[spec.features])]
    if len(holdout_predicted) != len(holdout):
        raise ValueError(f"{len(holdout_predicted)} holdout predictions for {len(holdout)} holdout rows")
    metrics = training.metrics_of(holdout, holdout_predicted, spec)
    truth = holdout[spec.label].astype(str).to_numpy()
    correct = [bool(x) for x in pd.Series(holdout_predicted, dtype=str).to_numpy() == truth]
    slice_values = {c: [str(v) for v in holdout[c]] for c in spec.slices if c in holdout.columns}
    results: list[CaseResult] = []
    if cases:
        frame = cases_frame(cases, spec.features)
        for column in numeric if numeric is not None else spec.numeric:
            if column in frame.columns:
                frame[column] = pd.to_numeric(frame[column], errors="coerce")
        predicted = estimator.predict(frame).astype(str)
        results = [
            CaseResult(
                id=int(c["id"]), expected=str(c["expected_label"]), predicted=str(p), must_pass=c["must_pass"]
            )
            for c, p in zip(cases, predicted, strict=True)
        ]
    return Scores(version=version, holdout=metrics, cases=results, correct=correct, slice_values=slice_values)
