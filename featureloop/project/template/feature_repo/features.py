"""The feature repository: what the features are keyed by, where their values come from, and the
feature service a model is trained and served on (Feast definitions only)."""

import os
from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.data_format import ParquetFormat
from feast.types import Float64

# The offline store's tables, written by `featureloop prepare` (prepare.py).
OFFLINE = (
    Path(os.environ.get("FEATURELOOP_DATA_DIR", Path(__file__).resolve().parent.parent / "data")) / "offline"
)

sensor = Entity(
    name="sensor", join_keys=["sensor_id"], value_type=ValueType.STRING, description="One sensor."
)

sensor_stats_source = FileSource(
    name="sensor_stats_source",
    path=str(OFFLINE / "sensor_stats.parquet"),
    file_format=ParquetFormat(),
    timestamp_field="event_timestamp",
    description="Hourly rolling statistics of each sensor's readings.",
)

sensor_stats = FeatureView(
    name="sensor_stats",
    entities=[sensor],
    ttl=timedelta(days=1),  # older than a day: treated as unknown
    schema=[
        Field(name="vibration_mean_6h", dtype=Float64, description="Mean vibration, last 6 hours."),
        Field(name="vibration_max_6h", dtype=Float64, description="Highest vibration, last 6 hours."),
        Field(name="temperature_mean_6h", dtype=Float64, description="Mean temperature, last 6 hours."),
        Field(name="temperature_mean_24h", dtype=Float64, description="Mean temperature, last 24 hours."),
    ],
    source=sensor_stats_source,
)

sensor_v1 = FeatureService(
    name="sensor_v1",
    features=[sensor_stats],
    description="What a wear model may use at the time of a reading.",
)
