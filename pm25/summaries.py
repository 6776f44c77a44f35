"""What `pm25 run`, `pm25 validate`, `pm25 forecast` and `pm25 backtest` print for a person: a few lines that say what happened
and where the files are (`--json` prints the flow's whole result instead, for machines)."""

from __future__ import annotations

from typing import Any

SUMMARY_HORIZONS = (1, 6, 24)
SUMMARY_MODELS = ("lstm", "lstm_wx", "lstm_wx_noisy", "lstm_wx_perfect", "persistence")
# What a summary row says beside the scores of a weather track that is not a forecast skill.
SUMMARY_NOTES = {"lstm_wx_perfect": "upper bound: fed the observed weather", "lstm_wx_noisy": "observed weather + errors"}


def run_summary(result: dict[str, Any]) -> str:
    """The run folder, the model version and the promotion decision, RMSE at 1 / 6 / 24 h of the model and
    persistence, and where the forecast is."""
    promoted = "promoted to champion" if result["promoted"] else "not promoted"
    stations = result["stations"]
    left_out = result.get("left_out") or {}
    rows = {row["model"]: row for row in result["metrics"]}
    horizons = [h for h in SUMMARY_HORIZONS if f"rmse_h{h}" in rows["lstm"]]
    lines = [
        f"run {result['run_id']}: {len(stations)} station(s){': ' + ', '.join(stations) if len(stations) <= 12 else ''}",
        *([f"  left out: {', '.join(left_out)} (see the report and the Data Docs)"] if left_out else []),
        f"  model v{result['model_version']}, {promoted}: {result['decision']}",
        f"  test RMSE (µg/m³{', pooled over the stations' if len(stations) > 1 else ''}):",
        "    " + f"{'':<16}" + "".join(f"{f'{h} h':>9}" for h in horizons),
        *("    " + f"{name:<16}" + "".join(f"{rows[name][f'rmse_h{h}']:>9.2f}" for h in horizons)
          + (f"   ({SUMMARY_NOTES[name]})" if name in SUMMARY_NOTES else "")
          for name in SUMMARY_MODELS if name in rows),
        f"  report:   {result['report']}",
        f"  forecast: {result['forecast'].removesuffix('.json')}.csv (.json, .png{', _map.png' if result.get('forecast_map') else ''})",
    ]
    return "\n".join(lines)


def validate_summary(result: dict[str, Any]) -> str:
    left_out = result["left_out"]
    lines = [f"data passed: {len(result['stations'])} station(s) kept ({', '.join(result['stations'])})",
             *(f"  left out: {station}: {reason}" for station, reason in left_out.items()),
             *(f"  warning: {station}: {warning}" for station, warnings in result["warnings"].items()
               for warning in warnings),
             f"  dataset:   {result['dataset']}",
             f"  Data Docs: {result['docs_index']}"]
    return "\n".join(lines)


def forecast_summary(payload: dict[str, Any], files: dict[str, str]) -> str:
    """The forecast itself, per station the model that made it (and the weather issue it read, or why it read none),
    one line an hour with its 80 % interval, then where the files are."""
    lines = [f"PM2.5 forecast from {payload['origin']} by model v{payload['model_version']} (µg/m³, 80 % interval)"]
    for station in payload["stations"]:
        rows = [row for row in payload["forecasts"] if row["station"] == station]
        model = rows[0].get("model", "lstm")
        issues = [row["weather_issued_at"] for row in rows if row.get("weather_issued_at")]  # UTC, ISO 8601
        issued = f", weather forecast issued {max(issues)}" if issues else ""
        fallback = payload.get("weather_fallbacks", {}).get(station)
        lines.append(f"{station} ({model}{issued}{f'; not lstm_wx: {fallback}' if fallback else ''}):")
        lines += [f"  {row['target_time'][:16].replace('T', ' ')}  {'+' + str(row['horizon_hours']):>3} h  {row['pm25']:>6.1f}  "
                  f"[{row['lower_80']:.1f} – {row['upper_80']:.1f}]"
                  for row in payload["forecasts"] if row["station"] == station]
    lines.append("files: " + ", ".join(path for path in (files["csv"], files["json"], files["plot"], files.get("map")) if path))
    return "\n".join(lines)


def backtest_summary(verification: dict[str, Any], result: dict[str, Any]) -> str:
    """The backtest's folder, its origins and retrainings, RMSE and skill at 1 / 6 / 24 h against persistence,
    the category scores of the next day's mean, and where the report is."""
    model = {row["lead_hours"]: row for row in verification["by_lead"]}
    persistence = {row["lead_hours"]: row for row in verification["persistence_by_lead"]}
    leads = [lead for lead in SUMMARY_HORIZONS if lead in model]
    categories = verification["categories"]
    exceed = categories["exceedance"]["75"]

    def number(value: float | None, digits: int = 3) -> str:
        return "–" if value is None else f"{value:.{digits}f}"

    lines = [
        f"backtest {result['backtest_id']}: {result['origins']} origins from {verification['first_origin'][:16]} to "
        f"{verification['last_origin'][:16]}, {len(result['stations'])} station(s)",
        f"  {result['retrain_origins']} retrain origin(s), {result['trained']} trained now (the rest reused), "
        f"{result['promoted']} promoted",
        "    " + f"{'':<14}" + "".join(f"{f'{lead} h':>9}" for lead in leads),
        "    " + f"{'RMSE lstm':<14}" + "".join(f"{number(model[lead]['rmse'], 2):>9}" for lead in leads),
        "    " + f"{'RMSE persist.':<14}" + "".join(f"{number(persistence[lead]['rmse'], 2):>9}" for lead in leads),
        "    " + f"{'skill':<14}" + "".join(f"{number(model[lead]['skill']):>9}" for lead in leads),
        f"  next 24 h category accuracy {number(categories['accuracy'])} (persistence "
        f"{number(categories['persistence_accuracy'])}); CSI above 75 µg/m³ {number(exceed['model']['csi'])} "
        f"(persistence {number(exceed['persistence']['csi'])})",
        f"  report:    {result['report']}",
        f"  forecasts: {result['forecasts']}",
    ]
    return "\n".join(lines)
