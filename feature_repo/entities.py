"""Entities of the flights domain: what a flight's features are keyed by."""

from feast import Entity, ValueType

aircraft = Entity(
    name="aircraft",
    join_keys=["tailnum"],
    value_type=ValueType.STRING,
    description="An aircraft, by its tail number.",
)
origin_airport = Entity(
    name="origin_airport",
    join_keys=["origin"],
    value_type=ValueType.STRING,
    description="A New York departure airport (EWR, JFK, LGA).",
)
carrier = Entity(
    name="carrier",
    join_keys=["carrier"],
    value_type=ValueType.STRING,
    description="An airline, by its two-letter carrier code.",
)
route = Entity(
    name="route",
    join_keys=["route"],
    value_type=ValueType.STRING,
    description="An origin-destination pair such as EWR-IAH.",
)
