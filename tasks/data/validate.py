"""Validate: run the Great Expectations suite in expectations/ over the ingested table and build Data Docs."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.core import storage
from tasks.core.errors import DataError
from tasks.core.home import HomeFolders, artifact_key
from tasks.core.records import NetworkSummary
from tasks.core.settings import SourceSettings
from tasks.data.file_layouts import known_layouts
from tasks.data.quarantine import refused, stored_file
from tasks.data.sources import IngestedFile

SUITE_FILE = "pm25_raw.json"
NETWORK_SUITE_FILE = "pm25_network.json"
STRUCTURE_SUITE_FILE = "pm25_structure.json"
DOCS_SITE = "pm25_data_quality"
ROW_ID_COLUMN = "source_row"
EXAMPLE_COUNT = 5
# Checkpoint arguments that do not identify what was checked.
_NOISE_KWARGS = {"batch_id", "column", "result_format"}

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RuleOutcome:
    """One expectation's result, in the words a data-quality report needs."""

    expectation: str
    column: str | None
    severity: str
    success: bool
    rule: dict[str, Any]
    unexpected_count: int | None = None
    example_rows: list[int] = field(default_factory=list)
    example_values: list[Any] = field(default_factory=list)
    observed_value: Any = None
    notes: str | None = None

    def describe(self) -> str:
        where = f"column {self.column!r}" if self.column else "the table"
        text = f"rule {self.expectation} {self.rule} failed on {where}"
        if self.unexpected_count:
            text += f": {self.unexpected_count} row(s), e.g. rows {self.example_rows} with values {self.example_values}"
        elif self.observed_value is not None:
            text += f": observed {self.observed_value}"
        return text


@dataclass(frozen=True)
class ValidationSummary:
    """What a validation found; `passed` is False when any critical rule failed."""

    passed: bool
    source: str
    data_path: str
    rows: int
    evaluated: int
    failed_critical: list[RuleOutcome]
    warnings: list[RuleOutcome]
    docs_index: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> ValidationSummary:
        outcomes = {key: [RuleOutcome(**item) for item in payload[key]] for key in ("failed_critical", "warnings")}
        return cls(**{**payload, **outcomes})

    def error_message(self) -> str:
        lines = [f"{self.source}: data failed {len(self.failed_critical)} critical data-quality rule(s):"]
        lines += [f"  - {outcome.describe()}" for outcome in self.failed_critical]
        lines.append(f"Data Docs: {self.docs_index}")
        return "\n".join(lines)


def load_suite_config(expectations_dir: Path, suite_file: str = SUITE_FILE) -> dict[str, Any]:
    return storage.read_json(expectations_dir / suite_file)


def _json_safe(value: Any) -> Any:
    """Numpy scalars and NaN from GX results, made JSON-safe."""
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value if isinstance(value, (int, float, str, bool, type(None))) else str(value)


def _outcome(result: Any) -> RuleOutcome:
    config = result.expectation_config
    details = result.result or {}
    index_rows = details.get("partial_unexpected_index_list") or []
    return RuleOutcome(
        expectation=config.type,
        column=config.kwargs.get("column"),
        severity=str(getattr(config.severity, "value", config.severity)),
        success=bool(result.success),
        rule={key: _json_safe(value) for key, value in config.kwargs.items() if key not in _NOISE_KWARGS},
        unexpected_count=_json_safe(details.get("unexpected_count")),
        example_rows=[int(row[ROW_ID_COLUMN]) for row in index_rows[:EXAMPLE_COUNT] if ROW_ID_COLUMN in row],
        example_values=_json_safe(details.get("partial_unexpected_list", [])[:EXAMPLE_COUNT]),
        observed_value=_json_safe(details.get("observed_value")),
        notes=(config.meta or {}).get("notes"),
    )


def run_checkpoint(frame: pd.DataFrame, suite_config: dict[str, Any], docs_dir: Path) -> list[RuleOutcome]:
    """Validate `frame` with the suite through a GX checkpoint that rebuilds the Data Docs site in `docs_dir`."""
    return run_checkpoints({"raw": frame}, suite_config, docs_dir)["raw"]


