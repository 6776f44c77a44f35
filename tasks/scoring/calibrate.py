"""Calibrate: fit a model's 80 % interval tables and its maps of the 24-hour category on its forecasts of the
validation span (never the test span), and keep them beside the model, where its forecasts read them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tasks.core.calibration import read_day_maps, read_intervals, write_day_maps, write_intervals
from tasks.scoring.categories import fit_day_map
from tasks.scoring.intervals import fit_intervals

# Per station: the validation span's observed targets and the model's forecasts (origins × horizons, µg/m³).
ValidationForecasts = dict[str, tuple[np.ndarray, np.ndarray]]


def is_calibrated(model_dir: Path) -> bool:
    """Whether the model holds interval tables and maps made by today's methods (older ones are fitted again)."""
    return read_intervals(model_dir) is not None and read_day_maps(model_dir) is not None


def calibrate(model_dir: Path, validation: ValidationForecasts) -> Path:
    """Write the model's maps, then its interval tables (last: what marks it calibrated)."""
    write_day_maps(model_dir, {station: fit_day_map(observed, forecast)
                               for station, (observed, forecast) in validation.items()})
    write_intervals(model_dir, {station: fit_intervals(observed, forecast)
                                for station, (observed, forecast) in validation.items()})
    return model_dir
