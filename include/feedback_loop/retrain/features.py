"""Which columns a model reads, derived once from its config and a data frame."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from feedback_loop.core.errors import InvalidInputError

if TYPE_CHECKING:
    import pandas as pd

    from feedback_loop.core.config import ModelConfig


@dataclass(frozen=True)
class FeatureSpec:
    features: list[str]
    categorical: list[str]
    label: str
    slices: list[str]

    @property
    def numeric(self) -> list[str]:
        return [c for c in self.features if c not in self.categorical]


def feature_spec(model: ModelConfig, frame: pd.DataFrame) -> FeatureSpec:
    """Resolve "all" feature columns and infer categorical ones (non-numeric dtypes) from the frame."""
    import pandas as pd

    excluded = {model.label_column, *model.slice_columns, *model.drop_columns}
    if model.feature_columns == "all":
        features = [str(c) for c in frame.columns if c not in excluded]
    else:
        missing = [c for c in model.feature_columns if c not in frame.columns]
        if missing:
            raise InvalidInputError(f"model {model.name!r}: feature columns missing from data: {missing}")
        features = list(model.feature_columns)
    if not features:
        raise InvalidInputError(f"model {model.name!r}: no feature columns left after exclusions")
    categorical = [
        c for c in features if c in model.categorical_columns or not pd.api.types.is_numeric_dtype(frame[c])
    ]
    return FeatureSpec(
        features=features, categorical=categorical, label=model.label_column, slices=list(model.slice_columns)
    )
