"""Which model answers which request (serving/routing.py): pure functions of the batch and the mode."""

from __future__ import annotations

from typing import Any

from featureloop.project.spec import load_spec
from featureloop.settings import PROJECT_ROOT
from serving.contract import build_contract
from serving.model import ServingModel
from serving.routing import route, shadow_of

CONTRACT = build_contract(load_spec(PROJECT_ROOT / "feature_repo"))


def _model(version: str) -> ServingModel:
    return ServingModel(name="m", version=version, pipeline=None, numeric=[], categorical=[],
                        feature_service="s", load_seconds=0.0)  # fmt: skip


def _request(tailnum: str) -> Any:
    flight: dict[str, Any] = {"tailnum": tailnum, "origin": "EWR", "dest": "BOS", "carrier": "UA",
                              "distance": 200.0, "sched_hour": 8, "day_of_week": 1}  # fmt: skip
    return CONTRACT.request_model(flights=[flight])


CHAMPION, CHALLENGER = _model("1"), _model("2")
BATCH = [_request(f"N{i}") for i in range(400)]


def test_the_champion_answers_everything_outside_canary_mode() -> None:
    for mode, challenger in (("champion", CHALLENGER), ("shadow", CHALLENGER), ("canary", None)):
        (group,) = route(BATCH, CHAMPION, challenger, mode, 0.5, CONTRACT)
        assert group.model is CHAMPION and group.role == "champion" and group.indexes == list(range(400))


def test_canary_splits_by_a_stable_hash_of_the_aircraft_near_its_share() -> None:
    groups = route(BATCH, CHAMPION, CHALLENGER, "canary", 0.25, CONTRACT)
    by_role = {g.role: g for g in groups}
    assert by_role["canary"].model is CHALLENGER and by_role["champion"].model is CHAMPION
    assert sorted(by_role["canary"].indexes + by_role["champion"].indexes) == list(range(400))
    assert 60 <= len(by_role["canary"].indexes) <= 140  # 25% of 400, give or take the hash
    assert all(CONTRACT.in_share(BATCH[i], 0.25) for i in by_role["canary"].indexes)
    again = route(list(reversed(BATCH)), CHAMPION, CHALLENGER, "canary", 0.25, CONTRACT)
    assert {399 - i for g in again if g.role == "canary" for i in g.indexes} == set(by_role["canary"].indexes)


def test_no_empty_groups_and_shadow_only_in_shadow_mode() -> None:
    assert [g.role for g in route(BATCH, CHAMPION, CHALLENGER, "canary", 0.0, CONTRACT)] == ["champion"]
    assert [g.role for g in route(BATCH, CHAMPION, CHALLENGER, "canary", 1.0, CONTRACT)] == ["canary"]
    assert shadow_of("shadow", CHALLENGER) is CHALLENGER
    assert shadow_of("canary", CHALLENGER) is None and shadow_of("shadow", None) is None
