"""The backtest flow on the real embassy file with a small model: what it writes, that it reads nothing after an
origin (a file cut right after an origin issues the same forecasts up to it), that a killed backtest resumes where
it stopped, and that a Dask worker killed in the middle of a training does not fail it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.core.calibration import read_day_maps
from tasks.core.records import ISSUED_FORECAST_COLUMNS as FORECAST_COLUMNS
from tasks.publish.backtest_report import TABLE_LEADS

pytestmark = [pytest.mark.usefixtures("prefect_server"), pytest.mark.slow]
ZONE = "Asia/Shanghai"
# 12 nightly origins and a retraining every 5 days (3 trainings) of a small model: the machinery, not the skill.
SMALL = {"backtest_start": "2014-01-01", "backtest_end": "2014-01-12", "retrain_every": "5d", "max_epochs": 2,
         "patience": 1, "lstm_units": 8, "ensemble_size": 1}
CUT_AFTER = pd.Timestamp("2014-01-08 02:00", tz=ZONE)
ISSUED = ["station", "origin", "target_time", "lead_hours", "forecast", "lower_80", "upper_80", "persistence",
          "model_version"]


@pytest.fixture(scope="module")
def whole(real_csv, tmp_path_factory) -> tuple[Path, dict]:
    from flows.backtest import backtest_pm25

    home = tmp_path_factory.mktemp("backtest")
    return home, backtest_pm25(source=str(real_csv), home=str(home), **SMALL)


def forecasts(result: dict) -> pd.DataFrame:
    return pd.read_parquet(result["forecasts"])


def test_the_backtest_writes_every_issued_forecast_its_verification_and_report(whole, real_csv):
    import json

    home, result = whole
    frame = forecasts(result)
    assert list(frame.columns) == FORECAST_COLUMNS and str(frame["origin"].dt.tz) == ZONE
    assert frame["origin"].nunique() == 12 and (frame["origin"].dt.hour == 2).all()
    assert sorted(frame["lead_hours"].unique()) == list(range(1, 25))
    assert (frame["target_time"] - frame["origin"] == pd.to_timedelta(frame["lead_hours"], unit="h")).all()
    raw = pd.read_csv(real_csv)
    stamps = pd.to_datetime(raw[["year", "month", "day", "hour"]]).dt.tz_localize(ZONE)
    reading = pd.Series(raw["pm2.5"].to_numpy(), index=stamps)
    first = frame[frame["origin"] == frame["origin"].min()]
    assert first["persistence"].iloc[0] == reading[first["origin"].iloc[0]]
    pd.testing.assert_series_equal(first["observed"].reset_index(drop=True),
                                   reading[first["target_time"]].reset_index(drop=True), check_names=False)
    assert result["retrain_origins"] == 3 and result["trained"] == 3
    assert frame.groupby("origin")["model_version"].first().is_monotonic_increasing

    backtest_dir = Path(result["backtest_dir"])
    assert (home / "reports" / "backtest" / "latest").resolve() == backtest_dir.resolve()
    verification = json.loads(Path(result["verification"]).read_text())
    assert [row["lead_hours"] for row in verification["by_lead"]] == list(range(1, 25))
    assert set(verification["by_lead"][0]) >= {"n", "rmse", "mae", "bias", "skill", "coverage_80"}
    assert set(verification["categories"]["exceedance"]) == {"75", "150"}
    assert list(verification["stations"]) == ["US_Embassy"] and list(verification["months"]) == ["2014-01"]
    assert [entry["version"] for entry in verification["champions"]] == [1, 2, 3]
    assert verification["champions"][0]["reason"] == "no champion yet"
    served = {entry["version"]: entry["model_dir"] for entry in verification["champions"]}
    for (_, version), day in frame.groupby(["origin", "model_version"]):  # the serving champion's map of its mean
        day_map = read_day_maps(home / "models" / served[version])["US_Embassy"]
        assert (day["category_24h"] == day_map.categories(np.array([day["forecast"].mean()]))[0]).all()
    for figure in ("skill.png", "monthly_rmse.png", "reliability.png", "worst_week.png", "report.md"):
        assert (backtest_dir / figure).stat().st_size > 0


def test_the_backtest_run_page_carries_the_verification_table_the_report_and_the_progress(whole):
    import json

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    _, result = whole
    keys = ["backtest-verification", "backtest-report", "backtest-progress"]
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys)))
    run_prefix = result["backtest_id"].rsplit("-", 1)[1]  # the start of the flow run's id
    mine = {artifact.key: artifact for artifact in artifacts if str(artifact.flow_run_id).startswith(run_prefix)}
    assert set(mine) == set(keys)
    table = mine["backtest-verification"]
    assert table.type == "table" and [row["lead (h)"] for row in json.loads(table.data)] == list(TABLE_LEADS)
    report = mine["backtest-report"]
    assert report.type == "markdown" and report.data.count("](data:image/png;base64,") == 4
    progress = mine["backtest-progress"]
    assert progress.type == "progress" and float(progress.data) == 100.0


def test_a_file_cut_right_after_an_origin_issues_the_same_forecasts_up_to_it(whole, real_lines, tmp_path):
    """No peeking, the hard way: another home, another file that ends at the origin's hour, trained again from
    scratch; every forecast issued at that origin and before it is the same to the last bit."""
    from flows.backtest import backtest_pm25

    last = "2014,1,8,2,"
    cut_at = next(n for n, line in enumerate(real_lines) if line.split(",", 1)[1].startswith(last))
    cut = tmp_path / "embassy_until_2014-01-08T02.csv"
    cut.write_text("".join(real_lines[: cut_at + 1]), encoding="utf-8")
    result = backtest_pm25(source=str(cut), home=str(tmp_path / "home"), **SMALL)
    issued = forecasts(result)
    assert issued["origin"].max() == CUT_AFTER and result["trained"] == 2
    _, whole_result = whole
    expected = forecasts(whole_result)
    expected = expected[expected["origin"] <= CUT_AFTER].reset_index(drop=True)
    pd.testing.assert_frame_equal(issued[ISSUED], expected[ISSUED], check_exact=True)
    assert issued["observed"][issued["target_time"] > CUT_AFTER].isna().all()


def test_a_killed_backtest_resumes_where_it_stopped(whole, real_csv, tmp_path):
    from prefect.settings import PREFECT_API_URL

    from flows.backtest import backtest_pm25

    home = tmp_path / "home"
    flags = [f"--{name.replace('_', '-')}={value}" for name, value in SMALL.items()]
    environment = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    with open(tmp_path / "killed.log", "wb") as log:
        process = subprocess.Popen([str(Path(sys.executable).with_name("pm25")), "backtest", "--source", str(real_csv),
                                    "--home", str(home), *flags], env=environment, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 300
        while not list(home.glob("models/*/intervals.json")):
            assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "killed.log").read_text()
            time.sleep(0.2)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    done = len(list(home.glob("models/*/training.json")))  # complete models; a half-trained one is trained again
    assert 1 <= done < 3 and not (home / "reports" / "backtest" / "latest").exists()

    result = backtest_pm25(source=str(real_csv), home=str(home), **SMALL)
    assert result["trained"] == 3 - done
    pd.testing.assert_frame_equal(forecasts(result), forecasts(whole[1]), check_exact=True)


def test_a_dask_worker_killed_in_the_middle_of_a_training_does_not_fail_the_backtest(dask_cluster, whole, real_csv,
                                                                                     tmp_path):
    from distributed import Client
    from prefect_dask import DaskTaskRunner

    from flows.backtest import backtest_pm25

    home = tmp_path / "home"
    on_dask = backtest_pm25.with_options(task_runner=DaskTaskRunner(address=dask_cluster.address))
    outcome = {}
    running = threading.Thread(target=lambda: outcome.update(state=on_dask(source=str(real_csv), home=str(home),
                                                                           return_state=True, **SMALL)))
    running.start()
    deadline = time.monotonic() + 300
    with Client(dask_cluster.address) as client:
        while True:  # a training has begun (its log exists) and has not ended (no summary yet)
            training = [folder for folder in home.glob("models/*")
                        if (folder / "training_log.csv").exists() and not (folder / "training.json").exists()]
            busy = {address: keys for address, keys in client.processing().items() if keys}
            if training and busy:
                break
            assert running.is_alive() and time.monotonic() < deadline, "no training was seen in progress"
            time.sleep(0.05)
        names = {address: info["name"] for address, info in client.scheduler_info()["workers"].items()}
        victim = names[next(iter(busy))]
        os.killpg(dask_cluster.workers[victim].pid, signal.SIGKILL)
    running.join(timeout=600)
    state = outcome["state"]
    assert state.is_completed(), state.message
    result = state.result()
    assert len(list(home.glob("models/*/training.json"))) == 3
    # Seeded trainings in worker processes (one retried on another worker) issue the thread runner's forecasts, bit
    # for bit: every layer's seed is given explicitly (LayerSeeds), so the workers' background threads draw none of them.
    pd.testing.assert_frame_equal(forecasts(result), forecasts(whole[1]), check_exact=True)


def test_the_backtest_runs_on_the_multi_site_folder(multisite_dir, tmp_path):
    """Every station of the folder is forecast at every origin by the one network model, checked against its own
    file, and verified per station."""
    import json

    from flows.backtest import backtest_pm25

    result = backtest_pm25(source=str(multisite_dir), home=str(tmp_path / "home"), backtest_start="2016-03-01",
                           backtest_end="2016-03-03", retrain_every="0", max_epochs=1, lstm_units=8, ensemble_size=1)
    frame = forecasts(result)
    stations = sorted(path.name.split("_")[2] for path in multisite_dir.glob("PRSA_Data_*.csv"))
    assert sorted(frame["station"].unique()) == stations
    assert frame.groupby("station")["origin"].nunique().eq(3).all() and result["trained"] == 1
    station = stations[0]
    raw = pd.read_csv(next(multisite_dir.glob(f"PRSA_Data_{station}_*.csv")))
    stamps = pd.to_datetime(raw[["year", "month", "day", "hour"]]).dt.tz_localize(ZONE)
    reading = pd.Series(raw["PM2.5"].to_numpy(), index=stamps)
    own = frame[frame["station"] == station]
    pd.testing.assert_series_equal(own["persistence"].reset_index(drop=True),
                                   reading[own["origin"]].reset_index(drop=True), check_names=False)
    pd.testing.assert_series_equal(own["observed"].reset_index(drop=True),
                                   reading[own["target_time"]].reset_index(drop=True), check_names=False)
    verification = json.loads(Path(result["verification"]).read_text())
    assert sorted(verification["stations"]) == stations and verification["stations_scored"] == stations


def test_fed_forecast_files_the_backtest_issues_the_weather_models_forecasts_where_they_hold_every_hour(
        real_csv, tmp_path):
    """Forecasts issued an hour before each of the first six nights' origins (02:00 local is 18:00 UTC the day
    before), 48 hours each: those nights are the weather model's, the others the network model's, as the nightly
    process would issue them."""
    import json

    from flows.backtest import backtest_pm25

    rows = []
    for issued in pd.date_range("2013-12-31T17:00Z", periods=6, freq="D"):
        for lead in range(1, 49):
            rows.append({"station": "US_Embassy", "issued_at": issued.isoformat(),
                         "valid_at": (issued + pd.Timedelta(hours=lead)).isoformat(), "temperature": -5.0,
                         "dew_point": -20.0, "pressure": 1030.0, "wind_speed": 3.0, "wind_direction": 315.0,
                         "precipitation": 0.0})
    weather = tmp_path / "weather.csv"
    pd.DataFrame(rows).to_csv(weather, index=False)
    result = backtest_pm25(source=str(real_csv), home=str(tmp_path / "home"), weather=str(weather), **SMALL)
    frame = forecasts(result)
    by_night = frame.groupby("origin")["model"].agg(set)
    first_six = by_night.index < pd.Timestamp("2014-01-07 00:00", tz=ZONE)
    assert (by_night[first_six] == {"lstm_wx"}).all() and (by_night[~first_six] == {"lstm"}).all()
    verification = json.loads(Path(result["verification"]).read_text())
    assert verification["weather"] == {"fed": "fed a weather forecast as issued", "share_by_weather_model": 0.5}


def test_fed_the_observed_weather_the_backtest_says_it_is_an_upper_bound(real_csv, tmp_path):
    import json

    from flows.backtest import backtest_pm25

    result = backtest_pm25(source=str(real_csv), home=str(tmp_path / "home"), weather="perfect", **SMALL)
    assert (forecasts(result)["model"] == "lstm_wx").all()
    verification = json.loads(Path(result["verification"]).read_text())
    assert verification["weather"]["fed"].startswith("upper bound") and verification["weather"]["share_by_weather_model"] == 1
