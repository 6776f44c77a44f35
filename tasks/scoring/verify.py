"""Verify: score the forecasts a backtest issued, as an operational forecast is verified.

A cell (one forecast of one target hour) is scored where the target hour was observed and the reading at the
origin exists, so the model and persistence are judged on the same cells. Scores by lead hour, per station and per
month of the origin; the next 24 hours' mean against China's daily PM2.5 categories (HJ 633-2012); and the
history of the champion.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.core import storage
from tasks.core.air_quality import BREAKPOINTS, EXCEEDANCES, MIN_HOURS_OF_MEAN, category
from tasks.core.records import Decision, verified_cells
from tasks.core.weather import ISSUED_TRACK
from tasks.scoring.intervals import coverage_by_size, interval_score

VERIFICATION_FILE = "verification.json"

log = logging.getLogger(__name__)


def _scores(error: np.ndarray) -> dict[str, float | int | None]:
    if error.size == 0:
        return {"n": 0, "rmse": None, "mae": None, "bias": None}
    return {"n": int(error.size), "rmse": float(np.sqrt(np.mean(error**2))), "mae": float(np.mean(np.abs(error))),
            "bias": float(np.mean(error))}


def lead_scores(frame: pd.DataFrame, leads: int) -> list[dict[str, Any]]:
    """The model's scores at each lead hour over the scored cells of `frame`: n, RMSE, MAE, mean bias (forecast
    minus observed), skill against persistence (1 - MSE / MSE of persistence), 80 % interval coverage, width and
    interval score."""
    cells = verified_cells(frame)
    groups = dict(tuple(cells.groupby("lead_hours")))
    rows = []
    for lead in range(1, leads + 1):
        group = groups.get(lead, cells.iloc[:0])
        observed = group["observed"].to_numpy()
        error = group["forecast"].to_numpy() - observed
        persistence_mse = np.mean((group["persistence"].to_numpy() - observed) ** 2) if len(group) else np.nan
        inside = (observed >= group["lower_80"].to_numpy()) & (observed <= group["upper_80"].to_numpy())
        row = {"lead_hours": lead, **_scores(error)}
        row["skill"] = (float(1 - np.mean(error**2) / persistence_mse)
                        if len(group) and persistence_mse > 0 else None)
        row["coverage_80"] = float(inside.mean()) if len(group) else None
        row["mean_width_80"] = float((group["upper_80"] - group["lower_80"]).mean()) if len(group) else None
        row["interval_score_80"] = float(interval_score(observed, group["lower_80"].to_numpy(),
                                                        group["upper_80"].to_numpy()).mean()) if len(group) else None
        rows.append(row)
    return rows


def persistence_lead_scores(frame: pd.DataFrame, leads: int) -> list[dict[str, Any]]:
    """Persistence's scores at each lead hour on the same cells (its skill is 0 by definition)."""
    cells = verified_cells(frame)
    groups = dict(tuple(cells.groupby("lead_hours")))
    rows = []
    for lead in range(1, leads + 1):
        group = groups.get(lead, cells.iloc[:0])
        scores = _scores(group["persistence"].to_numpy() - group["observed"].to_numpy())
        rows.append({"lead_hours": lead, **scores, "skill": 0.0 if scores["n"] else None})
    return rows


def next_day_means(frame: pd.DataFrame) -> pd.DataFrame:
    """Per station and origin: the mean of the next 24 hours as forecast, the category issued for them
    (`category_24h`), the reading at the origin (persistence), and the observed mean (where at least
    MIN_HOURS_OF_MEAN of the hours were); rows without an issued category, a persistence value or a valid observed
    mean are dropped."""
    day = frame[frame["lead_hours"] <= 24]
    grouped = day.groupby(["station", "origin"])
    means = pd.DataFrame({
        "forecast": grouped["forecast"].mean(),
        "category": grouped["category_24h"].first(),
        "persistence": grouped["persistence"].first(),
        "observed": grouped["observed"].mean(),
        "observed_hours": grouped["observed"].count(),
        "leads": grouped["lead_hours"].count(),
    })
    valid = ((means["leads"] == 24) & (means["observed_hours"] >= MIN_HOURS_OF_MEAN) & means["persistence"].notna()
             & means["category"].notna())
    return means[valid].reset_index()


def contingency(forecast_exceeds: np.ndarray, observed_exceeds: np.ndarray) -> dict[str, float | int | None]:
    """Probability of detection, false alarm ratio and critical success index of a yes/no forecast."""
    hits = int(np.sum(forecast_exceeds & observed_exceeds))
    misses = int(np.sum(~forecast_exceeds & observed_exceeds))
    false_alarms = int(np.sum(forecast_exceeds & ~observed_exceeds))

    def ratio(numerator: int, denominator: int) -> float | None:
        return numerator / denominator if denominator else None

    return {"pod": ratio(hits, hits + misses), "far": ratio(false_alarms, hits + false_alarms),
            "csi": ratio(hits, hits + misses + false_alarms), "hits": hits, "misses": misses,
            "false_alarms": false_alarms}


