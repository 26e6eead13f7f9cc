"""Which model answers which request (serving/routing.py): pure functions of the batch and the mode."""

from __future__ import annotations

from typing import Any

from featureloop.project.spec import load_spec
from featureloop.settings import PROJECT_ROOT
from serving.contract import build_contract
from serving.model import ServingModel
from serving.routing import Plan, plan_of, route

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


def test_a_release_sets_the_stage_on_the_version_and_overrides_the_manual_switch() -> None:
    # No challenger alias: the champion alone, whatever the settings say.
    assert plan_of(None, "canary", 0.5) == Plan(None, "champion", 0.5)
    # A challenger no release tagged: the settings' manual switch (as before releases existed).
    assert plan_of((CHALLENGER, {}), "shadow", 0.1) == Plan(CHALLENGER, "shadow", 0.1)
    assert plan_of((CHALLENGER, {}), "champion", 0.1) == Plan(None, "champion", 0.1)
    # A release's stage and share win over the settings.
    canary = plan_of(
        (CHALLENGER, {"release.stage": "canary", "release.canary_share": "0.2"}), "champion", 0.5
    )
    assert canary == Plan(CHALLENGER, "canary", 0.2, released=True)
    assert canary.describe() == {"challenger_version": "2", "stage": "canary", "canary_share": 0.2,
                                 "from_release": True}  # fmt: skip
    shadow = plan_of((CHALLENGER, {"release.stage": "shadow"}), "canary", 0.5)
    assert shadow == Plan(CHALLENGER, "shadow", 0.5, released=True)
    assert shadow.describe() is not None and shadow.describe()["canary_share"] is None  # type: ignore[index]
    # A decided release: nobody but the champion, even with the alias still there.
    for ended in ("promoted", "rolled_back"):
        assert plan_of((CHALLENGER, {"release.stage": ended}), "canary", 0.5) == Plan(None, "champion", 0.5)
        assert Plan(None, "champion", 0.5).describe() is None


def test_a_replaced_challenger_stops_at_once_even_if_its_successor_cannot_load() -> None:
    from serving.model import ChampionWatcher

    aliases = iter([("2", {"release.stage": "canary"}), ("3", {"release.stage": "shadow"})])

    def load(version: str, _tags: dict[str, str]) -> ServingModel:
        if version == "3":
            raise OSError("artifact missing")
        return _model(version)

    watcher = ChampionWatcher(
        lambda: next(aliases), load, interval=60, keep_when_gone=False, name="challenger"
    )
    watcher.check()
    assert watcher.current is not None and watcher.current.version == "2"
    watcher.check()  # the alias moved to 3, whose load fails: 2 (its release ended) answers nobody
    assert watcher.current is None and watcher.held is None and not watcher.healthy
