"""`pm25`: run the flows, list models, serve and trigger deployments from a shell.

Every flow parameter is a flag; flags beat PM25_* variables, which beat the defaults."""

from __future__ import annotations

import argparse
import gc
import inspect
import json
import logging
import os
import sys
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from prefect import Flow
from pydantic import ValidationError

from flows.runners import task_runner_for
from pm25.serve import DEFAULT_PORT, LOOPBACK, LocalPrefect
from pm25.serve import serve as serve_locally
from pm25.summaries import backtest_summary, forecast_summary, run_summary, validate_summary
from tasks.core import storage
from tasks.core.errors import EXPECTED_ERRORS, hide_expected_tracebacks
from tasks.core.home import HomeFolders
from tasks.core.progress import show_progress
from tasks.core.settings import OPERATOR_SETTINGS, Settings
from tasks.operate.registry import read_registry

NIGHTLY = "train-pm25/nightly"


def _flag_type(annotation: object) -> tuple[Callable[[str], object], list[str] | None]:
    if typing.get_origin(annotation) is typing.Literal:
        return str, list(typing.get_args(annotation))
    return (annotation if annotation in (int, float, str) else str), None


# Shorter flags for settings whose names say more than a command's context needs.
FLAG_ALIASES = {"backtest_start": "--start", "backtest_end": "--end"}


def add_settings_flags(parser: argparse.ArgumentParser, names: Sequence[str]) -> None:
    """One `--kebab-case` flag per settings field in `names`, typed and documented from the field."""
    for name in names:
        field = Settings.model_fields[name]
        convert, choices = _flag_type(field.annotation)
        flags = [FLAG_ALIASES[name]] if name in FLAG_ALIASES else []
        parser.add_argument(
            *flags, f"--{name.replace('_', '-')}", dest=name, type=convert, choices=choices, default=None,
            help=f"{field.description} [env PM25_{name.upper()}; default {field.default}]",
        )


def flow_parameter_names(flow_function: Callable) -> list[str]:
    return list(inspect.signature(flow_function).parameters)


def add_runner_flags(parser: argparse.ArgumentParser) -> None:
    """Where the command's mapped tasks run: settings of the run's process, not flow parameters."""
    add_settings_flags(parser, ["task_runner", "dask_address"])


def build_parser() -> argparse.ArgumentParser:
    from flows.backtest import backtest_pm25
    from flows.forecast import forecast_pm25
    from flows.train import train_pm25
    from flows.validate import validate_pm25

    parser = argparse.ArgumentParser(prog="pm25", description="Beijing PM2.5 forecasting pipeline.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="Train, evaluate, register and forecast once, locally (no Prefect server needed).")
    validate = commands.add_parser("validate", help="Ingest and validate the data; write the data-quality report.")
    forecast = commands.add_parser("forecast", help="Forecast the next hours at every station with the champion model, "
                                   "locally.")
    backtest = commands.add_parser("backtest", help="Replay the nightly process over past origins (retraining and "
                                   "promoting on its schedule, seeing only the data of each night) and verify the "
                                   "forecasts it would have issued, locally.")
    for command, flow_object, summary in ((run, train_pm25, run_summary), (validate, validate_pm25, validate_summary),
                                          (forecast, forecast_pm25, forecast_text),
                                          (backtest, backtest_pm25, backtest_text)):
        add_settings_flags(command, flow_parameter_names(flow_object.fn))
        add_runner_flags(command)
        command.add_argument("--json", action="store_true", help="Print the flow's whole result as JSON.")
        command.set_defaults(action=run_flow(flow_object, summary))
    models = commands.add_parser("models", help="List the registered model versions; * marks the champion.")
    add_settings_flags(models, ["home"])
    models.add_argument("--json", action="store_true", help="Print the registry as JSON.")
    models.set_defaults(action=list_models)
    trigger = commands.add_parser("trigger", help="Start a deployment's run on a Prefect server and follow it to the end.")
    trigger.add_argument("--deployment", default=NIGHTLY, help=f"flow/deployment name [default {NIGHTLY}]")
    trigger.add_argument("--api-url", default=os.environ.get("PREFECT_API_URL", LocalPrefect().api_url),
                         help="Prefect API of the server [env PREFECT_API_URL; default that of `make serve`]")
    add_settings_flags(trigger, flow_parameter_names(train_pm25.fn))
    trigger.set_defaults(action=trigger_deployment)
    automations = commands.add_parser("automations", help="What a lasting Prefect server needs to watch the nights.")
    automations_commands = automations.add_subparsers(dest="automations_command", required=True)
    apply = automations_commands.add_parser(
        "apply", help="Create or replace, by name, the zombie-run and alert automations and the training tasks' "
        "concurrency limit on the server (idempotent).")
    apply.add_argument("--api-url", default=os.environ.get("PREFECT_API_URL", LocalPrefect().api_url),
                       help="Prefect API of the server [env PREFECT_API_URL; default that of `make serve`]")
    add_settings_flags(apply, ["alert_webhook", "training_concurrency"])
    apply.set_defaults(action=apply_automations)
    serve = commands.add_parser("serve", help="Prefect server, work pool, deployments and a worker (Ctrl-C stops).")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"server port [default {DEFAULT_PORT}]")
    serve.add_argument("--host", default=LOOPBACK, help=f"address to listen on [default {LOOPBACK}]; any other "
                       "needs PREFECT_SERVER_API_AUTH_STRING")
    serve.set_defaults(action=lambda arguments, overrides: serve_locally(arguments.port, arguments.host))
    return parser


