"""Feature services: the contract between training and serving, versioned by name."""

from feast import FeatureService
from features import (
    aircraft_fv,
    aircraft_stats_fv,
    carrier_stats_fv,
    origin_stats_fv,
    route_stats_fv,
    weather_fv,
)

# Everything a prediction at scheduled departure may use: weather observed up to that hour, the
# aircraft's attributes, and delay statistics of flights that had landed by then. Nothing about
# the flight's own departure or arrival.
flight_delay_v1 = FeatureService(
    name="flight_delay_v1",
    features=[
        weather_fv[["temp", "dewp", "humid", "wind_dir", "wind_speed", "precip", "pressure", "visib"]],
        aircraft_fv[["plane_year", "engines", "seats", "engine_type", "manufacturer"]],
        carrier_stats_fv,
        route_stats_fv,
        origin_stats_fv,
        aircraft_stats_fv,
    ],
    description="Flight delay model inputs at scheduled departure (v1).",
    tags={"label": "arr_delay > 15", "prediction_time": "sched_dep_ts"},
)
