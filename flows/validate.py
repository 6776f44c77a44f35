"""The `validate-pm25` flow: ingest and validate alone, producing the data-quality report."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from tasks.ingest import fetch_with_retries, ingest_task
from tasks.layout import Layout
from tasks.settings import Settings
from tasks.validate import validate_task


@flow(name="validate-pm25", flow_run_name="validate {source}")
def validate_pm25(
    source: str | None = None,
    home: str | None = None,
    download_retries: int | None = None,
    retry_delay_seconds: float | None = None,
    download_timeout_seconds: float | None = None,
    expectations_dir: str | None = None,
) -> dict[str, Any]:
    """Fetch, ingest and validate the source; fails when a critical data-quality rule fails."""
    settings = Settings.resolve(**{name: value for name, value in locals().items()})
    layout = Layout(settings.home)
    fetched = fetch_with_retries(settings.download_retries, settings.retry_delay_seconds)(settings.source, layout.source_cache, settings.download_timeout_seconds)
    raw_path = ingest_task(fetched, layout.raw)
    summary = validate_task(raw_path, settings.source, settings.expectations_dir, layout.data_docs, layout.validated)
    get_run_logger().info("data quality report: %s", summary.docs_index)
    return summary.to_json()
