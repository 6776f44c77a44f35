"""File layouts: each known CSV layout, declared once in expectations/layouts.json, and how it maps onto the
canonical table (`station`, local `timestamp`, `pm25`, the weather, and the other pollutants where it has them).

A file's layout is recognised from its header alone; nothing depends on which stations, or how many, exist.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from tasks.core import storage
from tasks.core.errors import DataError

LAYOUTS_FILE = "layouts.json"
CALENDAR_COLUMNS = ("year", "month", "day", "hour")


@dataclass(frozen=True)
class FileLayout:
    """One declared layout: its columns (file name → type, canonical name, unit) and its suites."""

    name: str
    description: str
    suite: str
    structure_suite: str
    columns: dict[str, dict]
    wind_categories: tuple[str, ...]
    station_name: str | None = None  # the station of every file of this layout (one-station data sets)
    station_column: str | None = None  # else the column that names each row's station
    file_name_pattern: str | None = None  # where a file's name also names its station (group `station`)

    def of_type(self, *types: str) -> list[str]:
        return [column for column, spec in self.columns.items() if spec["type"] in types]

    @property
    def canonical_names(self) -> dict[str, str]:
        """File column → canonical column, for the columns that map onto the canonical table."""
        return {column: spec["canonical"] for column, spec in self.columns.items() if "canonical" in spec}

    @property
    def input_columns(self) -> list[str]:
        """Canonical numeric columns the models may read, in declared order."""
        return [spec["canonical"] for spec in self.columns.values() if spec.get("input")]

    def station_in_file_name(self, file_name: str) -> str | None:
        if not self.file_name_pattern:
            return None
        match = re.search(self.file_name_pattern, Path(file_name).name)
        return match.group("station") if match else None


@cache
def _load_layouts(path: Path) -> tuple[FileLayout, ...]:
    declared = storage.read_json(path)["layouts"]
    return tuple(
        FileLayout(name=name, description=spec["description"], suite=spec["suite"],
                   structure_suite=spec["structure_suite"], columns=spec["columns"],
                   wind_categories=tuple(spec["wind_categories"]), station_name=spec["station"].get("name"),
                   station_column=spec["station"].get("column"), file_name_pattern=spec["station"].get("file_name_pattern"))
        for name, spec in declared.items()
    )


def known_layouts(expectations_dir: Path) -> tuple[FileLayout, ...]:
    return _load_layouts((expectations_dir / LAYOUTS_FILE).resolve())


def recognise_layout(header: list[str], file_name: str, expectations_dir: Path) -> FileLayout:
    """The layout whose every column is in `header`.

    A header that misses only some of one layout's columns (most of them present) is refused as that layout
    with the missing columns named; one that resembles no layout is refused naming every layout known.
    """
    layouts = known_layouts(expectations_dir)
    present = set(header)
    complete = [layout for layout in layouts if set(layout.columns) <= present]
    if complete:
        return max(complete, key=lambda layout: len(layout.columns))
    closest = closest_layout(header, expectations_dir)
    if len(set(closest.columns) & present) > len(closest.columns) / 2:
        missing = [column for column in closest.columns if column not in present]
        raise DataError(f"{file_name}: required column(s) {missing} missing (rule: required columns of layout "
                        f"{closest.name}); found {header}")
    known = "; ".join(f"{layout.name} ({', '.join(layout.columns)})" for layout in layouts)
    raise DataError(f"{file_name}: no known file layout matches its header (rule: known layout); found columns "
                    f"{header}; known layouts: {known}")


def closest_layout(header: list[str], expectations_dir: Path) -> FileLayout:
    """The layout that shares the largest share of its columns with `header` (the first on a tie)."""
    present = set(header)
    return max(known_layouts(expectations_dir), key=lambda layout: len(set(layout.columns) & present) / len(layout.columns))
