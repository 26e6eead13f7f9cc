"""The `train` and `drift` commands' options, fuzzed: every outcome is a success or a named error
(exit code 2, a sentence that names the option and its value), never a traceback or a library's
own message. In-process (typer's runner) against the session's real Feast store and a real MLflow
registry; most drawn runs stop at `--check` (the options and the window's rows), a few train."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

from featureloop.cli import app
from tests.integration.conftest import FeastEnv

pytestmark = pytest.mark.integration

# What only a library (or a crash) says: none of it may reach a user of the command line.
RAW = re.compile(
    r"Traceback|errors\.pydantic\.dev|input_value=|\[type=|window shape|Invalid isoformat|"
    r"Out of bounds|OverflowError|ValueError|TypeError|KeyError|numpy|sklearn|validation error for"
)
OPTION = re.compile(r"--[a-z][a-z-]+")


@dataclass(frozen=True)
class Cli:
    env: dict[str, str]
    data_end: datetime

    def run(self, *args: str) -> Result:
        return CliRunner().invoke(app, list(args), env=self.env)

    def versions(self) -> list[str]:
        from featureloop.settings import Settings
        from featureloop.training.registry import open_tracking

        settings = Settings(
            data_dir=Path(self.env["FEATURELOOP_DATA_DIR"]),
            mlflow_tracking_uri=self.env["FEATURELOOP_MLFLOW_TRACKING_URI"],
        )
        client, _ = open_tracking(settings)
        return sorted(str(v.version) for v in client.search_model_versions(f"name = '{settings.model_name}'"))


@pytest.fixture(scope="module")
def cli(feast_env: FeastEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """The session's prepared store behind a data folder of its own (its own MLflow artifacts)."""
    root = tmp_path_factory.mktemp("cli")
    data = root / "data"
    data.mkdir()
    for name in ("offline", "versions", "feast"):
        (data / name).symlink_to((feast_env.settings.data_dir / name).resolve(), target_is_directory=True)
    env = {
        "FEATURELOOP_DATA_DIR": str(data),
        "FEATURELOOP_MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
    }
    yield Cli(env, datetime.fromisoformat(feast_env.prepared.time_range["end"]))


def _plain(text: str) -> str:
    """Typer's usage errors come in a box: its lines as one line of text."""
    return " ".join(re.sub(r"[│╭╮╰╯─]+", " ", text).split())


def assert_named(result: Result, *, names_an_option: bool = True) -> str:
    """A success, or exit 2 with an `error:` sentence (naming an option) or typer's usage error
    (`Invalid value for '--x'`), and nothing a library wrote for developers. Returns the error line
    ('' on success)."""
    shown = result.stdout + result.stderr
    assert not RAW.search(shown), shown
    if result.exit_code == 0:
        return ""
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), (result.exception, shown)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    if not errors:  # typer refused the value before featureloop saw it
        usage = re.search(r"Invalid value for '--[a-z-]+'.*", _plain(result.stderr))
        assert usage, shown
        return usage.group(0)
    if names_an_option:
        assert OPTION.search(errors[0]), errors[0]
    return errors[0]


def test_a_window_trains_and_registers_and_bad_options_are_sentences(cli: Cli) -> None:
    """The end-to-end cases: one real training, then the referee's three failures."""
    good = cli.run("train", "--start", "2013-01-01", "--end", "2013-01-22", "--no-promote")
    assert good.exit_code == 0, good.stderr
    assert re.search(r"model flight_delay version 1 \(train [\d,]+ / validation", good.stdout)
    assert cli.versions() == ["1"]

    inverted = assert_named(cli.run("train", "--start", "2013-03-01", "--end", "2013-02-01"))
    assert inverted == (
        "error: --start 2013-03-01 is not before --end 2013-02-01: use a start before the end "
        "(the end is exclusive)"
    )
    family = assert_named(cli.run("train", "--family", "xgboost"))
    assert family == (
        "error: --family xgboost is not one of the choices: use 'hist_gradient_boosting' or "
        "'logistic_regression'"
    )
    # Three hours: the window's slices are too small for the fit's early stopping, found before any
    # feature is fetched; the sentence gives the rows, the need and a size that would do.
    short = assert_named(cli.run("train", "--start", "2013-01-10T14:00", "--end", "2013-01-10T17:00"))
    assert re.fullmatch(
        r"error: --start 2013-01-10T14:00 --end 2013-01-10T17:00 gives \d+ labelled rows; its "
        r"(training slice|validation slice|holdout) \(.*\) has \d+ \(\d+ positive, \d+ negative\), and .* needs? "
        r".* \(at least \d+ rows, \d of each\): use a wider window, with at least [\d,]+ labelled rows",
        short,
    ), short
    assert cli.versions() == ["1"]  # nothing of the failures was registered


