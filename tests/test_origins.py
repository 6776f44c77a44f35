"""Origin arithmetic of the backtest: local time, the hour of the nightly forecast, the retrain schedule, and the
spans each retraining learns from."""

from datetime import date, timedelta

import pandas as pd
import pytest
from pydantic import ValidationError

from tasks.core.errors import DataError
from tasks.core.settings import PreprocessingSettings, Settings
from tasks.model.features import preprocess_before
from tasks.operate.origins import (
    BacktestPlan,
    check_within_data,
    default_dates,
    forecast_origins,
    parse_clock_hour,
    parse_period,
    plan_backtest,
    retrain_origins,
)
from tests.test_dataset import build, station_file

ZONE = "Asia/Shanghai"


def test_daily_origins_are_at_the_forecast_hour_in_local_time():
    origins = forecast_origins(date(2014, 1, 1), date(2014, 12, 31), 2, timedelta(hours=24), ZONE)
    assert len(origins) == 365
    assert origins[0] == pd.Timestamp("2014-01-01 02:00", tz=ZONE) and origins[-1] == pd.Timestamp("2014-12-31 02:00", tz=ZONE)
    assert origins[0].isoformat() == "2014-01-01T02:00:00+08:00"  # 18:00 UTC the day before
    assert {origin.hour for origin in origins} == {2}


def test_hourly_origins_cover_every_hour_of_the_days_given():
    origins = forecast_origins(date(2014, 1, 1), date(2014, 1, 2), 2, timedelta(hours=1), ZONE)
    assert len(origins) == 48 and origins[0].hour == 0 and origins[-1] == pd.Timestamp("2014-01-02 23:00", tz=ZONE)


def test_origins_a_few_hours_apart_keep_to_the_forecast_hour():
    origins = forecast_origins(date(2014, 1, 1), date(2014, 1, 1), 2, timedelta(hours=6), ZONE)
    assert [origin.hour for origin in origins] == [2, 8, 14, 20]


def test_retraining_every_28_days_over_2014_is_14_trainings_and_0_is_one():
    origins = forecast_origins(date(2014, 1, 1), date(2014, 12, 31), 2, timedelta(hours=24), ZONE)
    every_28 = retrain_origins(origins, timedelta(days=28))
    assert len(every_28) == 14 and every_28[1] == pd.Timestamp("2014-01-29 02:00", tz=ZONE)
    assert len(retrain_origins(origins, timedelta(days=7))) == 53
    assert retrain_origins(origins, timedelta(0)) == [origins[0]]


def test_each_champion_serves_the_origins_up_to_the_next_retraining():
    plan = plan_backtest(date(2014, 1, 1), date(2014, 1, 10), "02:00", "24h", "4d", ZONE)
    assert [len(segment) for segment in plan.segments()] == [4, 4, 2]
    assert [segment[0] for segment in plan.segments()] == plan.retrain_origins
    assert BacktestPlan.from_json(plan.to_json()) == plan


def test_periods_and_hours_are_parsed_and_bad_ones_refused():
    assert parse_period("7d") == timedelta(days=7) and parse_period("1h") == timedelta(hours=1)
    assert parse_period("0") == timedelta(0) and parse_clock_hour("02:00") == 2
    for bad in ("7", "2w", "-1d"):
        with pytest.raises(ValueError, match="period"):
            parse_period(bad)
    for bad in ("02:30", "24:00"):
        with pytest.raises(ValueError, match="on the hour"):
            parse_clock_hour(bad)
    with pytest.raises(ValidationError, match="retrain_every"):
        Settings(retrain_every="2w")
    with pytest.raises(ValidationError, match="forecast_at"):
        Settings(forecast_at="2:30")


def test_without_dates_the_backtest_covers_the_datas_last_year():
    assert default_dates(pd.Timestamp("2014-12-31 23:00", tz=ZONE)) == (date(2014, 1, 1), date(2014, 12, 31))
    assert default_dates(pd.Timestamp("2014-12-31 05:00", tz=ZONE)) == (date(2013, 12, 31), date(2014, 12, 30))


def test_a_first_retrain_without_enough_history_is_refused():
    plan = plan_backtest(date(2011, 6, 1), date(2011, 6, 2), "02:00", "24h", "0", ZONE)
    with pytest.raises(DataError, match="needs data from 2009-06-01"):
        check_within_data(plan, pd.Timestamp("2010-01-01", tz=ZONE), pd.Timestamp("2014-12-31 23:00", tz=ZONE), 365, 365)


def test_a_retrain_origin_learns_from_the_readings_before_it_only(tmp_path):
    """Validation is the `validation_days` before the origin, training all hours before that; the origin's own
    reading and every later one are absent, and there is no test span."""
    dataset = build([station_file(tmp_path, "A", hours=24 * 10)], tmp_path).dataset
    origin = pd.Timestamp("2013-03-08 02:00", tz=ZONE)
    preprocessing = PreprocessingSettings(max_gap_hours=3, target_transform="identity", lookback_hours=6,
                                          horizon_hours=24, validation_days=2, min_train_days=1)
    output = preprocess_before(dataset.path, "A", origin, tmp_path / "features", preprocessing)
    features = pd.read_parquet(output.features_path)
    assert features["timestamp"].iloc[-1] == origin - pd.Timedelta(hours=1)
    validation = features[features["split"] == "validation"]["timestamp"]
    assert validation.iloc[0] == origin - pd.Timedelta(days=2) and len(validation) == 48
    assert set(features["split"]) == {"train", "validation"}
