"""Texas housing: a city's market as the last published months describe it (Feast definitions only)."""

import os
from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.data_format import ParquetFormat
from feast.types import Float64

OFFLINE = (
    Path(os.environ.get("FEATURELOOP_DATA_DIR", Path(__file__).resolve().parent.parent / "data")) / "offline"
)

city = Entity(name="city", join_keys=["city"], value_type=ValueType.STRING, description="A Texas city.")

city_market_source = FileSource(
    name="city_market_source",
    path=str(OFFLINE / "city_market.parquet"),
    file_format=ParquetFormat(),
    timestamp_field="event_timestamp",
    description="Monthly figures of each city, stamped when the month is over (published).",
)

city_market = FeatureView(
    name="city_market",
    entities=[city],
    ttl=timedelta(days=62),  # a city that stops reporting for two months: its figures are unknown
    schema=[
        Field(
            name="median_price", dtype=Float64, description="Median sale price, last published month (USD)."
        ),
        Field(name="sales", dtype=Float64, description="Sales, last published month."),
        Field(name="listings", dtype=Float64, description="Active listings, last published month."),
        Field(name="inventory", dtype=Float64, description="Months of inventory, last published month."),
        Field(
            name="volume_musd", dtype=Float64, description="Sales volume, last published month (million USD)."
        ),
        Field(name="median_price_3m", dtype=Float64, description="Median price, mean of the last 3 months."),
        Field(name="sales_3m", dtype=Float64, description="Sales, mean of the last 3 months."),
        Field(name="listings_3m", dtype=Float64, description="Listings, mean of the last 3 months."),
        Field(name="median_change_12m", dtype=Float64, description="Median price change over 12 months."),
    ],
    source=city_market_source,
)

housing_v1 = FeatureService(
    name="housing_v1",
    features=[city_market],
    description="What a next-month median price forecast may use at the start of the month.",
)
