"""Which model answers which request: the champion, or in canary mode the challenger for the requests
whose routing key hashes into its share; in shadow mode the challenger also scores every request for
the log. Pure functions of the requests and the settings (no I/O)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from serving.model import ServingModel
from serving.schemas import PredictRequest

Role = Literal["champion", "canary"]


@dataclass(frozen=True)
class Group:
    """The requests (by position in the batch) one model answers, and in what role."""

    model: ServingModel
    indexes: list[int]
    role: Role


def in_canary(body: PredictRequest, share: float) -> bool:
    """Stable routing: the request's first aircraft (or flight id) hashed into [0, 1) below `share`."""
    first = body.flights[0]
    key = first.tailnum or first.flight_id or f"{first.carrier}-{first.origin}-{first.dest}"
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64 < share


def route(
    bodies: list[PredictRequest],
    champion: ServingModel,
    challenger: ServingModel | None,
    mode: str,
    canary_share: float,
) -> list[Group]:
    """The groups of a batch, each answered wholly by one model version (empty groups left out)."""
    if mode != "canary" or challenger is None:
        return [Group(champion, list(range(len(bodies))), "champion")]
    chosen = [in_canary(body, canary_share) for body in bodies]
    groups = [
        Group(champion, [i for i, c in enumerate(chosen) if not c], "champion"),
        Group(challenger, [i for i, c in enumerate(chosen) if c], "canary"),
    ]
    return [group for group in groups if group.indexes]


def shadow_of(mode: str, challenger: ServingModel | None) -> ServingModel | None:
    """The version that scores every request for the log only (shadow mode), if any."""
    return challenger if mode == "shadow" else None
