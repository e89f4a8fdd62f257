"""The models this deployment serves, read from one YAML file and validated with pydantic.

Path: FEEDBACK_LOOP_CONFIG, else `config/feedback_loop.yaml` in the checkout (the commented demo example).
A wrong file fails as a whole with the file, the key and the reason; nothing is half-applied.
"""

from __future__ import annotations

import importlib
import inspect
import re
import stat
import sys
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from feedback_loop.core import field_paths, paths, schedules
from feedback_loop.core.errors import ConfigError, NotFoundError

ENV_CONFIG = paths.ENV_CONFIG
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
DEFAULT_ESTIMATOR = "feedback_loop.retrain.training:default_pipeline"
# Modules that moved when the package was split into stages; configs written before keep working.
MOVED_MODULES = {"feedback_loop.training": "feedback_loop.retrain.training"}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# A configured query is read as tokens: comments, quoted literals and identifiers are skipped, so a ';' or a
# keyword inside them counts for nothing.
_SQL_TOKEN = re.compile(
    r"""(?P<skip>--[^\n]*|/\*.*?\*/|[Ee]'(?:[^'\\]|\\.|'')*'|'(?:[^']|'')*'|"(?:[^"]|"")*"|\$(?P<tag>[A-Za-z_]\w*)?\$.*?\$(?P=tag)?\$)
    |(?P<word>[A-Za-z_][\w$]*)
    |(?P<semicolon>;)
    |(?P<blank>\s+)
    |(?P<other>.)""",
    re.S | re.X,
)
# Words that make a SELECT or WITH write: data-modifying CTEs, SELECT INTO, row locks (FOR UPDATE).
_WRITING_WORDS = frozenset({"INSERT", "UPDATE", "DELETE", "MERGE", "INTO"})


def query_problem(query: str) -> str | None:
    """Why a configured query is not one statement that only reads, or None. The database enforces the same
    (the query runs in a read-only transaction, see retrain.datasets); this check says so when the file loads."""
    tokens = [(m.lastgroup, m.group()) for m in _SQL_TOKEN.finditer(query)]
    meaningful = [(kind, text) for kind, text in tokens if kind not in ("skip", "blank", "tag")]
    while meaningful and meaningful[-1][0] == "semicolon":
        meaningful.pop()
    if any(kind == "semicolon" for kind, _ in meaningful):
        return "one statement only: ';' separates statements (a trailing ';' is fine)"
    words = [text.upper() for kind, text in meaningful if kind == "word"]
    if not words or words[0] not in ("SELECT", "WITH"):
        return f"must be a single SELECT or WITH statement, got {words[0] if words else 'nothing'}"
    writing = [w for w in words if w in _WRITING_WORDS]
    if writing:
        return (
            f"{writing[0]} writes; a configured query may only read (configured queries run read-only; "
            "quote a column of that name)"
        )
    return None


class TrainingData(Strict):
    """Where the base training set comes from: a bundled data set, a file, or SQL on feedback_db."""

    bundled: Literal["digits"] | None = None
    path: str | None = None
    query: str | None = None
    limit: Annotated[int, Field(gt=0)] | None = None

    @field_validator("query")
    @classmethod
    def one_reading_statement(cls, value: str | None) -> str | None:
        if value is not None and (problem := query_problem(value)):
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def exactly_one_source(self) -> TrainingData:
        given = [name for name in ("bundled", "path", "query") if getattr(self, name)]
        if len(given) != 1:
            raise ValueError(f"set exactly one of bundled, path, query (got {given or 'none'})")
        return self


class GateConfig(Strict):
    primary_metric: Literal["accuracy", "macro_f1"] = "accuracy"
    tolerance: Annotated[float, Field(ge=0, le=1)] = 0.01
    slice_tolerance: Annotated[float, Field(ge=0, le=1)] = 0.05
    min_slice_rows: Annotated[int, Field(ge=1)] = 20
    eval_case_pass_rate: Annotated[float, Field(ge=0, le=1)] = 1.0
    # A drop beyond the tolerance blocks only when the paired holdout predictions show it is real (one-sided
    # exact McNemar test, p < significance); 0 disables the test. A drop beyond max_regression always blocks
    # (None = no such floor; on a small holdout one row can exceed any floor).
    significance: Annotated[float, Field(ge=0, lt=1)] = 0.1
    max_regression: Annotated[float, Field(gt=0, le=1)] | None = None
    require_approval: bool = False
    # Automatic rollback: when the first rollups after a promotion show labelled-feedback accuracy this much
    # below the previous champion's last rollups (each side with >= auto_rollback_min_labelled labels).
    # None = off.
    auto_rollback_accuracy_drop: Annotated[float, Field(gt=0, le=1)] | None = None
    auto_rollback_min_labelled: Annotated[int, Field(ge=1)] = 30
    auto_rollback_intervals: Annotated[int, Field(ge=1)] = 3


