"""The weather model's inputs: which issue each target hour reads (never one after the origin), the error model's
statistics over many draws, and the tracks of a real run on the real file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.core.home import observed_weather_path
from tasks.core.weather import ISSUED_TRACK, NOISY_TRACK, PERFECT_TRACK, WEATHER_VARIABLES, newest_issues
from tasks.model.weather_errors import (
    DAY_AHEAD_WET_FLIPS,
    DIRECTION_MIN_SPEED,
    LEAD_CORRELATION,
    MINIMUM_DAY_AHEAD_ERROR,
    MINIMUM_DAY_AHEAD_WET_FLIPS,
    error_stream,
    noisy_weather,
)
from tasks.model.weather_inputs import WET_MM
from tasks.model.weather_ahead import issued_ahead

HORIZON = 24


def forecast_table(issues: list[str], hours_ahead: int, temperature: float = 1.0) -> pd.DataFrame:
    """Station A's forecasts: each issue holds the next `hours_ahead` hours, with the issue's hour as its dew point."""
    rows = []
    for issue in issues:
        issued_at = pd.Timestamp(issue)
        for lead in range(1, hours_ahead + 1):
            rows.append({"station": "A", "issued_at": issued_at, "valid_at": issued_at + pd.Timedelta(hours=lead),
                         "temperature": temperature, "dew_point": float(issued_at.hour), "pressure": 1000.0,
                         "wind_speed": 2.0, "wind_direction": 90.0, "precipitation": 0.0})
    return pd.DataFrame(rows)


def test_each_target_hour_reads_the_newest_issue_at_or_before_the_origin():
    table = forecast_table(["2016-01-01T00:00Z", "2016-01-01T12:00Z"], 48)
    origins = pd.Series(pd.to_datetime(["2016-01-01T11:00Z", "2016-01-01T20:00+08:00", "2015-12-31T23:00Z"], utc=True))
    ahead, issued = issued_ahead(table, origins, HORIZON)
    assert (ahead["dew_point"][0] == 0).all() and (ahead["dew_point"][1] == 12).all()  # 12 UTC is 20:00 in Beijing
    assert np.isnan(ahead["temperature"][2]).all() and pd.isna(issued[2]).all()  # nothing issued by then
    assert issued[1][0] == np.datetime64("2016-01-01T12:00")  # UTC
    # The same choice as newest_issues, the rule every stage reads.
    chosen = newest_issues(table, pd.Timestamp("2016-01-01T11:00Z")).set_index("valid_at")["dew_point"]
    valid = pd.Timestamp("2016-01-01T11:00Z") + pd.to_timedelta(np.arange(1, HORIZON + 1), unit="h")
    np.testing.assert_array_equal(ahead["dew_point"][0], chosen.loc[valid].to_numpy())


def test_an_issue_that_ends_before_the_last_target_hour_leaves_those_hours_without_a_forecast():
    ahead, issued = issued_ahead(forecast_table(["2016-01-01T00:00Z"], 30), pd.Series(pd.to_datetime(
        ["2016-01-01T10:00Z"])), HORIZON)
    assert np.isfinite(ahead["pressure"][0, :20]).all() and np.isnan(ahead["pressure"][0, 20:]).all()
    assert pd.isna(issued[0, 20:]).all()


def test_a_forecast_issued_after_the_origin_however_absurd_changes_nothing_read_at_the_origin():
    table = forecast_table(["2016-01-01T00:00Z", "2016-01-02T00:00Z"], 48)
    absurd = forecast_table(["2016-01-01T00:01Z", "2016-01-02T00:01Z"], 48, temperature=59.0)
    origins = pd.Series(pd.date_range("2015-12-31T22:00Z", "2016-01-02T00:00Z", freq="h"))
    before, before_issues = issued_ahead(table, origins, HORIZON)
    after, after_issues = issued_ahead(pd.concat([table, absurd], ignore_index=True), origins, HORIZON)
    for name in WEATHER_VARIABLES:
        np.testing.assert_array_equal(before[name], after[name])
    np.testing.assert_array_equal(before_issues, after_issues)
    # A minute later the absurd issue is the newest, and is read.
    later, _ = issued_ahead(pd.concat([table, absurd], ignore_index=True), pd.Series(pd.to_datetime(
        ["2016-01-01T00:01Z"])), HORIZON)
    assert (later["temperature"][0] == 59.0).all()


def observed_sample(samples: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Plausible weather at `samples` × HORIZON target hours: light and strong winds, a few wet hours."""
    shape = (samples, HORIZON)
    return {"temperature": rng.normal(12, 10, shape), "dew_point": rng.normal(0, 12, shape),
            "pressure": rng.normal(1015, 10, shape), "wind_speed": rng.gamma(1.5, 1.2, shape),
            "wind_direction": rng.uniform(0, 360, shape),
            "precipitation": np.where(rng.random(shape) < 0.05, 1.0, 0.0)}