def test_train_without_prepared_data_is_a_named_error_not_a_traceback(tmp_path: Path) -> None:
    """A data folder with nothing prepared (a new user's first `train`): an `error:` line naming the
    missing table and the command that writes it, not pandas' FileNotFoundError; nothing written."""
    empty = Cli(
        {
            "FEATURELOOP_DATA_DIR": str(tmp_path / "data"),
            "FEATURELOOP_MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        },
        datetime.now(UTC),
    )
    error = assert_named(
        empty.run("train", "--start", "2013-01-01", "--end", "2013-01-20"), names_an_option=False
    )
    assert error == (
        f"error: no prediction events to train on: {tmp_path / 'data' / 'offline' / 'flights.parquet'} does not "
        "exist; run `featureloop prepare` (or point FEATURELOOP_DATA_DIR at a prepared data folder)"
    )
    assert not (tmp_path / "mlflow.db").exists()


TIMEZONES: st.SearchStrategy[tzinfo | None] = st.sampled_from(
    [None, UTC, timezone(timedelta(hours=-11)), timezone(timedelta(hours=14))]
)
NEAR_DATA = st.datetimes(
    min_value=datetime(2012, 12, 20), max_value=datetime(2013, 2, 10), timezones=TIMEZONES
).map(lambda t: t.isoformat(timespec="minutes"))
ODD_TIMES = st.sampled_from(
    ["0001-01-01", "0001-01-01T00:00+05:00", "9999-12-31T23:59", "9999-12-31T23:00-05:00",
     "1677-09-01", "2262-06-01", "2013-13-01", "2013-02-30", "2013-01-01T25:00", "20130105",
     "yesterday", "", "1e9", "2013-01-01T00:00+25:00"]
)  # fmt: skip
TIMES = st.one_of(NEAR_DATA, ODD_TIMES, st.text(max_size=12))
LENGTHS = st.sampled_from(
    [timedelta(0), -timedelta(days=3), timedelta(minutes=30), timedelta(hours=5), timedelta(days=1),
     timedelta(days=9), timedelta(days=400), timedelta(days=80_000)]
)  # fmt: skip


@st.composite
def windows(draw: st.DrawFn) -> list[str]:
    """--start/--end: each drawn on its own, or an end at a drawn length after a start near the data
    (inverted, empty, short, long, beyond the calendar); either may be left out."""
    if draw(st.booleans()):
        start = draw(NEAR_DATA)
        try:
            end = (datetime.fromisoformat(start) + draw(LENGTHS)).isoformat(timespec="minutes")
        except OverflowError:
            end = "9999-12-31T23:59"
        return [f"--start={start}", f"--end={end}"]
    chosen = []
    for option in ("--start", "--end"):
        if draw(st.booleans()):
            chosen.append(f"{option}={draw(TIMES)}")
    return chosen


TRAIN_OPTIONS = st.tuples(
    windows(),
    st.one_of(
        st.none(), st.sampled_from(["hist_gradient_boosting", "logistic_regression"]), st.text(max_size=10)
    ),
    st.sampled_from([None, "flight_delay_v1", "flight_delay_v99", ""]),
    # Mostly --check (the options and the window's rows); now and then a real run, without the gate.
    st.sampled_from(["--check"] * 12 + ["--no-promote"]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TRAIN_OPTIONS)
def test_train_options_end_in_success_or_a_named_error(
    cli: Cli, options: tuple[list[str], str | None, str | None, str]
) -> None:
    window, family, service, mode = options
    args = ["train", *window, mode]
    if family is not None:
        args.append(f"--family={family}")
    if service is not None:
        args.append(f"--feature-service={service}")
    result = cli.run(*args)
    line = assert_named(result)
    # --hypothesis-show-statistics: how the drawn runs ended.
    event(
        "trained" if "model flight_delay version" in result.stdout else (line.split(" is ")[0][:40] or mode)
    )


DRIFT_OPTIONS = st.tuples(
    windows(),
    st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=4)),
    st.one_of(st.none(), st.integers(), st.text(max_size=4)),
)


@settings(max_examples=40, deadline=None)
@given(DRIFT_OPTIONS)
def test_drift_options_end_in_success_or_a_named_error(
    cli: Cli, options: tuple[list[str], float | str | None, int | str | None]
) -> None:
    """No served predictions here: a valid set of options ends in the named 'no window' outcome."""
    window, hours, skew = options
    args = ["drift", *window]
    if hours is not None:
        args.append(f"--hours={hours}")
    if skew is not None:
        args.append(f"--skew-sample={skew}")
    result = cli.run(*args)
    line = assert_named(result, names_an_option=False)
    assert result.exit_code == 2  # no champion, no prediction log: never a success here
    if not OPTION.search(line):
        assert "has no champion" in line or "no prediction log" in line, line
