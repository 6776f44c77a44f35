"""The model's inputs as the stages of the model share them: the target and input column names, the spans, and the
parameters fitted on the training span (`PreprocessingParams`), saved as JSON beside the features and the model."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tasks.core import storage

TARGET_COLUMN = "pm25"
WIND_COLUMN = "wind_dir"
PM25_INPUT = "pm25_z"
PM25_OBSERVED = "pm25_observed"
PM25_LOG = "pm25_log"
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class PreprocessingParams:
    """Everything fitted on the training span; JSON-serialisable so a forecast can be rebuilt from it."""

    max_gap_hours: int
    input_columns: list[str]  # canonical weather (and pollutant) columns, in the dataset's order
    wind_categories: list[str]
    fill_values: dict[str, float]
    wind_fill: str
    scale_mean: dict[str, float]
    scale_std: dict[str, float]
    target_transform: str
    target_mean: float
    target_std: float
    feature_columns: list[str]
    log_mean: float | None = None  # of log1p(PM2.5) on the training span; absent in models without PM25_LOG
    log_std: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> PreprocessingParams:
        return cls(**payload)


def target_inverse(values: np.ndarray, transform: str) -> np.ndarray:
    """Model-space targets back to µg/m³ (before clipping at 0)."""
    return np.expm1(values) if transform == "log1p" else values


def load_params(params_path: Path) -> PreprocessingParams:
    payload = storage.read_json(params_path)
    return PreprocessingParams.from_json({key: payload[key] for key in PreprocessingParams.__dataclass_fields__})
