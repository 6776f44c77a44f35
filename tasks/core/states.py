"""A stage that reused its content-addressed files ends in Prefect's own `Cached` state, so the UI and the API
say so; the files stay the results, Prefect keeps no copy of its own."""

from __future__ import annotations

from typing import Any, TypeVar

R = TypeVar("R")


def finish(result: R, cache_hit: bool, stage: str) -> R | Any:
    """What a task returns: `result` itself, or, on a cache hit, a Completed state named Cached that carries it."""
    if not cache_hit:
        return result
    from prefect.states import Completed

    return Completed(name="Cached", data=result, message=f"{stage}: reused the files of an earlier run with the same inputs")