class ReviewConfig(Strict):
    """How people's answers become labels: second opinions, gold and audit reviews, reviewer trust."""

    # A correction (an answer that disagrees with the model), or an answer on a contested label, is asked
    # again of another reviewer until the consensus probability reaches consensus_confidence or the trace
    # has this many answers.
    max_reviews_per_item: Annotated[int, Field(ge=1, le=9)] = 3
    consensus_confidence: Annotated[float, Field(gt=0.5, le=1)] = 0.8
    contested_labels: list[str] = []
    # Shares of each run's review budget: gold questions (traces whose label is already settled, asked
    # of someone who has not answered them) measure reviewers; audit questions (a uniform sample of all
    # predictions) give each version an unbiased accuracy. Second opinions come out of the budget too.
    gold_share: Annotated[float, Field(ge=0, le=0.5)] = 0.0
    audit_share: Annotated[float, Field(ge=0, le=0.5)] = 0.05
    # A reviewer whose estimated accuracy falls below this raises an alert, gets no new questions while
    # other configured reviewers are left, and their answers count only once another reviewer agrees.
    min_reviewer_accuracy: Annotated[float, Field(gt=0, lt=1)] = 0.7


class TableDisplay(Strict):
    """The input as a table of feature/value pairs: what every model shows unless it says otherwise."""

    kind: Literal["table"] = "table"


PIXEL_INDEX = "{i}"
MAX_IMAGE_SIDE = 2048


class ImageDisplay(Strict):
    """A pixel vector shown as a grey-scale picture above the table of its values."""

    kind: Literal["image"]
    width: Annotated[int, Field(ge=1, le=512)]
    height: Annotated[int, Field(ge=1, le=512)]
    # The pixel columns in row-major order (left to right, then top to bottom): a list of width x height
    # names, or one name with {i} standing for 0 .. width x height - 1 (digits: "pixel_{i}").
    columns: list[str] | str
    # [low, high]: values are scaled linearly from this range to black..white; values outside are clipped.
    value_range: tuple[float, float]
    # True: high values are drawn dark (ink on paper, as the digits data is).
    invert: bool = False
    # Screen pixels per input pixel (nearest neighbour): an 8x8 input is unreadable at its own size.
    scale: Annotated[int, Field(ge=1, le=64)] = 16

    @field_validator("columns")
    @classmethod
    def pattern_has_one_index(cls, value: list[str] | str) -> list[str] | str:
        if isinstance(value, str) and value.count(PIXEL_INDEX) != 1:
            raise ValueError(f"a column pattern must contain {PIXEL_INDEX} exactly once, got {value!r}")
        return value

    @model_validator(mode="after")
    def consistent_shape(self) -> ImageDisplay:
        low, high = self.value_range
        if not low < high:
            raise ValueError(f"value_range: low must be below high, got [{low}, {high}]")
        pixels = self.width * self.height
        if isinstance(self.columns, list):
            if len(self.columns) != pixels:
                raise ValueError(
                    f"columns: {len(self.columns)} names given, width x height = {pixels} pixels need one each"
                )
            repeated = sorted({c for c in self.columns if self.columns.count(c) > 1})
            if repeated:
                raise ValueError(f"columns: repeated names {repeated[:5]}")
        side = max(self.width, self.height) * self.scale
        if side > MAX_IMAGE_SIDE:
            raise ValueError(
                f"scale: the picture would be {side} pixels wide or high (at most {MAX_IMAGE_SIDE})"
            )
        return self

    def column_names(self) -> list[str]:
        """The pixel columns in row-major order."""
        if isinstance(self.columns, list):
            return list(self.columns)
        return [self.columns.replace(PIXEL_INDEX, str(i)) for i in range(self.width * self.height)]


