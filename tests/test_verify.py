"""Verification of a backtest's forecasts against hand-computed values on a tiny series."""

import numpy as np
import pandas as pd
import pytest

from tasks.core.air_quality import category
from tasks.scoring.verify import (
    category_scores,
    contingency,
    interval_reliability,
    lead_scores,
    next_day_means,
    persistence_lead_scores,
)

ZONE = "Asia/Shanghai"


def table(forecast, observed, persistence, leads=2, lower=None, upper=None, issued=(0, 0)):
    """Two origins × `leads` lead hours of one station, in the forecasts table's columns (`issued`: each origin's
    category of the next 24 hours)."""
    origins = pd.DatetimeIndex([pd.Timestamp("2014-01-01 02:00", tz=ZONE), pd.Timestamp("2014-01-02 02:00", tz=ZONE)])
    n = len(origins) * leads
    origin = np.repeat(origins, leads)
    lead = np.tile(np.arange(1, leads + 1), len(origins))
    forecast = np.asarray(forecast, dtype=float)
    return pd.DataFrame({"station": "A", "origin": origin, "target_time": origin + pd.to_timedelta(lead, unit="h"),
                         "lead_hours": lead, "forecast": forecast,
                         "lower_80": forecast - 10 if lower is None else lower,
                         "upper_80": forecast + 10 if upper is None else upper,
                         "persistence": np.repeat(persistence, leads), "observed": np.asarray(observed, dtype=float),
                         "model_version": np.ones(n, dtype=int),
                         "category_24h": pd.array(np.repeat(issued, leads), dtype="Int8")})


def test_scores_by_lead_hour_against_hand_computed_values():
    # lead 1: errors +10 (origin 1) and -20 (origin 2); persistence errors 0 - 50 = -50 and 100 - 60 = +40
    # lead 2: the target of origin 2 was not observed, so only origin 1 is scored there
    frame = table(forecast=[60, 70, 40, 0], observed=[50, 80, 60, np.nan], persistence=[0, 100])
    lead1, lead2 = lead_scores(frame, 2)
    assert lead1["n"] == 2 and lead1["rmse"] == pytest.approx(np.sqrt((100 + 400) / 2))
    assert lead1["mae"] == pytest.approx(15) and lead1["bias"] == pytest.approx(-5)
    assert lead1["skill"] == pytest.approx(1 - 250 / ((2500 + 1600) / 2))
    assert lead1["coverage_80"] == pytest.approx(0.5) and lead1["mean_width_80"] == pytest.approx(20)
    assert lead1["interval_score_80"] == pytest.approx((20 + (20 + 10 * 10)) / 2)  # origin 2: observed 10 above its interval
    assert lead2["n"] == 1 and lead2["rmse"] == pytest.approx(10) and lead2["skill"] == pytest.approx(1 - 100 / 6400)
    persistence1, _ = persistence_lead_scores(frame, 2)
    assert persistence1["rmse"] == pytest.approx(np.sqrt(2050)) and persistence1["bias"] == pytest.approx(-5)


def test_a_cell_without_the_origins_reading_is_not_scored_for_either():
    frame = table(forecast=[60, 70, 40, 0], observed=[50, 80, 60, 70], persistence=[np.nan, 100])
    assert [row["n"] for row in lead_scores(frame, 2)] == [1, 1]
    assert [row["n"] for row in persistence_lead_scores(frame, 2)] == [1, 1]


def test_categories_follow_chinas_daily_breakpoints_inclusive_above():
    values = np.array([0, 35, 35.1, 75, 76, 115, 150, 151, 250, 251])
    assert category(values).tolist() == [0, 0, 1, 1, 2, 2, 3, 4, 4, 5]


def test_exceedance_scores_against_hand_computed_values():
    forecast = np.array([True, True, False, False, True])
    observed = np.array([True, False, True, False, True])
    scores = contingency(forecast, observed)
    assert (scores["hits"], scores["misses"], scores["false_alarms"]) == (2, 1, 1)
    assert scores["pod"] == pytest.approx(2 / 3) and scores["far"] == pytest.approx(1 / 3)
    assert scores["csi"] == pytest.approx(2 / 4)
    assert contingency(np.zeros(3, bool), np.zeros(3, bool))["pod"] is None


def test_the_next_days_mean_needs_twenty_observed_hours():
    leads = 24
    forecast = np.r_[np.full(leads, 80.0), np.full(leads, 20.0)]
    observed = np.r_[np.full(leads, 100.0), np.full(leads, 30.0)]
    observed[leads : leads + 5] = np.nan  # the second origin's day has 19 observed hours: no valid mean
    means = next_day_means(table(forecast, observed, persistence=[60, 10], leads=leads, issued=(2, 0)))
    assert len(means) == 1 and means["observed"].iloc[0] == 100 and means["forecast"].iloc[0] == 80
    scores = category_scores(means)
    # issued lightly polluted and observed 100 (lightly): right; persistence 60 (good): wrong
    assert scores["accuracy"] == 1.0 and scores["persistence_accuracy"] == 0.0 and scores["mean_accuracy"] == 1.0
    assert scores["exceedance"]["75"]["model"]["csi"] == 1.0 and scores["exceedance"]["75"]["persistence"]["pod"] == 0.0


def test_categories_and_exceedances_are_scored_for_the_issued_category_not_the_plain_mean():
    leads = 24
    forecast = np.r_[np.full(leads, 80.0), np.full(leads, 40.0)]
    observed = np.r_[np.full(leads, 160.0), np.full(leads, 30.0)]
    # the plain means (80: lightly polluted, 40: good) miss both days; the issued categories (heavily, excellent)
    # name both, and the first exceeds 75 and 150
    scores = category_scores(next_day_means(table(forecast, observed, persistence=[60, 10], leads=leads,
                                                  issued=(4, 0))))
    assert scores["accuracy"] == 1.0 and scores["mean_accuracy"] == 0.0 and scores["persistence_accuracy"] == 0.5
    assert scores["exceedance"]["150"]["model"]["csi"] == 1.0 and scores["exceedance"]["75"]["model"]["pod"] == 1.0
    assert scores["exceedance"]["150"]["persistence"]["pod"] == 0.0


def test_an_origin_without_an_issued_category_is_not_scored_for_categories():
    leads = 24
    frame = table(np.full(2 * leads, 50.0), np.full(2 * leads, 50.0), persistence=[60, 10], leads=leads, issued=(1, 1))
    frame["category_24h"] = frame["category_24h"].where(frame["origin"] == frame["origin"].min())
    assert len(next_day_means(frame)) == 1


def test_interval_reliability_by_size_of_the_forecast_against_hand_computed_values():
    # Four scored cells by size (intervals ± 10): 10 and 20 inside, 30 outside (observed 45), 40 inside.
    frame = table(forecast=[30, 10, 40, 20], observed=[45, 15, 35, 20], persistence=[1, 1])
    groups = interval_reliability(frame, parts=2)
    assert groups == [{"from": 10.0, "to": 20.0, "n": 2, "coverage_80": 1.0},
                      {"from": 30.0, "to": 40.0, "n": 2, "coverage_80": 0.5}]
    assert len(interval_reliability(frame, parts=5)) == 4  # never an empty group
