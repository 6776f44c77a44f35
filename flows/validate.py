"""The `validate-pm25` flow: ingest and validate alone, producing the data-quality report."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from tasks.ingest import fetch_with_retries, ingest_task
from tasks.layout import Layout
from tasks.settings import Settings
from tasks.validate import ValidationSummary, validate_task

# The PM25_* variables of the process that imports the flows give their parameters' defaults, so a
# deployment's parameter form shows them and a worker's environment can change them.
DEFAULTS = Settings()


def validated_table(settings: Settings) -> ValidationSummary:
    """Fetch, ingest and validate as tasks of the calling flow run, so its run page shows the data-quality table."""
    layout = Layout(settings.home)
    fetched = fetch_with_retries(settings.download_retries, settings.retry_delay_seconds)(
        settings.source, layout.source_cache, settings.download_timeout_seconds)
    raw_path = ingest_task(fetched, layout.raw, settings.expectations_dir, layout.data_docs)
    return validate_task(raw_path, settings.source, settings.expectations_dir, layout.data_docs, layout.validated)


@flow(name="validate-pm25", flow_run_name="validate {source}")
def validate_pm25(
    source: str = DEFAULTS.source,
    home: str = str(DEFAULTS.home),
    download_retries: int = DEFAULTS.download_retries,
    retry_delay_seconds: float = DEFAULTS.retry_delay_seconds,
    download_timeout_seconds: float = DEFAULTS.download_timeout_seconds,
    expectations_dir: str = str(DEFAULTS.expectations_dir),
) -> dict[str, Any]:
    """Fetch, ingest and validate the source; fails when a critical data-quality rule fails."""
    summary = validated_table(Settings.resolve(**{name: value for name, value in locals().items()}))
    get_run_logger().info("data quality report: %s", summary.docs_index)
    return summary.to_json()