def run_flow(flow_object: Flow, summary: Callable[[dict[str, Any]], str]) -> Callable[[argparse.Namespace, dict[str, Any]], int]:
    """Run the flow with the flags as its parameters, on the task runner the settings name; print `summary` of
    its result, or the result itself as JSON with --json."""
    def action(arguments: argparse.Namespace, overrides: dict[str, Any]) -> int:
        parameters = {name: value for name, value in overrides.items() if name not in OPERATOR_SETTINGS}
        runner = {name: value for name, value in overrides.items() if name in ("task_runner", "dask_address")}
        chosen = flow_object.with_options(task_runner=task_runner_for(Settings.resolve(**runner))) if runner else flow_object
        progress = show_progress(sys.stderr)
        try:
            result = chosen(**parameters)
        finally:
            if progress is not None:
                logging.getLogger("tasks").removeHandler(progress)
        print(json.dumps(result, indent=2, default=str) if arguments.json else summary(result))
        return 0

    return action


def forecast_text(result: dict[str, Any]) -> str:
    return forecast_summary(storage.read_json(Path(result["json"])), result)


def backtest_text(result: dict[str, Any]) -> str:
    return backtest_summary(storage.read_json(Path(result["verification"])), result)


def list_models(arguments: argparse.Namespace, overrides: dict[str, Any]) -> int:
    models_dir = HomeFolders(Settings.resolve(**overrides).home).models
    registry = read_registry(models_dir)
    if arguments.json:
        print(json.dumps(registry.to_json(), indent=2))
        return 0
    if not registry.versions:
        print(f"no models registered in {models_dir}")
        return 0
    if registry.champion is not None:
        print(f"champion v{registry.champion} forecasts: {', '.join(registry.get(registry.champion).stations)}")
    print(f"{'':1} {'version':>7}  {'registered (UTC)':<25} {'stations':>8} {'RMSE h1':>7} {'RMSE h24':>8} "
          f"{'span score':>10}  decision")
    for entry in registry.versions:
        mark = "*" if entry.version == registry.champion else " "
        rmse = entry.test_rmse
        print(f"{mark} {'v' + str(entry.version):>7}  {entry.registered_at:<25} {len(entry.stations):>8} "
              f"{rmse.get('h1', float('nan')):>7.2f} {rmse.get('h24', float('nan')):>8.2f} "
              f"{entry.challenge['challenger']:>10.3f}  "
              f"{'promoted' if entry.challenge['promoted'] else 'rejected'}: {entry.challenge['reason']}")
    return 0


def trigger_deployment(arguments: argparse.Namespace, overrides: dict[str, Any]) -> int:
    from pm25.trigger import follow_deployment_run

    return follow_deployment_run(arguments.deployment, overrides, arguments.api_url)


def apply_automations(arguments: argparse.Namespace, overrides: dict[str, Any]) -> int:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from pm25.automations import apply_automations as apply_to_server

    with temporary_settings({PREFECT_API_URL: arguments.api_url}):
        for line in apply_to_server(Settings.resolve(**overrides)):
            print(f"{arguments.api_url}: {line}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse flags and run the chosen command; bad input exits 1 with one clear message, bad settings exit 2."""
    try:
        arguments = build_parser().parse_args(argv)
        hide_expected_tracebacks()  # after the flows' import has configured Prefect's logging
        overrides = {name: value for name, value in vars(arguments).items()
                     if name in Settings.model_fields and value is not None}
        Settings.resolve(**overrides)  # fail on bad settings before any flow starts
        return arguments.action(arguments, overrides)
    except EXPECTED_ERRORS as error:
        print(f"pm25 {arguments.command}: {error}", file=sys.stderr)
        return 1
    except ValidationError as error:
        print(f"pm25: invalid settings:\n{error}", file=sys.stderr)
        return 2


def console() -> None:
    """`pm25` as installed: run the command, then exit without the garbage collector walking every object that the
    imports created (pandas, Prefect, TensorFlow). By then the outputs are written; Prefect's own exit handlers
    still send its queued logs and stop its temporary server. The walk cost 1.3 s of a training run's exit, 0.35 s
    of a cached run's."""
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    console()
