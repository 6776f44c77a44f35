"""The `validate-pm25` flow: ingest and validate alone, producing the data-quality report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, unmapped

from flows.runners import task_runner_for
from tasks.core.home import HomeFolders
from tasks.core.settings import Settings
from tasks.core.weather import ISSUED_WEATHER, NOISY_WEATHER, PERFECT_WEATHER, ReplayWeather, WeatherFeed
from tasks.data.dataset import ValidatedDataset, dataset_task
from tasks.data.ingest import ingest_task
from tasks.data.sources import FetchedSource, fetch_with_retries, flatten, resolve_sources_task
from tasks.data.validate import validate_task
from tasks.data.open_meteo import OPEN_METEO, open_meteo_with_retries
from tasks.data.weather import combine_weather_task, store_weather_task

# The PM25_* variables of the process that imports the flows give their parameters' defaults, so a
# deployment's parameter form shows them and a worker's environment can change them.
DEFAULTS = Settings()
TASK_RUNNER = task_runner_for(DEFAULTS)


def fetched_sources(source: str, settings: Settings) -> list[FetchedSource]:
    """Resolve `source` (files, folders, globs, URLs) and fetch every file it names, retried on transient failures,
    as tasks of the calling flow run; each content once."""
    folders, sources = HomeFolders(settings.home), settings.sources
    entries = resolve_sources_task.submit(source).result()
    fetch = fetch_with_retries(sources.download_retries, sources.retry_delay_seconds)
    return flatten(fetch.map(entries, folders.source_cache, sources.download_timeout_seconds).result())


def stored_weather(settings: Settings, stations: list[str]) -> Path | None:
    """Resolve, fetch, check and store every weather forecast file of `settings.weather`, then combine them into the
    one table the models read (None when it is unset), as tasks of the calling flow run."""
    if not settings.weather:
        return None
    folders, sources = HomeFolders(settings.home), settings.sources
    if settings.weather == OPEN_METEO:
        fetch_feed = open_meteo_with_retries(sources.download_retries, sources.retry_delay_seconds)
        fetched = [fetch_feed.submit(stations, folders, sources, settings.open_meteo_url).result()]
    else:
        fetched = fetched_sources(settings.weather, settings)
    files = store_weather_task.map(fetched, unmapped(stations), folders, sources).result()
    return combine_weather_task.submit(files, folders).result()


def weather_feed(settings: Settings, stations: list[str]) -> WeatherFeed | None:
    """The weather forecasts the weather model may read (None when none are set). A feed that fails, down or refused,
    never fails the run: the feed says why, and the forecasts fall back to `lstm` with a warning."""
    if not settings.weather:
        return None
    if settings.weather in (PERFECT_WEATHER, NOISY_WEATHER):
        reason = (f"--weather {settings.weather} is a backtest's replay of the weather, not a forecast feed (every run "
                  "scores the perfect and noisy tracks already); give forecast files, URLs or open-meteo")
        get_run_logger().warning("forecasting without weather forecasts: %s", reason)
        return WeatherFeed(None, settings.weather_max_age_hours, reason)
    try:
        return WeatherFeed(stored_weather(settings, stations), settings.weather_max_age_hours)
    except Exception as error:  # noqa: BLE001  whatever stopped the feed, the forecast goes on without it
        get_run_logger().warning("weather forecasts %s unavailable, forecasting without them: %s", settings.weather, error)
        return WeatherFeed(None, settings.weather_max_age_hours, f"{type(error).__name__}: {error}")


def replay_weather(settings: Settings, stations: list[str]) -> ReplayWeather | None:
    """What a backtest feeds the weather model: `perfect` or `noisy` weather from the station files, or the stored
    forecast files (whose refusal fails the backtest: a replay is no night to fall back in); None without weather."""
    if not settings.weather:
        return None
    if settings.weather in (PERFECT_WEATHER, NOISY_WEATHER):
        return ReplayWeather(settings.weather, settings.seed)
    return ReplayWeather(ISSUED_WEATHER, settings.seed, stored_weather(settings, stations))


def validated_dataset(settings: Settings) -> ValidatedDataset:
    """Resolve, fetch, ingest and validate every source file (mapped tasks), then check and write the network's
    dataset, as tasks of the calling flow run, so its run page shows the data-quality tables."""
    folders, sources = HomeFolders(settings.home), settings.sources
    files = ingest_task.map(fetched_sources(sources.source, settings), folders, sources).result()
    validate_task.map(files, folders, sources).result()
    return dataset_task.submit(files, folders, sources).result()


@flow(name="validate-pm25", flow_run_name="validate {source}", task_runner=TASK_RUNNER)
def validate_pm25(
    source: str = DEFAULTS.source,
    home: str = str(DEFAULTS.home),
    download_retries: int = DEFAULTS.download_retries,
    retry_delay_seconds: float = DEFAULTS.retry_delay_seconds,
    download_timeout_seconds: float = DEFAULTS.download_timeout_seconds,
    expectations_dir: str = str(DEFAULTS.expectations_dir),
) -> dict[str, Any]:
    """Fetch, ingest and validate the source set; fails when a critical data-quality rule fails."""
    validated = validated_dataset(Settings.resolve(**{name: value for name, value in locals().items()}))
    get_run_logger().info("data quality report: %s", validated.summary.docs_index)
    return {"passed": True, "dataset": str(validated.dataset.path), **validated.summary.to_json()}