def test_the_error_model_draws_errors_of_the_stated_sizes_correlated_over_the_lead_hours():
    observed = observed_sample(40_000, np.random.default_rng(0))
    noisy = noisy_weather(observed, error_stream(42, "A", "test"))
    for name in ("temperature", "dew_point", "pressure", "wind_speed"):
        error = noisy[name] - observed[name]
        rmse = np.sqrt(np.mean(error**2, axis=0))
        # At least the minimum day-ahead size at 24 h and half of it at 1 h, growing in between.
        minimum = MINIMUM_DAY_AHEAD_ERROR[name]
        assert rmse[-1] >= minimum and rmse[0] >= minimum / 2, name
        assert rmse[-1] <= minimum * 1.3 and np.all(np.diff(rmse) > -0.02 * minimum), name
        if name != "wind_speed":  # clipping at 0 bends the speed's errors
            correlation = np.corrcoef(error[:, 11], error[:, 12])[0, 1]
            assert correlation == pytest.approx(LEAD_CORRELATION, abs=0.02), name
    assert (noisy["wind_speed"] >= 0).all()
    turned = (noisy["wind_direction"] - observed["wind_direction"] + 180) % 360 - 180
    windy = observed["wind_speed"] > DIRECTION_MIN_SPEED
    assert np.sqrt(np.mean(turned[:, -1][windy[:, -1]] ** 2)) >= MINIMUM_DAY_AHEAD_ERROR["wind_direction"]
    assert (turned[~windy] == 0).all()
    flipped = (noisy["precipitation"] >= WET_MM) != (observed["precipitation"] >= WET_MM)
    assert flipped[:, -1].mean() == pytest.approx(DAY_AHEAD_WET_FLIPS, abs=0.005)
    assert flipped[:, -1].mean() >= MINIMUM_DAY_AHEAD_WET_FLIPS
    assert flipped[:, 0].mean() == pytest.approx(DAY_AHEAD_WET_FLIPS / 2, abs=0.005)
    # A mistimed rain is wrong for hours running: an hour wrong makes the next one far likelier to be wrong too.
    assert flipped[:, 12][flipped[:, 11]].mean() > 3 * flipped[:, 12].mean()
    again = noisy_weather(observed, error_stream(42, "A", "test"))
    np.testing.assert_array_equal(noisy["temperature"], again["temperature"])  # seeded: the same draw again
    other = noisy_weather(observed, error_stream(42, "B", "test"))
    assert not np.array_equal(noisy["temperature"], other["temperature"])


def test_missing_weather_stays_missing_under_the_error_model():
    observed = observed_sample(10, np.random.default_rng(1))
    observed["temperature"][0, 3] = observed["precipitation"][1, 5] = observed["wind_direction"][2, :] = np.nan
    noisy = noisy_weather(observed, error_stream(0, "A", "test"))
    assert np.isnan(noisy["temperature"][0, 3]) and np.isnan(noisy["precipitation"][1, 5])
    assert np.isnan(noisy["wind_direction"][2]).all()


def test_the_run_scores_every_track_on_the_same_cells_labelled_for_what_it_is(trained_home):
    home, _ = trained_home
    metrics = json.loads((home / "reports" / "latest" / "metrics.json").read_text())
    for track in (PERFECT_TRACK, NOISY_TRACK):
        assert metrics["models"][track]["h24"]["n"] == metrics["models"]["lstm"]["h24"]["n"]
        assert 0.5 < metrics["weather_tracks"][track]["intervals"]["coverage_80"] < 1.0
    assert "upper bound" in metrics["weather_tracks"][PERFECT_TRACK]["fed"]
    assert ISSUED_TRACK not in metrics["models"]  # no weather forecasts were given


def weather_file_from_observations(features_path: Path, station: str, days: int, path: Path) -> Path:
    """A forecast file whose issues (daily at 00 UTC, 48 h each) hold the weather the station then observed: the
    weather model fed it as issued must forecast exactly what it forecasts fed the observations."""
    observed = pd.read_parquet(observed_weather_path(features_path)).dropna(subset=["temperature", "dew_point",
                                                                                      "pressure"])
    observed["valid_at"] = observed["valid_at"].dt.tz_convert("UTC")
    end = observed["valid_at"].max().floor("D")
    rows = []
    for issue in pd.date_range(end - pd.Timedelta(days=days), end - pd.Timedelta(days=1), freq="D"):
        hours = observed[(observed["valid_at"] > issue) & (observed["valid_at"] <= issue + pd.Timedelta(hours=48))]
        rows.append(hours.assign(station=station, issued_at=issue))
    table = pd.concat(rows)[["station", "issued_at", "valid_at", *WEATHER_VARIABLES]]
    for column in ("issued_at", "valid_at"):
        table[column] = table[column].map(lambda stamp: stamp.isoformat())
    table.to_csv(path, index=False)
    return path


def test_fed_a_forecast_file_lstm_wx_is_the_weather_model_as_issued_and_the_network_lstm_elsewhere(
        trained_home, real_csv, tmp_path):
    from flows.train import train_pm25

    home = tmp_path / "home"
    shutil.copytree(trained_home[0], home)  # the shared run's home stays as it was
    features_path = next((home / "data" / "features").glob("*/features.parquet"))
    forecast_file = weather_file_from_observations(features_path, "US_Embassy", 30, tmp_path / "forecast.csv")
    train_pm25(source=str(real_csv), home=str(home), max_epochs=1, weather=str(forecast_file))
    metrics = json.loads((home / "reports" / "latest" / "metrics.json").read_text())
    predictions = pd.read_parquet(home / "reports" / "latest" / "predictions.parquet")
    issued = predictions["lstm_wx_issued"].to_numpy()
    # The last 30 days' origins had a forecast of every target hour: the observations, so lstm_wx is the perfect track.
    assert 0.07 < metrics["weather_tracks"][ISSUED_TRACK]["share_with_forecast"] < 0.09
    np.testing.assert_allclose(predictions.loc[issued, ISSUED_TRACK], predictions.loc[issued, PERFECT_TRACK], rtol=1e-5)
    np.testing.assert_array_equal(predictions.loc[~issued, ISSUED_TRACK], predictions.loc[~issued, "lstm"])
    assert metrics["models"][ISSUED_TRACK]["h24"]["n"] == metrics["models"]["lstm"]["h24"]["n"]
    assert metrics["weather_tracks"][ISSUED_TRACK]["fed"] == "fed a weather forecast as issued"
