"""Which model answers which request: the champion, or in canary mode the challenger for the requests
whose routing key hashes into its share; in shadow mode the challenger also scores every request for
the log. Pure functions of the requests and the settings (no I/O); a request's routing key is the
project's (`Contract.routing_key`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from serving.contract import Contract
from serving.model import ServingModel

Role = Literal["champion", "canary"]


@dataclass(frozen=True)
class Group:
    """The requests (by position in the batch) one model answers, and in what role."""

    model: ServingModel
    indexes: list[int]
    role: Role


def route(
    bodies: list[Any],
    champion: ServingModel,
    challenger: ServingModel | None,
    mode: str,
    canary_share: float,
    contract: Contract,
) -> list[Group]:
    """The groups of a batch, each answered wholly by one model version (empty groups left out)."""
    if mode != "canary" or challenger is None:
        return [Group(champion, list(range(len(bodies))), "champion")]
    chosen = [contract.in_share(body, canary_share) for body in bodies]
    groups = [
        Group(champion, [i for i, c in enumerate(chosen) if not c], "champion"),
        Group(challenger, [i for i, c in enumerate(chosen) if c], "canary"),
    ]
    return [group for group in groups if group.indexes]


def shadow_of(mode: str, challenger: ServingModel | None) -> ServingModel | None:
    """The version that scores every request for the log only (shadow mode), if any."""
    return challenger if mode == "shadow" else None
