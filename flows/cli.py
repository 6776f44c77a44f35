"""`pm25`: run the flows from a shell. Every settings field is a flag; flags beat PM25_* variables."""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import sys
import typing
from collections.abc import Callable, Sequence

from pydantic import ValidationError

from tasks.errors import DataError, SourceError
from tasks.settings import Settings


def _flag_type(annotation: object) -> tuple[Callable[[str], object], list[str] | None]:
    if typing.get_origin(annotation) is typing.Literal:
        return str, list(typing.get_args(annotation))
    return (annotation if annotation in (int, float, str) else str), None


def add_settings_flags(parser: argparse.ArgumentParser, names: Sequence[str]) -> None:
    """One `--kebab-case` flag per settings field in `names`, typed and documented from the field."""
    for name in names:
        field = Settings.model_fields[name]
        convert, choices = _flag_type(field.annotation)
        parser.add_argument(
            f"--{name.replace('_', '-')}", dest=name, type=convert, choices=choices, default=None,
            help=f"{field.description} [env PM25_{name.upper()}; default {field.default}]",
        )


def flow_parameter_names(flow_function: Callable) -> list[str]:
    return list(inspect.signature(flow_function).parameters)


def build_parser() -> argparse.ArgumentParser:
    from flows.train import train_pm25
    from flows.validate import validate_pm25

    parser = argparse.ArgumentParser(prog="pm25", description="Beijing PM2.5 forecasting pipeline.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="Train, evaluate and report once, locally (no Prefect server needed).")
    add_settings_flags(run, flow_parameter_names(train_pm25.fn))
    run.set_defaults(flow=train_pm25)
    validate = commands.add_parser("validate", help="Ingest and validate the data; write the data-quality report.")
    add_settings_flags(validate, flow_parameter_names(validate_pm25.fn))
    validate.set_defaults(flow=validate_pm25)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse flags, run the chosen flow, print its result as JSON; bad input exits 1 with one clear message."""
    arguments = build_parser().parse_args(argv)
    overrides = {name: value for name, value in vars(arguments).items() if name not in ("command", "flow")}
    try:
        Settings.resolve(**overrides)  # fail on bad settings before any flow starts
        result = arguments.flow(**{name: value for name, value in overrides.items() if value is not None})
    except (DataError, SourceError) as error:
        print(f"pm25 {arguments.command}: {error}", file=sys.stderr)
        return 1
    except ValidationError as error:
        print(f"pm25 {arguments.command}: invalid settings:\n{error}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    sys.exit(main())
