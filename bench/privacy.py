"""Masking cost grows linearly with the length of the text, also for input built to make it backtrack.

Times `core.privacy.mask` on adversarial comments of 4,000 and 40,000 characters (each form ending in a
digit, the shape that made the old masker quadratic: 28 ms for 4,000 characters), on a 1,000-comment
batch of the 4,000-character form, and on an ordinary comment with personal data. The figure to watch is
`ratio_40k_to_4k`: about 10 for linear cost, about 100 for quadratic.

Repeats: BENCH_PRIVACY_REPEATS (default 5, the median is reported).
"""

from __future__ import annotations

import os
import statistics
import time

from feedback_loop.core import privacy

SHORT, LONG = 4_000, 40_000
# Each form is repeated up to the length; the ones ending in a digit are what the old regexes choked on.
FORMS = {
    "digits only": "1",  # the old masker: 29 ms at 4k, 3.4 s at 40k
    "digits and letters": "1a",
    "digit groups and dashes": "12-",
    "digits and spaces": "1 ",
    "local part, then @": "a",  # ends in "@7"
    "dotted numbers": "1.",
    "hex and colons": "a:",
}
ORDINARY = "wrong again, mail jane.doe@example.org or call +44 20 7946 0958; paid with 4111 1111 1111 1111"


def _adversarial(unit: str, length: int) -> str:
    end = "@7" if unit == "a" else "7"
    return (unit * (length // len(unit) + 1))[: length - len(end)] + end


def _seconds(text: str, repeats: int, times: int = 1) -> float:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(times):
            privacy.mask(text)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def run() -> list[dict]:
    repeats = int(os.environ.get("BENCH_PRIVACY_REPEATS", "5"))
    rows = []
    worst_ratio = 0.0
    for name, unit in FORMS.items():
        short = _seconds(_adversarial(unit, SHORT), repeats)
        long = _seconds(_adversarial(unit, LONG), repeats)
        worst_ratio = max(worst_ratio, long / short)
        rows.append({"metric": f"{name}: 4k chars", "value": short * 1000, "unit": "ms"})
        rows.append({"metric": f"{name}: 40k chars", "value": long * 1000, "unit": "ms"})
    rows.append({"metric": "ratio_40k_to_4k (worst form)", "value": worst_ratio, "unit": "x (10 = linear)"})
    batch = _seconds(_adversarial("1", SHORT), max(1, repeats // 2), times=1000)
    rows.append({"metric": "batch of 1,000 adversarial 4k comments", "value": batch, "unit": "s"})
    ordinary = _seconds(ORDINARY, repeats, times=10_000) / 10_000
    rows.append({"metric": "ordinary comment with PII", "value": ordinary * 1e6, "unit": "us"})
    return rows


if __name__ == "__main__":
    for row in run():
        print(f"{row['metric']:<45} {row['value']:>10.3f} {row['unit']}")