def category_scores(means: pd.DataFrame) -> dict[str, Any]:
    """Category accuracy of the next 24 hours, and the exceedance of 75 and 150 µg/m³, for the category the model
    issued and for persistence; `mean_accuracy`, the accuracy the forecast's plain mean would have had."""
    observed = means["observed"].to_numpy()
    observed_category = category(observed)
    issued = means["category"].to_numpy(dtype="int64")
    result: dict[str, Any] = {"n": int(len(means)), "breakpoints": list(BREAKPOINTS),
                              "accuracy": None, "persistence_accuracy": None, "mean_accuracy": None, "exceedance": {}}
    if len(means):
        result["accuracy"] = float(np.mean(issued == observed_category))
        result["persistence_accuracy"] = float(np.mean(category(means["persistence"].to_numpy()) == observed_category))
        result["mean_accuracy"] = float(np.mean(category(means["forecast"].to_numpy()) == observed_category))
    for threshold in EXCEEDANCES:
        above = BREAKPOINTS.index(threshold) + 1  # the first category above the threshold
        result["exceedance"][str(threshold)] = {
            "model": contingency(issued >= above, observed > threshold),
            "persistence": contingency(means["persistence"].to_numpy() > threshold, observed > threshold),
        }
    return result


def interval_reliability(frame: pd.DataFrame, parts: int = 5) -> list[dict[str, Any]]:
    """Coverage of the 80 % intervals in each of `parts` equal-count groups of the scored forecasts by size."""
    cells = verified_cells(frame)
    inside = (cells["observed"] >= cells["lower_80"]) & (cells["observed"] <= cells["upper_80"])
    return coverage_by_size(cells["forecast"].to_numpy(), inside.to_numpy(), parts)


def verification(frame: pd.DataFrame, champions: list[dict[str, Any]]) -> dict[str, Any]:
    """Everything verification.json holds: by lead for the model and persistence, per station and per month of
    the origin, the categories of the next 24 hours' mean, and the champion history."""
    leads = int(frame["lead_hours"].max())
    months = frame["origin"].dt.strftime("%Y-%m")
    cells = verified_cells(frame)
    return {
        "scoring": "cells whose target hour was observed and whose origin reading exists; the same cells for the "
                   "model and persistence",
        "origins": int(frame["origin"].nunique()),
        "first_origin": frame["origin"].min().isoformat(),
        "last_origin": frame["origin"].max().isoformat(),
        "stations_scored": sorted(frame["station"].unique()),
        "cells": int(len(cells)),
        "by_lead": lead_scores(frame, leads),
        "persistence_by_lead": persistence_lead_scores(frame, leads),
        "stations": {station: lead_scores(group, leads) for station, group in frame.groupby("station")},
        "months": {month: lead_scores(group, leads) for month, group in frame.groupby(months)},
        "persistence_months": {month: persistence_lead_scores(group, leads) for month, group in frame.groupby(months)},
        "intervals_by_size": interval_reliability(frame),
        "categories": category_scores(next_day_means(frame)),
        "champions": champions,
    }


def verify_backtest(forecasts_path: Path, decisions: list[Decision], output_path: Path,
                    weather: str | None = None) -> Path:
    """verification.json of a backtest's issued forecasts and its champions, and what the weather model was fed
    (`weather`, None when it was not), with the share of forecasts it issued."""
    frame = pd.read_parquet(forecasts_path)
    result = verification(frame, [asdict(decision) for decision in decisions])
    result["weather"] = None if weather is None else {"fed": weather, "share_by_weather_model": float(
        (frame["model"] == ISSUED_TRACK).mean())}
    skill = [row["skill"] for row in result["by_lead"] if row["skill"] is not None]
    log.info("backtest verified: RMSE at lead 1 / %d h %.2f / %.2f, skill %.3f … %.3f", len(result["by_lead"]),
             result["by_lead"][0]["rmse"] or np.nan, result["by_lead"][-1]["rmse"] or np.nan, min(skill), max(skill))
    return storage.write_json(output_path, result)


@task(cache_policy=NO_CACHE, name="verify-backtest", task_run_name="verify the backtest's forecasts")
def verify_task(forecasts_path: Path, decisions: list[Decision], output_path: Path, weather: str | None = None) -> Path:
    return verify_backtest(forecasts_path, decisions, output_path, weather)
