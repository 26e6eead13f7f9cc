"""Which model answers which request: the champion, or in canary mode the challenger for the requests
whose routing key hashes into its share; in shadow mode the challenger also scores every request for
the log. Pure functions of the requests and the settings (no I/O); a request's routing key is the
project's (`Contract.routing_key`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from featureloop.release import tags as release_tags
from serving.contract import Contract
from serving.model import ServingModel

Role = Literal["champion", "canary"]


@dataclass(frozen=True)
class Plan:
    """Who may answer now: the champion always; the challenger in its stage (`shadow`: it scores every
    request for the log; `canary`: it answers the `share` of routing keys its hash selects). A
    release sets the stage on the challenger's version (`released`); without one the settings'
    manual switch does."""

    challenger: ServingModel | None
    stage: str  # champion, shadow or canary
    share: float
    released: bool = False

    def describe(self) -> dict[str, object] | None:
        """/ready's view: the challenger, its stage and (canary) share; None without a challenger."""
        if self.challenger is None:
            return None
        return {
            "challenger_version": self.challenger.version,
            "stage": self.stage,
            "canary_share": self.share if self.stage == "canary" else None,
            "from_release": self.released,
        }


def plan_of(held: tuple[ServingModel, dict[str, str]] | None, mode: str, share: float) -> Plan:
    """The plan from the challenger alias's version and tags (None: no challenger) and the settings'
    serving mode and canary share (used when no release has tagged the version)."""
    if held is None:
        return Plan(None, "champion", share)
    model, tags = held
    stage = tags.get(release_tags.STAGE)
    if stage is None:
        return Plan(model if mode != "champion" else None, mode, share)
    if stage in release_tags.LIVE:
        return Plan(model, stage, float(tags.get(release_tags.SHARE, share)), released=True)
    return Plan(None, "champion", share)  # a decided release: nobody but the champion


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
