"""The gate as a pure function: numbers in, verdict (with reasons and every number) out."""

from __future__ import annotations

import pytest

from feedback_loop.core.config import GateConfig
from feedback_loop.retrain.gate import MUST_PASS_CHECK, CaseResult, Scores, compare, mcnemar_p

pytestmark = pytest.mark.unit


def holdout(accuracy: float, slices: dict[str, tuple[int, float]] | None = None, macro_f1: float = 0.5):
    return {
        "rows": 100,
        "accuracy": accuracy,
        "macro_f1": macro_f1,
        "slices": {"region": {k: {"rows": n, "accuracy": a} for k, (n, a) in (slices or {}).items()}},
    }


def cases(*outcomes: bool, must_pass: bool = True) -> list[CaseResult]:
    return [
        CaseResult(id=i, expected="a", predicted="a" if ok else "b", must_pass=must_pass)
        for i, ok in enumerate(outcomes, start=1)
    ]


CONFIG = GateConfig(tolerance=0.01, slice_tolerance=0.05, min_slice_rows=20, eval_case_pass_rate=1.0)


def test_equal_or_better_candidate_passes_with_every_number_recorded():
    verdict = compare(Scores(2, holdout(0.90), cases(True)), Scores(1, holdout(0.90), cases(False)), CONFIG)
    assert verdict.passed and verdict.reasons == []
    data = verdict.to_dict()
    primary = data["checks"][0]
    assert (primary["name"], primary["candidate"], primary["champion"]) == ("holdout accuracy", 0.90, 0.90)
    assert primary["threshold"] == pytest.approx(0.89)
    eval_check = next(c for c in data["checks"] if c["name"].startswith("eval cases"))
    assert (eval_check["candidate"], eval_check["champion"]) == (1.0, 0.0)
    assert data["config"]["tolerance"] == 0.01
    assert "| holdout accuracy | 0.9000 | 0.9000 | 0.8900 | pass |" in verdict.table()


def test_regression_beyond_tolerance_on_the_primary_metric_is_blocked():
    verdict = compare(Scores(None, holdout(0.85)), Scores(1, holdout(0.90)), CONFIG)
    assert not verdict.passed
    assert verdict.reasons == [
        "holdout accuracy: 0.8500 vs champion 0.9000 (tolerance 0.01; below tolerance)"
    ], "without paired predictions the tolerance alone decides"
    assert "FAIL" in verdict.table()


def test_regression_within_tolerance_passes():
    assert compare(Scores(None, holdout(0.895)), Scores(1, holdout(0.90)), CONFIG).passed


def test_primary_metric_is_configurable():
    config = GateConfig(primary_metric="macro_f1", tolerance=0.0)
    verdict = compare(
        Scores(None, holdout(0.99, macro_f1=0.4)), Scores(1, holdout(0.5, macro_f1=0.5)), config
    )
    assert not verdict.passed and verdict.reasons[0].startswith("holdout macro_f1")


def test_a_case_neither_model_passes_is_an_open_failure_reported_not_a_block():
    verdict = compare(
        Scores(None, holdout(0.95), cases(True, False, True)),
        Scores(1, holdout(0.90), cases(False, False, False)),
        CONFIG,
    )
    assert verdict.passed
    check = next(c for c in verdict.checks if c.name == MUST_PASS_CHECK)
    assert "1 open failure(s) neither passes, 2 fixed by the candidate" in check.detail
    assert "failing case ids [2]" in check.detail


def test_re_breaking_many_fixed_must_pass_cases_blocks_and_names_them():
    champion = Scores(1, holdout(0.90), cases(*[True] * 12))
    candidate = Scores(None, holdout(0.91), cases(*[False] * 8, *[True] * 4))
    verdict = compare(candidate, champion, CONFIG)
    assert not verdict.passed
    (reason,) = verdict.reasons
    assert reason.startswith("keeps 4/12 of the must-pass cases the champion passes (a significant loss")
    assert "re-broken case ids [1, 2, 3, 4, 5, 6, 7, 8]" in reason


def test_one_re_broken_case_on_a_small_set_never_decides_alone():
    champion = Scores(1, holdout(0.90), cases(True, True, False))
    candidate = Scores(None, holdout(0.90), cases(True, False, False))
    verdict = compare(candidate, champion, CONFIG)
    assert verdict.passed
    check = next(c for c in verdict.checks if c.name == MUST_PASS_CHECK)
    assert "not a significant loss: p=0.500" in check.detail and "re-broken case ids [2]" in check.detail


def test_without_significance_any_re_broken_case_blocks():
    config = GateConfig(eval_case_pass_rate=1.0, significance=0)
    champion = Scores(1, holdout(0.90), cases(True, True, False))
    assert not compare(Scores(None, holdout(0.90), cases(True, False, False)), champion, config).passed


