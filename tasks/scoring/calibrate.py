"""Calibrate: fit a model's 80 % interval tables and its maps of the 24-hour category on its forecasts of the
validation span (never the test span), and keep them beside the model, where its forecasts read them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tasks.core.calibration import (
    read_day_maps,
    read_intervals,
    track_intervals_file,
    write_day_maps,
    write_intervals,
)
from tasks.scoring.categories import fit_day_map
from tasks.scoring.intervals import fit_intervals

# Per station: the validation span's observed targets and the model's forecasts (origins × horizons, µg/m³).
ValidationForecasts = dict[str, tuple[np.ndarray, np.ndarray]]


def is_calibrated(model_dir: Path) -> bool:
    """Whether the model holds interval tables and maps made by today's methods (older ones are fitted again)."""
    return read_intervals(model_dir) is not None and read_day_maps(model_dir) is not None


def fitted_per_station(fit, validation: ValidationForecasts) -> dict:
    """`fit(observed, forecast)` of each station's validation forecasts."""
    return {station: fit(observed, forecast) for station, (observed, forecast) in validation.items()}


def calibrate(model_dir: Path, validation: ValidationForecasts) -> Path:
    """Write the model's maps, then its interval tables (last: what marks it calibrated)."""
    write_day_maps(model_dir, fitted_per_station(fit_day_map, validation))
    write_intervals(model_dir, fitted_per_station(fit_intervals, validation))
    return model_dir


def calibrate_tracks(model_dir: Path, by_track: dict[str, ValidationForecasts], own_track: str) -> Path:
    """Calibrate a model fed several ways (the weather model): each other track's interval tables beside it
    (`track_intervals_file`), then the model's own maps and tables from `own_track`, the one its forecasts issue."""
    for track, validation in by_track.items():
        if track != own_track:
            write_intervals(model_dir, fitted_per_station(fit_intervals, validation), track_intervals_file(track))
    return calibrate(model_dir, by_track[own_track])


def tracks_calibrated(model_dir: Path, tracks: list[str], own_track: str) -> bool:
    return is_calibrated(model_dir) and all(read_intervals(model_dir, track_intervals_file(track)) is not None
                                            for track in tracks if track != own_track)
