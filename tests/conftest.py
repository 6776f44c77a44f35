"""Shared fixtures: one Prefect test server per session, the real UCI file, and small generated tables."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# Prefect reads these when it is first imported, so they are set before any test module imports it.
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="pm25-prefect-home-"))
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from servers import free_loopback_port  # noqa: E402
from tasks.core.settings import PROJECT_ROOT  # noqa: E402

REAL_CSV = Path(__file__).resolve().parents[2] / "shared" / "data" / "PRSA_data_2010.1.1-2014.12.31.csv"
DASK = Path(sys.executable).with_name("dask")
UCI_COLUMNS = ["No", "year", "month", "day", "hour", "pm2.5", "DEWP", "TEMP", "PRES", "cbwd", "Iws", "Is", "Ir"]


@pytest.fixture(scope="session")
def prefect_server():
    """One temporary Prefect API for every test that runs a flow (it takes ~18 s to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def real_csv() -> Path:
    """The unmodified UCI file from ../shared/data (never copied into the project)."""
    given = os.environ.get("PM25_SOURCE", "")
    source = Path(given) if given and "://" not in given else REAL_CSV
    assert source.is_file(), f"the real UCI file is needed for this test: {source} is missing"
    return source.resolve()  # absolute: some tests change the working directory


@pytest.fixture(scope="session")
def trained_home(prefect_server, real_csv, tmp_path_factory) -> tuple[Path, dict]:
    """One real run of the training flow on the real file (one epoch), shared by the tests that read its outputs."""
    from flows.train import train_pm25

    home = tmp_path_factory.mktemp("home")
    return home, train_pm25(source=str(real_csv), home=str(home), max_epochs=1)


@pytest.fixture(scope="session")
def real_lines(real_csv: Path) -> list[str]:
    """The real file's lines (CRLF kept), to build broken variants of it at test time."""
    return real_csv.read_text(encoding="utf-8").splitlines(keepends=True)


def uci_frame(hours: int, start: str = "2010-01-01", seed: int = 0) -> pd.DataFrame:
    """A small table in the UCI layout with plausible random readings."""
    rng = np.random.default_rng(seed)
    stamps = pd.date_range(start, periods=hours, freq="h")
    return pd.DataFrame({
        "No": np.arange(1, hours + 1),
        "year": stamps.year, "month": stamps.month, "day": stamps.day, "hour": stamps.hour,
        "pm2.5": rng.integers(5, 300, hours).astype(float),
        "DEWP": rng.integers(-20, 20, hours), "TEMP": rng.integers(-10, 30, hours),
        "PRES": rng.integers(1000, 1035, hours).astype(float),
        "cbwd": rng.choice(["NW", "NE", "SE", "cv"], hours),
        "Iws": rng.uniform(0, 50, hours).round(2), "Is": 0, "Ir": 0,
    })[UCI_COLUMNS]


MULTISITE_DIR = REAL_CSV.parent / "beijing-multisite"
MULTISITE_COLUMNS = ["No", "year", "month", "day", "hour", "PM2.5", "PM10", "SO2", "NO2", "CO", "O3", "TEMP", "PRES",
                     "DEWP", "RAIN", "wd", "WSPM", "station"]


def multisite_frame(hours: int, station: str, start: str = "2013-03-01", seed: int = 0) -> pd.DataFrame:
    """A small station table in the UCI multi-site layout with plausible random readings."""
    rng = np.random.default_rng(seed)
    stamps = pd.date_range(start, periods=hours, freq="h")
    pollutants = {name: rng.uniform(2, 300, hours).round(1) for name in ("PM2.5", "PM10", "SO2", "NO2", "CO", "O3")}
    return pd.DataFrame({
        "No": np.arange(1, hours + 1),
        "year": stamps.year, "month": stamps.month, "day": stamps.day, "hour": stamps.hour, **pollutants,
        "TEMP": rng.uniform(-10, 30, hours).round(1), "PRES": rng.uniform(1000, 1035, hours).round(1),
        "DEWP": rng.uniform(-20, 20, hours).round(1), "RAIN": 0.0,
        "wd": rng.choice(["N", "NE", "E", "SE", "S", "SW", "W", "NW"], hours), "WSPM": rng.uniform(0, 8, hours).round(1),
        "station": station,
    })[MULTISITE_COLUMNS]


@pytest.fixture(scope="session")
def multisite_dir() -> Path:
    """The nine real multi-site station files from ../shared/data (never copied into the project)."""
    assert len(list(MULTISITE_DIR.glob("*.csv"))) >= 2, f"the real multi-site files are needed: {MULTISITE_DIR}"
    return MULTISITE_DIR


@pytest.fixture(scope="session")
def network_home(prefect_server, multisite_dir, tmp_path_factory) -> tuple[Path, dict]:
    """One real run of the training flow on the nine real station files (one epoch), shared by the tests that read it."""
    from flows.train import train_pm25

    home = tmp_path_factory.mktemp("network")
    return home, train_pm25(source=str(multisite_dir), home=str(home), max_epochs=1)


def csv_bytes(frame: pd.DataFrame, line_end: str = "\r\n") -> bytes:
    return frame.to_csv(index=False, lineterminator=line_end, na_rep="NA").encode()


def canonical_frame(frame: pd.DataFrame, station: str = "US_Embassy") -> pd.DataFrame:
    """A table in the UCI embassy layout, parsed and mapped onto the canonical columns."""
    from tasks.data.dataset import to_canonical
    from tasks.data.file_layouts import known_layouts
    from tasks.data.ingest import EXPECTATIONS_DIR, parse_csv

    embassy = next(layout for layout in known_layouts(EXPECTATIONS_DIR) if layout.name == "uci_embassy")
    return to_canonical(parse_csv(csv_bytes(frame), "tiny.csv"), embassy, station)


EMBASSY_INPUTS = ["dewp", "temp", "pres", "wind_run", "snow_hours", "rain_hours"]
EMBASSY_WINDS = ["NE", "NW", "SE", "cv"]


def start_dask(arguments: list[str], environment: dict[str, str], log: Path) -> subprocess.Popen:
    handle = open(log, "wb")
    return subprocess.Popen([str(DASK), *arguments], cwd=PROJECT_ROOT, env=environment, stdout=handle,
                            stderr=subprocess.STDOUT, start_new_session=True)


@dataclass(frozen=True)
class DaskCluster:
    address: str
    workers: dict[str, subprocess.Popen]  # by worker name; each its own process group (nanny and worker)


@pytest.fixture()
def dask_cluster(tmp_path) -> Iterator[DaskCluster]:
    """A real scheduler and two single-threaded worker processes that report to the test's Prefect API."""
    from distributed import Client
    from prefect.settings import PREFECT_API_URL

    port = free_loopback_port()
    address = f"tcp://127.0.0.1:{port}"
    environment = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "PREFECT_LOGGING_EXTRA_LOGGERS": "tasks"}
    processes = [start_dask(["scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"], environment,
                            tmp_path / "scheduler.log")]
    workers = {f"worker-{n}": start_dask(["worker", address, "--nworkers", "1", "--nthreads", "1", "--no-dashboard",
                                          "--name", f"worker-{n}"], environment, tmp_path / f"worker-{n}.log")
               for n in (1, 2)}
    processes += list(workers.values())
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with Client(address, timeout=5) as client:
                    client.wait_for_workers(2, timeout=max(1, deadline - time.monotonic()))
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
        yield DaskCluster(address, workers)
    finally:
        for process in processes[::-1]:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            process.wait(timeout=60)