def test_eval_case_pass_rate_below_one_tolerates_some_re_broken_cases():
    config = GateConfig(eval_case_pass_rate=0.6, significance=0)
    champion = Scores(1, holdout(0.9), cases(True, True, True))
    assert compare(Scores(None, holdout(0.9), cases(True, False, True)), champion, config).passed


def test_cases_that_are_not_must_pass_do_not_gate():
    verdict = compare(
        Scores(None, holdout(0.9), cases(False, must_pass=False)), Scores(1, holdout(0.9)), CONFIG
    )
    assert verdict.passed


def test_slice_regression_beyond_tolerance_is_blocked_only_with_enough_rows():
    champion = Scores(1, holdout(0.90, {"north": (40, 0.95), "south": (10, 0.95)}))
    candidate = Scores(None, holdout(0.91, {"north": (40, 0.85), "south": (10, 0.50)}))
    verdict = compare(candidate, champion, CONFIG)
    assert not verdict.passed
    assert len(verdict.reasons) == 1 and verdict.reasons[0].startswith("slice region=north accuracy")
    assert not any("south" in c.name for c in verdict.checks), "10 rows < min_slice_rows: not judged"


def test_first_model_without_champion_is_judged_on_eval_cases_only():
    assert compare(Scores(None, holdout(0.3)), None, CONFIG).passed
    verdict = compare(Scores(None, holdout(0.9), cases(False)), None, CONFIG)
    assert not verdict.passed and verdict.champion_version is None


def paired(correct: list[bool], version: int | None = None) -> Scores:
    accuracy = sum(correct) / len(correct)
    return Scores(version, holdout(accuracy) | {"rows": len(correct)}, correct=correct)


def test_mcnemar_p_is_the_exact_one_sided_binomial_tail():
    assert mcnemar_p(0, 0) == 1.0
    assert mcnemar_p(3, 0) == pytest.approx(1 / 8)
    assert mcnemar_p(6, 1) == pytest.approx(8 / 128)
    assert mcnemar_p(10, 0) == pytest.approx(1 / 1024)


def test_a_small_drop_on_a_small_holdout_is_noise_and_passes():
    # 13 rows, the candidate misses one row the champion got right: 7.7 points below, p = 0.5.
    champion = paired([True] * 12 + [False], 1)
    candidate = paired([True] * 11 + [False, False])
    config = GateConfig(tolerance=0.01)
    verdict = compare(candidate, champion, config)
    assert verdict.passed
    assert "drop not significant: p=0.500" in verdict.checks[0].detail


def test_a_consistent_drop_is_significant_and_blocks():
    # 60 rows: the candidate misses 8 rows the champion got right and wins none back.
    champion = paired([True] * 60, 1)
    candidate = paired([True] * 52 + [False] * 8)
    config = GateConfig(tolerance=0.01)
    verdict = compare(candidate, champion, config)
    assert not verdict.passed
    assert "significant drop: p=0.004 < significance 0.1" in verdict.reasons[0]


def test_a_drop_beyond_max_regression_blocks_even_when_not_significant():
    champion = paired([True] * 12 + [False], 1)
    candidate = paired([True] * 11 + [False, False])
    verdict = compare(candidate, champion, GateConfig(tolerance=0.01, max_regression=0.05))
    assert not verdict.passed
    assert "more than max_regression 0.05 below" in verdict.reasons[0]


def test_significance_zero_means_tolerance_alone():
    champion = paired([True] * 12 + [False], 1)
    candidate = paired([True] * 11 + [False, False])
    config = GateConfig(tolerance=0.01, significance=0)
    assert not compare(candidate, champion, config).passed


def test_a_watched_case_is_reported_but_never_blocks():
    # Case 1 must pass and does; case 2 was demoted (its label was wrong) and the candidate "misses" it.
    results = [
        CaseResult(id=1, expected="a", predicted="a", must_pass=True),
        CaseResult(id=2, expected="a", predicted="b", must_pass=False),
    ]
    verdict = compare(Scores(None, holdout(0.9), results), None, CONFIG)
    assert verdict.passed
    watched = next(c for c in verdict.checks if c.name == "eval cases (watched)")
    assert watched.passed and watched.candidate == 0.0
    assert watched.detail == "0/1 passed; reported, not gated; missed case ids [2]"
    must = next(c for c in verdict.checks if c.name == "eval cases (must pass)")
    assert must.detail == "1/1 passed"


def test_without_watched_cases_the_verdict_has_no_watched_line():
    verdict = compare(Scores(None, holdout(0.9), cases(True, True)), None, CONFIG)
    assert [c.name for c in verdict.checks] == ["eval cases (must pass)"]
