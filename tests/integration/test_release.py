"""A release on live traffic, end to end: the `retrain` and `train` flows on a real Prefect server put
a version that passed the gate in the shadow of the champion, the `release` flow decides each stage
from the prediction log and the delayed labels, MLflow records it, and the serving app (a process of
its own, over HTTP) changes what it does by watching the aliases and tags, never restarted.

Synthetic flights (300 aircraft: the canary's routing key is the aircraft). The champion was trained
on shuffled labels (it ranks flights at random); a retrain on the real labels is better: shadow ->
canary -> champion. Then a version trained on shuffled labels, through a lax gate that passes it
offline, is worse on live traffic: rolled back at the shadow stage, having answered nobody.
"""

from __future__ import annotations

import re
import shutil
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import yaml

from data.prepare import prepare_dataset
from data.synthetic import SyntheticSpec, generate, write_raw
from featureloop.settings import PROJECT_ROOT, Settings
from tests.waiting import until

pytestmark = pytest.mark.integration

SPEC = SyntheticSpec(days=28, flights_per_hour=16, n_aircraft=300, seed=3)
SHARE = 0.3


def day(n: int) -> datetime:
    """Midnight in New York on 2013-01-n, in UTC."""
    return datetime(2013, 1, n, 5, tzinfo=UTC)


@dataclass
class Live:
    settings: Settings
    url: str
    send: Any  # (start, end) -> the responses' (tailnum, model_version) pairs
    answered: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))