class TextDisplay(Strict):
    """One long text column shown as a quoted block above the table of the other input values."""

    kind: Literal["text"]
    column: Annotated[str, Field(min_length=1)]
    # Longer texts are cut here (the review says how much was left out).
    max_chars: Annotated[int, Field(ge=1, le=20_000)] = 2_000


InputDisplay = Annotated[TableDisplay | ImageDisplay | TextDisplay, Field(discriminator="kind")]


class Schedules(Strict):
    """Cron expressions or presets in UTC; None = not scheduled (manual runs still serve the model)."""

    inference: str | None = None
    aggregation: str | None = "@hourly"
    retraining: str | None = "@weekly"

    @field_validator("inference", "aggregation", "retraining")
    @classmethod
    def valid_cron(cls, value: str | None) -> str | None:
        if value is None:
            return None
        schedules.expression(value)  # raises ValueError naming the problem
        return value.strip()


class ModelConfig(Strict):
    name: str
    label_column: str
    feature_columns: list[str] | Literal["all"] = "all"
    categorical_columns: list[str] = []
    slice_columns: list[str] = []
    drop_columns: list[str] = []
    training_data: TrainingData
    estimator: str = DEFAULT_ESTIMATOR
    seed: int = 42
    confidence_threshold: Annotated[float, Field(gt=0, le=1)] = 0.8
    review_budget: Annotated[int, Field(ge=0)] = 20
    review_timeout_minutes: Annotated[int, Field(gt=0)] = 24 * 60
    review_queue_max_age_hours: Annotated[int, Field(gt=0)] = 72
    reviewers: list[str] = []
    min_rating: Annotated[int, Field(ge=1, le=5)] = 4
    max_feedback_share: Annotated[float, Field(gt=0, le=1)] = 1.0
    gate: GateConfig = GateConfig()
    review: ReviewConfig = ReviewConfig()
    schedules: Schedules = Schedules()
    input_display: InputDisplay = TableDisplay()

    @field_validator("name")
    @classmethod
    def valid_name(cls, value: str) -> str:
        if not MODEL_NAME.match(value):
            raise ValueError("must be 1-100 characters of letters, digits, '_', '.', '-'")
        return value

    @field_validator("estimator")
    @classmethod
    def valid_import_path(cls, value: str) -> str:
        """Checked without importing anything: the module is imported (and the factory called) only when a
        model is trained."""
        if not IMPORT_PATH.match(value):
            raise ValueError("must be an import path like 'package.module:function'")
        module_name, _, attr = value.partition(":")
        top = module_name.split(".")[0]
        if top in sys.stdlib_module_names:
            raise ValueError(
                f"{value!r} comes from the Python standard library ({top}); an estimator is a function of "
                "your code or of scikit-learn that takes (spec, seed) and returns a scikit-learn estimator"
            )
        if attr.startswith("_") or any(part.startswith("_") for part in module_name.split(".")):
            raise ValueError(f"{value!r} names something private; name a public factory function")
        return value

    @model_validator(mode="after")
    def label_not_a_feature(self) -> ModelConfig:
        if isinstance(self.feature_columns, list) and self.label_column in self.feature_columns:
            raise ValueError(f"label_column {self.label_column!r} is also listed in feature_columns")
        return self

    def estimator_factory(self) -> Any:
        module_name, _, attr = self.estimator.partition(":")
        module_name = MOVED_MODULES.get(module_name, module_name)
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(
                f"model {self.name!r}: estimator {self.estimator!r} cannot be imported: {exc}"
            ) from exc
        try:  # called as factory(spec, seed); a builtin or a function of other arguments is refused uncalled
            if not inspect.isfunction(factory):
                raise TypeError(f"it is a {type(factory).__name__}, not a Python function")
            inspect.signature(factory).bind(None, self.seed)
        except TypeError as exc:
            raise ConfigError(
                f"model {self.name!r}: estimator {self.estimator!r} cannot be called as factory(spec, seed): {exc}"
            ) from None
        return factory


class ApiConfig(Strict):
    max_batch_size: Annotated[int, Field(gt=0, le=100_000)] = 10_000
    # Inference requests per POST /requests, and request ids per batch read (GET /requests/{model}).
    max_request_batch_size: Annotated[int, Field(gt=0, le=100_000)] = 1_000
    max_comment_length: Annotated[int, Field(gt=0)] = 4_000
    low_rating_requires_comment: bool = False
    low_rating_comment_min_length: Annotated[int, Field(ge=0)] = 10
    # 10,000 items of a few hundred bytes fit easily; larger bodies are refused with 413 before parsing.
    max_body_bytes: Annotated[int, Field(gt=0)] = 20 * 1024 * 1024


