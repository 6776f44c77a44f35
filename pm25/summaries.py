"""What `pm25 run`, `pm25 validate` and `pm25 forecast` print for a person: a few lines that say what happened
and where the files are (`--json` prints the flow's whole result instead, for machines)."""

from __future__ import annotations

from typing import Any

SUMMARY_HORIZONS = (1, 6, 24)
SUMMARY_MODELS = ("lstm", "persistence")


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
        "    " + f"{'':<12}" + "".join(f"{f'{h} h':>9}" for h in horizons),
        *("    " + f"{name:<12}" + "".join(f"{rows[name][f'rmse_h{h}']:>9.2f}" for h in horizons)
          for name in SUMMARY_MODELS if name in rows),
        f"  report:   {result['report']}",
        f"  forecast: {result['forecast'].removesuffix('.json')}.csv (.json, .png)",
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
    """The forecast itself, one line an hour per station with its 80 % interval, then where the files are."""
    lines = [f"PM2.5 forecast from {payload['origin']} by model v{payload['model_version']} (µg/m³, 80 % interval)"]
    for station in payload["stations"]:
        lines.append(f"{station}:")
        lines += [f"  {row['target_time'][:16].replace('T', ' ')}  {'+' + str(row['horizon_hours']):>3} h  {row['pm25']:>6.1f}  "
                  f"[{row['lower_80']:.1f} – {row['upper_80']:.1f}]"
                  for row in payload["forecasts"] if row["station"] == station]
    lines.append(f"files: {files['csv']}, {files['json']}, {files['plot']}")
    return "\n".join(lines)