def _project(root: Path) -> Path:
    """The worked example's feature repo with the release's windows sized for a few synthetic days."""
    repo = root / "feature_repo"
    shutil.copytree(PROJECT_ROOT / "feature_repo", repo, ignore=shutil.ignore_patterns("__pycache__"))
    spec = yaml.safe_load((repo / "project.yaml").read_text())
    spec["monitoring"]["release"] = {
        "shadow": {"min_rows": 500, "max_time": "7d"},
        "canary": {"share": SHARE, "min_rows": 200, "max_time": "7d"},
        "min_labels": 100,
    }
    (repo / "project.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return repo


@pytest.fixture(scope="module")
def live(prefect_server: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    from featureloop.backtest.replay import OnlineFeed, Requests
    from featureloop.featurestore.store import apply_repo, open_store
    from featureloop.params import TrainParams
    from featureloop.project.spec import load_spec
    from featureloop.training.pipeline import run_training
    from flows.backtest import force_champion
    from flows.serving_process import serving_process

    root = tmp_path_factory.mktemp("release")
    raw = write_raw(generate(SPEC), root / "raw")
    env = {
        "FEATURELOOP_DATA_DIR": str(root / "data"),
        "FEATURELOOP_RAW_DIR": str(raw),
        "FEATURELOOP_FEATURE_REPO": str(_project(root)),
        "FEATURELOOP_MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        settings = Settings()
        prepare_dataset(raw, settings.versions_dir, settings.offline_dir)
        apply_repo(settings)
        store = open_store(settings)
        spec = load_spec(settings.feature_repo)
        spine = pd.read_parquet(settings.offline_dir / "flights.parquet")
        # The champion ranks at random (shuffled labels; the gate refuses it, so it is made champion).
        first = run_training(
            settings,
            TrainParams(train_start=day(8), train_end=day(15), shuffle_labels=True),
            report=lambda _m: None,
        )
        force_champion(settings, first["version"])
        requests = Requests(spine, spec, day(15), day(29), timedelta(hours=1))
        feed = OnlineFeed(store, requests)
        feed.before(0)
        with serving_process(settings, root / "serving.log") as ready:
            url = ready()
            live = Live(settings, url, None)

            def send(start: datetime, end: datetime) -> list[tuple[str, str]]:
                """Hour by hour: the online store up to the hour, then the hour's flights to /predict."""
                pairs = []
                first_step, last_step = (
                    (start - day(15)) // timedelta(hours=1),
                    (end - day(15)) // timedelta(hours=1),
                )
                with httpx.Client(base_url=url, timeout=60) as http:
                    for i in range(first_step, last_step):
                        feed.before(i)
                        for row in requests.at(i):  # one flight a request: its aircraft routes it
                            response = http.post("/predict", json={"flights": [row]})
                            assert response.status_code == 200, response.text
                            version = response.json()["model_version"]
                            pairs.append((row["tailnum"], version))
                            live.answered[row["tailnum"] or ""].add(version)
                    # Every row served so far in the prediction log (serving writes it in the background).
                    from flows.serving_process import wait_logged

                    wait_logged(http, int(_metric(http, "featureloop_predictions_total")))
                return pairs

            live.send = send
            yield live
        feed.close()


def _metric(http: httpx.Client, name: str) -> float:
    """The sum of a counter over its labels (the champion's and the canary's rows; not the shadow's)."""
    total = 0.0
    for line in http.get("/metrics").text.splitlines():
        if line.startswith(name + "{") and 'role="shadow"' not in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def _release(live: Live, as_of: datetime, **params: Any) -> dict[str, Any]:
    from featureloop.params import ReleaseParams
    from flows.release import release

    return release(ReleaseParams(as_of=as_of, **params))


def _ready(live: Live) -> dict[str, Any]:
    return dict(httpx.get(f"{live.url}/ready", timeout=30).json())


def _until_release(live: Live, stage: str | None) -> None:
    until(
        lambda: ((_ready(live)["release"] or {}).get("stage") == stage) if stage else _ready(live)["release"] is None,
        timeout=30, what=f"serving seeing the release stage {stage}", interval=0.2,
    )  # fmt: skip


def _tags(live: Live, version: str) -> dict[str, str]:
    from featureloop.training.registry import get_version, open_tracking

    client, _ = open_tracking(live.settings)
    return get_version(client, live.settings.model_name, version).tags


def test_a_better_retrain_goes_from_shadow_to_canary_to_champion(live: Live) -> None:
    import json

    from flows.retrain import RetrainParams, retrain

    champion = _ready(live)["model_version"]
    # The drift-triggered path: the retrain releases by default (the spec's monitoring.release.enabled).
    summary = retrain(RetrainParams(window_end=day(15), train_days=7, reason="test"))
    version = summary["version"]
    assert summary["released"] and not summary["promoted"], summary["reason"]
    _until_release(live, "shadow")

    waiting = _release(live, day(15) + timedelta(hours=1))  # nothing served yet: the window is open
    assert waiting["verdict"] == "wait" and "0 of 500 rows scored" in waiting["summary"], waiting["summary"]
    # Shadow: the champion answers every request; the challenger scores them for the log.
    shadow_answers = live.send(day(15), day(18))
    assert {v for _, v in shadow_answers} == {champion}
    decided = _release(live, day(19))
    assert decided["verdict"] == "pass" and decided["summary"].endswith("-> canary"), decided["summary"]
    _until_release(live, "canary")
    assert _ready(live)["release"] == {"challenger_version": version, "stage": "canary", "canary_share": SHARE,
                                       "from_release": True}  # fmt: skip

    # Canary: each aircraft meets one version, the share of aircraft on the challenger is the spec's.
    live.answered.clear()
    canary_answers = live.send(day(19), day(23))
    assert {v for _, v in canary_answers} == {champion, version}
    assert all(len(versions) == 1 for versions in live.answered.values()), "an aircraft met two versions"
    keys = [k for k in live.answered if k]
    on_canary = sum(live.answered[k] == {version} for k in keys) / len(keys)
    sigma = (SHARE * (1 - SHARE) / len(keys)) ** 0.5
    assert abs(on_canary - SHARE) < 3 * sigma, (on_canary, len(keys))

    promoted = _release(live, day(23))
    assert promoted["verdict"] == "pass" and promoted["summary"].endswith("-> champion"), promoted["summary"]
    until(lambda: _ready(live)["model_version"] == version, timeout=30, what="serving on the new champion")
    _until_release(live, None)
    tags = _tags(live, version)
    assert tags["release.stage"] == "promoted"
    for stage in ("shadow", "canary"):
        record = json.loads(tags[f"release.{stage}.decision"])
        assert record["verdict"] == "pass" and {c["check"] for c in record["checks"]} == {
            "roc_auc", "prediction_psi", "error_rate", "p99_latency_ms"}  # fmt: skip
        (auc,) = [c for c in record["checks"] if c["check"] == "roc_auc"]
        assert auc["limit"].endswith(", paired)"), auc  # the champion scored the canary's rows too


def test_a_challenger_worse_on_live_traffic_is_rolled_back_having_answered_nobody(live: Live) -> None:
    from featureloop.params import TrainParams
    from featureloop.training.gate import GateConfig
    from flows.train import train

    champion = _ready(live)["model_version"]
    lax = GateConfig(min_auc_gain=-1.0, max_log_loss_increase=1.0, max_ece_increase=1.0)
    summary = train(
        TrainParams(train_start=day(15), train_end=day(22), labels_as_of=day(23), shuffle_labels=True,
                    gate=lax, release=True)
    )  # fmt: skip
    version = summary["version"]
    assert summary["released"], summary["reason"]  # it passed the (lax) offline gate
    _until_release(live, "shadow")
    answers = live.send(day(23), day(26))
    assert {v for _, v in answers} == {champion}  # the plan: the champion answers, the challenger only scores
    decided = _release(live, day(27))
    assert decided["verdict"] == "fail", decided["summary"]
    assert "rolled back" in decided["summary"] and "ROC AUC" in decided["summary"]
    _until_release(live, None)
    tags = _tags(live, version)
    assert tags["release.stage"] == "rolled_back" and "ROC AUC" in tags["release.reason"]
    assert _ready(live)["model_version"] == champion
    # Nothing after the rollback reaches it either.
    assert {v for _, v in live.send(day(26), day(27))} == {champion}
    # The command says so, and names what it cannot do.
    from typer.testing import CliRunner

    from featureloop.cli import app
    from tests.integration.conftest import featureloop_ok

    assert "no release in progress" in featureloop_ok("release", "--as-of", "2013-01-27").output
    refused = CliRunner().invoke(app, ["release", "start", "--version", "99"])
    assert (
        refused.exit_code == 2
        and "has no version '99'" in refused.output
        and "No alias moved" in refused.output
    )


def test_compare_puts_two_versions_on_one_holdout(live: Live) -> None:
    """`featureloop compare 2 3`: the released-then-promoted retrain against the shuffled-label one,
    on version 3's holdout (the newer), with the paired difference, lineage and decisions."""
    import json

    from featureloop.training.compare import compare_versions
    from tests.integration.conftest import featureloop_ok

    found = json.loads(featureloop_ok("compare", "2", "3", "--json").stdout)
    assert (found["a"], found["b"], found["holdout"]["of"]) == ("2", "3", "3")
    assert re.fullmatch(r"2013-01-\d\d \d\d:\d\d\.\.2013-01-\d\d \d\d:\d\d UTC", found["holdout"]["window"])
    metrics, d = found["metrics"], found["difference"]
    assert metrics["2"]["roc_auc"] > metrics["3"]["roc_auc"] + 0.1  # shuffled labels rank at random
    assert d["b_minus_a"] == pytest.approx(metrics["3"]["roc_auc"] - metrics["2"]["roc_auc"])
    assert -d["b_minus_a"] > 1.96 * d["standard_error"] > 0
    # Version 3's holdout, rebuilt, is the one it recorded: the same rows and the same figures.
    tags = _tags(live, "3")
    assert found["holdout"]["rows"] == int(float(tags["holdout.n"]))
    assert metrics["3"]["roc_auc"] == pytest.approx(float(tags["holdout.roc_auc"]), abs=1e-9)
    differs = {row["key"] for row in found["lineage_differs"]}
    assert {"train_start", "train_end", "training_set_digest"} <= differs
    assert {"feature_service", "label", "task", "project"} <= set(found["lineage_same"])
    decisions = found["decisions"]
    assert "champion" in decisions["2"]["aliases"] and decisions["2"]["release"]["stage"] == "promoted"
    assert (
        decisions["3"]["release"]["stage"] == "rolled_back" and decisions["3"]["gate"]["promoted"] == "true"
    )
    # The table a person reads.
    text = featureloop_ok("compare", "2", "3", "--holdout-of", "2").stdout
    assert "version 2 vs version 3 on version 2's holdout" in text and "DeLong, paired; beyond noise" in text
    assert "v3 (no alias): gate passed" in text and "release: rolled_back" in text
    with pytest.raises(Exception, match="neither version"):
        compare_versions(live.settings, "2", "3", holdout_of="1")


def test_a_new_backtest_ends_a_release_an_earlier_one_left_live(live: Live) -> None:
    """A release left live (here version 3, started again by hand) must not go on into the next
    backtest's replay: its version learnt from data that replay has not reached yet."""
    from featureloop.release.judge import StageDecision
    from featureloop.release.pipeline import act
    from featureloop.training.registry import CHALLENGER, get_alias, open_tracking
    from flows.backtest import force_champion
    from tests.integration.conftest import featureloop_ok

    assert "version 3 released: shadow stage" in featureloop_ok("release", "start", "--version", "3").output
    client, _ = open_tracking(live.settings)
    stale = get_alias(client, live.settings.model_name, CHALLENGER)
    assert stale is not None and stale.tags["release.stage"] == "shadow"
    assert "release.reason" not in stale.tags  # the earlier release's record is cleared at the start
    # A decision taken on a release someone rolled back meanwhile is not applied.
    featureloop_ok("release", "rollback", "--reason", "changed my mind")
    applied = act(client, stale, StageDecision("pass", "shadow: not worse"), day(27))
    assert applied["verdict"] is None and "was not applied" in applied["summary"]
    assert _tags(live, "3")["release.stage"] == "rolled_back" and _ready(live)["model_version"] == "2"
    assert "version 3 released" in featureloop_ok("release", "start", "--version", "3").output
    _until_release(live, "shadow")
    force_champion(live.settings, "1")
    _until_release(live, None)
    tags = _tags(live, "3")
    assert (
        tags["release.stage"] == "rolled_back"
        and "ended when a new backtest started" in tags["release.reason"]
    )
    until(lambda: _ready(live)["model_version"] == "1", timeout=30, what="serving on the forced champion")
