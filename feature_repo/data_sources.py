"""Offline sources: the parquet files that `featureloop prepare` writes (one dataset version).

The folder is FEATURELOOP_DATA_DIR/offline (default: the project's data/offline); Feast stores the
absolute path at `feast apply` time, so apply again after moving the data.
"""

import os
from pathlib import Path

from feast import FileSource
from feast.data_format import ParquetFormat

_DATA_DIR = Path(os.environ.get("FEATURELOOP_DATA_DIR", Path(__file__).resolve().parent.parent / "data"))
OFFLINE_DIR = _DATA_DIR / "offline"


def _parquet(name: str, description: str) -> FileSource:
    return FileSource(
        name=f"{name}_source",
        path=str(OFFLINE_DIR / f"{name}.parquet"),
        file_format=ParquetFormat(),
        timestamp_field="event_timestamp",
        description=description,
    )


weather_source = _parquet("weather", "Hourly weather observations per origin airport.")
aircraft_source = _parquet("aircraft", "Aircraft attributes from the FAA register (static).")
carrier_stats_source = _parquet("carrier_stats", "Rolling delay statistics per carrier.")
route_stats_source = _parquet("route_stats", "Rolling delay statistics per route.")
origin_stats_source = _parquet("origin_stats", "Rolling delay statistics per origin airport.")
aircraft_stats_source = _parquet("aircraft_stats", "Rolling delay statistics per aircraft.")