def run_checkpoints(frames: dict[str, pd.DataFrame], suite_config: dict[str, Any],
                    docs_dir: Path) -> dict[str, list[RuleOutcome]]:
    """Validate each frame (a station's rows, say) with the suite, one checkpoint per frame in one GX context,
    so the Data Docs site in `docs_dir` lists every frame's results."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    context.add_data_docs_site(
        site_name=DOCS_SITE,
        site_config={
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir.resolve())},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    source = context.data_sources.add_pandas("pm25")
    suite = context.suites.add(gx.ExpectationSuite(**suite_config))
    outcomes = {}
    for name, frame in frames.items():
        batch = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("all")
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=f"{suite.name}-{name}", data=batch, suite=suite))
        checkpoint = context.checkpoints.add(
            gx.Checkpoint(
                name=f"{suite.name}-{name}",
                validation_definitions=[definition],
                actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=[DOCS_SITE])],
                result_format={
                    "result_format": "SUMMARY",
                    "unexpected_index_column_names": [ROW_ID_COLUMN],
                    "partial_unexpected_count": EXAMPLE_COUNT,
                },
            )
        )
        result = checkpoint.run(batch_parameters={"dataframe": frame})
        outcomes[name] = [_outcome(item) for run in result.run_results.values() for item in run.results]
    return outcomes


def validate_table(data_path: Path, source: str, suite_path: Path, docs_dir: Path) -> ValidationSummary:
    """Run the suite in `suite_path` over the ingested Parquet table and summarise critical failures and warnings."""
    frame = pd.read_parquet(data_path)
    outcomes = run_checkpoint(frame, storage.read_json(suite_path), docs_dir)
    failed = [outcome for outcome in outcomes if not outcome.success]
    critical = [outcome for outcome in failed if outcome.severity == "critical"]
    return ValidationSummary(
        passed=not critical,
        source=source,
        data_path=str(data_path),
        rows=len(frame),
        evaluated=len(outcomes),
        failed_critical=critical,
        warnings=[outcome for outcome in failed if outcome.severity != "critical"],
        docs_index=str(docs_dir / "index.html"),
    )


def report_structure_failure(text_table: pd.DataFrame, source: str, expectations_dir: Path, docs_dir: Path,
                             suite_file: str = STRUCTURE_SUITE_FILE) -> str:
    """Run a structure suite over a refused file's cells (as text) so the Data Docs show why; return their index."""
    outcomes = run_checkpoint(text_table, load_suite_config(expectations_dir, suite_file), docs_dir)
    failed = [outcome for outcome in outcomes if not outcome.success]
    summary = ValidationSummary(passed=False, source=source, data_path="", rows=len(text_table), evaluated=len(outcomes),
                                failed_critical=failed, warnings=[], docs_index=str(docs_dir / "index.html"))
    storage.write_json(docs_dir / "summary.json", summary.to_json())
    return summary.docs_index


def verdict_path(data_path: Path, suite_path: Path, cache_dir: Path) -> Path:
    """Where a passing verdict of this table against this suite is kept (keyed by both contents)."""
    suite_sha = storage.sha256_file(suite_path)
    return cache_dir / f"{storage.fingerprint(storage.sha256_file(data_path), suite_sha)}.json"


def validate_with_cache(data_path: Path, source: str, suite_path: Path, docs_dir: Path, cache_dir: Path,
                        on_summary: Callable[[ValidationSummary], None] | None = None) -> ValidationSummary:
    """Validate, reusing a passing verdict for the same table bytes and suite; raise DataError on failure.

    `on_summary` sees the summary before a failure is raised (the Prefect task publishes it as an artifact).
    """
    cached = verdict_path(data_path, suite_path, cache_dir)
    if cached.exists() and (docs_dir / "index.html").exists():
        summary = ValidationSummary.from_json(storage.read_json(cached))
        log.info("validation cache hit: %s already passed this suite (%s)", data_path.name, cached.name)
    else:
        summary = validate_table(data_path, source, suite_path, docs_dir)
        storage.write_json(docs_dir / "summary.json", summary.to_json())
        if summary.passed:
            storage.write_json(cached, summary.to_json())
    for warning in summary.warnings:
        log.warning("data-quality warning: %s", warning.describe())
    if on_summary is not None:
        on_summary(summary)
    if not summary.passed:
        raise DataError(summary.error_message())
    log.info("data passed %d data-quality rules; Data Docs at %s", summary.evaluated, summary.docs_index)
    return summary