class TriageConfig(Strict):
    negative_share_threshold: Annotated[float, Field(gt=0, le=1)] = 0.3
    negative_window: Annotated[int, Field(gt=0)] = 10


class NotifyConfig(Strict):
    webhook_url_env: str = "FEEDBACK_LOOP_WEBHOOK_URL"
    timeout_seconds: Annotated[float, Field(gt=0)] = 5.0
    max_attempts: Annotated[int, Field(ge=1, le=10)] = 3


class AlertConfig(Strict):
    negative_rate: Annotated[float, Field(ge=0, le=1)] = 0.4
    accuracy_drop: Annotated[float, Field(ge=0, le=1)] = 0.1
    psi: Annotated[float, Field(gt=0)] = 0.2
    backlog_age_hours: Annotated[float, Field(gt=0)] = 48
    # Rates only alert once they rest on this many rows, so one thumbs-down in a quiet hour pages nobody.
    min_signals: Annotated[int, Field(ge=1)] = 20
    min_labelled: Annotated[int, Field(ge=1)] = 20
    min_drift_rows: Annotated[int, Field(ge=1)] = 100


class AggregationConfig(Strict):
    drift_max_rows: Annotated[int, Field(ge=100)] = 50_000
    dashboard_days: Annotated[int, Field(ge=1, le=366)] = 14


class Settings(Strict):
    models: list[ModelConfig]
    api: ApiConfig = ApiConfig()
    triage: TriageConfig = TriageConfig()
    notify: NotifyConfig = NotifyConfig()
    alerts: AlertConfig = AlertConfig()
    aggregation: AggregationConfig = AggregationConfig()

    @model_validator(mode="after")
    def unique_names(self) -> Settings:
        names = [m.name for m in self.models]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"model names must be unique; repeated: {', '.join(duplicates)}")
        if not names:
            raise ValueError("list at least one model")
        return self

    def model(self, name: str) -> ModelConfig:
        for candidate in self.models:
            if candidate.name == name:
                return candidate
        known = ", ".join(m.name for m in self.models)
        raise NotFoundError(f"unknown model {name!r}; configured models: {known}")


def shipped_path() -> Path:
    """The commented example configuration shipped with the package (never FEEDBACK_LOOP_CONFIG)."""
    return paths.shipped_config_path()


def default_path() -> Path:
    return paths.config_path()


# Pydantic puts the chosen member's tag into an error's location (input_display.image.width); the file has
# no such key, so it is left out.
_UNION_TAGS = {"input_display": {"table", "image", "text"}}


def _location(loc: tuple) -> str:
    kept = [item for i, item in enumerate(loc) if not (i and item in _UNION_TAGS.get(str(loc[i - 1]), ()))]
    return field_paths.dotted(kept) or "(top level)"


def parse(text: str, source: str = "<config>") -> Settings:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping with a 'models' list at the top level")
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        # pydantic words our own ValueErrors "Value error, <reason>": the reason is the message.
        problems = "; ".join(
            f"{_location(e['loc'])}: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors()
        )
        raise ConfigError(f"{source}: {problems}") from None


@lru_cache(maxsize=8)
def _read(path: str, version: tuple[int, int]) -> Settings | str:
    """The settings of one version (mtime, size) of the file, or why it is invalid, as one line. A broken
    file is read once per version too, not on every call (the API asks on every request)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return f"{path}: cannot be read: {exc.strerror or exc}"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return (
            f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); save it as UTF-8"
        )
    try:
        return parse(text, source=path)
    except ConfigError as exc:
        return " ".join(str(exc).split())


def load(path: Path | str | None = None) -> Settings:
    """The validated settings; re-read when the file changes. Raises ConfigError (one line naming the file
    and what is wrong) while the file is missing or invalid."""
    target = Path(path) if path else default_path()
    try:
        found_stat = target.stat()  # one stat per call: the API asks on every request
    except OSError:
        found_stat = None
    if found_stat is None or not stat.S_ISREG(found_stat.st_mode):
        raise ConfigError(f"{target}: configuration file not found (set {ENV_CONFIG})")
    found = _read(str(target), (found_stat.st_mtime_ns, found_stat.st_size))
    if isinstance(found, str):
        raise ConfigError(found)
    return found