def validate_network(tables: dict[str, pd.DataFrame], expectations_dir: Path, docs_dir: Path) -> NetworkSummary:
    """Run the network suite over each station's canonical rows (one checkpoint each, one Data Docs site).

    A failed critical rule refuses the run, naming the station; a failed rule marked `station_rule: leave_out`
    leaves that station out, with a warning.
    """
    suite = load_suite_config(expectations_dir, NETWORK_SUITE_FILE)
    leave_out_rules = {json.dumps([item["type"], item["kwargs"]], sort_keys=True) for item in suite["expectations"]
                       if (item.get("meta") or {}).get("station_rule") == "leave_out"}
    frames = {station: table.assign(source_row=range(1, len(table) + 1)) for station, table in tables.items()}
    outcomes = run_checkpoints(frames, suite, docs_dir)
    docs_index = str(docs_dir / "index.html")
    critical = [f"station {station}: {outcome.describe()}" for station, results in outcomes.items()
                for outcome in results if not outcome.success and outcome.severity == "critical"]
    if critical:
        raise DataError("the network failed {} critical data-quality rule(s):\n{}\nData Docs: {}".format(
            len(critical), "\n".join(f"  - {line}" for line in critical), docs_index))
    left_out, warnings = {}, {}
    for station, results in outcomes.items():
        for outcome in (item for item in results if not item.success):
            rule = {**outcome.rule, **({"column": outcome.column} if outcome.column else {})}
            if json.dumps([outcome.expectation, rule], sort_keys=True) in leave_out_rules:
                left_out[station] = f"{outcome.describe()} ({outcome.notes or 'station rule'})"
            else:
                warnings.setdefault(station, []).append(outcome.describe())
    for station, reason in left_out.items():
        log.warning("data-quality warning: station %s is left out of this run: %s", station, reason)
    return NetworkSummary(stations=[station for station in tables if station not in left_out], left_out=left_out, warnings=warnings,
                          evaluated=sum(len(results) for results in outcomes.values()), docs_index=docs_index)


def summary_rows(summary: ValidationSummary) -> list[dict[str, Any]]:
    """The data-quality table: each failed or warning rule, then one row for the rules that passed."""
    rows = [{"rule": outcome.expectation, "column": outcome.column or "(table)", "severity": outcome.severity,
             "result": "failed", "unexpected_rows": outcome.unexpected_count,
             "example_rows": ", ".join(map(str, outcome.example_rows))}
            for outcome in [*summary.failed_critical, *summary.warnings]]
    passed = summary.evaluated - len(rows)
    rows.append({"rule": f"{passed} other rules", "column": "", "severity": "", "result": "passed",
                 "unexpected_rows": 0, "example_rows": ""})
    return rows


def file_docs_dir(docs_dir: Path, station: str, sha256: str) -> Path:
    """Each source file's Data Docs site, beside the network's (docs_dir/index.html)."""
    return docs_dir / "files" / f"{station}-{sha256[:12]}"


@task(cache_policy=NO_CACHE, name="validate", task_run_name="validate {ingested.station} ({ingested.sha256:.12})")
def validate_task(ingested: IngestedFile, folders: HomeFolders, sources: SourceSettings) -> ValidationSummary:
    """One source file against its layout's suite; its Data Docs go to `file_docs_dir`. A refused file is
    quarantined (see tasks/data/quarantine.py)."""
    from prefect.artifacts import create_table_artifact

    def publish(summary: ValidationSummary) -> None:
        verdict = "passed" if summary.passed else f"FAILED {len(summary.failed_critical)} critical rule(s)"
        create_table_artifact(
            summary_rows(summary), key=f"pm25-data-quality-{artifact_key(ingested.station)}",
            description=f"Data quality of {summary.source} ({summary.rows} rows): {verdict}, "
                        f"{len(summary.warnings)} warning(s). Data Docs: {summary.docs_index}",
        )

    suite = next(layout.suite for layout in known_layouts(sources.expectations_dir) if layout.name == ingested.layout)
    try:
        return validate_with_cache(ingested.path, ingested.origin, sources.expectations_dir / suite,
                                   file_docs_dir(folders.data_docs, ingested.station, ingested.sha256),
                                   folders.validated, on_summary=publish)
    except DataError as error:
        raise refused(error, stored_file(folders.source_cache, ingested.sha256, ingested.origin, ingested.path),
                      folders.rejected, sources.rejected_max_bytes) from None
