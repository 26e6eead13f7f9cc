"""`prepare`: named errors for broken inputs, atomic versions, byte-identical reruns."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

import featureloop.dataset_versions
from data.prepare import PrepareResult, prepare_dataset
from data.read import DatasetError
from featureloop.dataset_versions import read_manifest, verify_version


def _prepare(raw: Path, root: Path) -> PrepareResult:
    return prepare_dataset(raw, root / "versions", root / "offline")


def _rewrite_csv(path: Path, edit: callable) -> None:  # type: ignore[valid-type]
    path.write_text(edit(path.read_text()))


def test_read_equals_accepted_plus_quarantined_and_counts_are_in_the_manifest(
    synthetic_raw: Path, tmp_path: Path
) -> None:
    weather = synthetic_raw / "weather.csv"
    lines = weather.read_text().splitlines()
    header = lines[0].split(",")
    bad = lines[1].split(",")
    bad[header.index("humid")] = "150"
    weather.write_text("\n".join([*lines, ",".join(bad)]) + "\n")
    result = _prepare(synthetic_raw, tmp_path)
    counts = result.validation["weather"]
    assert counts["read"] == len(lines)  # data lines + the added bad line
    assert counts["read"] == counts["accepted"] + counts["quarantined"]
    assert counts["by_rule"]["humid_sane"] == 1
    manifest = read_manifest(tmp_path / "offline")
    assert manifest["validation"]["weather"] == counts
    assert manifest["files"]["quarantine/weather.parquet"]["rows"] == counts["quarantined"]


def test_airports_are_validated_counted_and_give_each_arrival_its_zone(
    synthetic_raw: Path, tmp_path: Path
) -> None:
    airports = synthetic_raw / "airports.csv"
    lines = airports.read_text().splitlines()
    airports.write_text("\n".join([*lines, "XXX,Nowhere,95,0,0,-5,A,America/New_York"]) + "\n")
    result = _prepare(synthetic_raw, tmp_path)
    counts = result.validation["airports"]
    assert counts == {
        "read": len(lines),
        "accepted": len(lines) - 1,
        "quarantined": 1,
        "by_rule": {"lat_sane": 1},
    }
    manifest = read_manifest(tmp_path / "offline")
    assert manifest["validation"]["airports"] == counts
    assert manifest["files"]["airports.parquet"]["rows"] == len(lines) - 1
    assert manifest["files"]["quarantine/airports.parquet"]["rows"] == 1
    assert manifest["sources"]["airports.csv"]
    # Every landed flight got a gate arrival by one of the three rules, and where the destination's
    # clock is known (in January the synthetic ORD's standard offset is its clock) arr_time agrees.
    arrivals = manifest["arrivals"]
    by_rule = [arrivals[f"rule_{how}"] for how in ("zone", "offset", "bound")]
    assert min(by_rule) > 0 and sum(by_rule) == arrivals["landed"] > 0
    assert arrivals["arr_time_agrees"] == arrivals["arr_time_checked"] == by_rule[0] + by_rule[1]


def test_missing_airports_file_is_a_named_error(synthetic_raw: Path, tmp_path: Path) -> None:
    (synthetic_raw / "airports.csv").unlink()
    with pytest.raises(DatasetError, match=r"airports\.csv: file not found"):
        _prepare(synthetic_raw, tmp_path)


def test_rerun_gives_byte_identical_output_and_the_same_version(synthetic_raw: Path, tmp_path: Path) -> None:
    first = _prepare(synthetic_raw, tmp_path / "a")
    second = _prepare(synthetic_raw, tmp_path / "b")
    again = _prepare(synthetic_raw, tmp_path / "a")
    assert first.dataset_version == second.dataset_version == again.dataset_version
    for name in first.files:
        assert (tmp_path / "a/offline" / name).read_bytes() == (tmp_path / "b/offline" / name).read_bytes()
    assert len(list((tmp_path / "a/versions").iterdir())) == 1


def test_missing_column_names_file_column_and_type(synthetic_raw: Path, tmp_path: Path) -> None:
    _rewrite_csv(synthetic_raw / "weather.csv", lambda text: text.replace("visib", "visibility", 1))
    with pytest.raises(
        DatasetError, match=r"weather\.csv: column 'visib' is missing \(expected type double\)"
    ):
        _prepare(synthetic_raw, tmp_path)


def test_wrong_type_names_file_column_and_type(synthetic_raw: Path, tmp_path: Path) -> None:
    planes = synthetic_raw / "planes.csv"
    lines = planes.read_text().splitlines()
    row = lines[1].split(",")
    row[lines[0].split(",").index("seats")] = "many"
    planes.write_text("\n".join([lines[0], ",".join(row), *lines[2:]]) + "\n")
    with pytest.raises(DatasetError, match=r"planes\.csv: column 'seats' has a value that is not int64"):
        _prepare(synthetic_raw, tmp_path)


def test_truncated_csv_is_a_named_error(synthetic_raw: Path, tmp_path: Path) -> None:
    weather = synthetic_raw / "weather.csv"
    content = weather.read_bytes()
    weather.write_bytes(content[: len(content) // 2])
    with pytest.raises(DatasetError, match=r"weather\.csv: .*(truncated|not double)"):
        _prepare(synthetic_raw, tmp_path)


def test_corrupted_archive_is_a_named_error(synthetic_raw: Path, tmp_path: Path) -> None:
    archive = synthetic_raw / "flights.csv.zip"
    content = archive.read_bytes()
    archive.write_bytes(content[: len(content) // 3])
    with pytest.raises(DatasetError, match=r"flights\.csv\.zip: the archive is corrupted or truncated"):
        _prepare(synthetic_raw, tmp_path)


def test_broken_input_leaves_the_previous_dataset_intact(synthetic_raw: Path, tmp_path: Path) -> None:
    good = _prepare(synthetic_raw, tmp_path)
    with zipfile.ZipFile(synthetic_raw / "flights.csv.zip", "w") as archive:
        archive.writestr("flights.csv", "year,month\n2013,1\n")
    with pytest.raises(DatasetError, match="column 'day' is missing"):
        _prepare(synthetic_raw, tmp_path)
    assert read_manifest(tmp_path / "offline")["dataset_version"] == good.dataset_version
    assert verify_version(tmp_path / "offline")


def test_crash_while_writing_leaves_the_previous_dataset_intact(
    synthetic_raw: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = _prepare(synthetic_raw, tmp_path)
    _rewrite_csv(synthetic_raw / "planes.csv", lambda text: text.replace(",55,", ",56,"))
    written = []
    real_write = featureloop.dataset_versions.write_parquet

    def crash_on_fourth(frame: object, path: Path) -> None:
        written.append(path)
        if len(written) == 4:
            raise OSError("disk full (injected)")
        real_write(frame, path)  # type: ignore[arg-type]

    monkeypatch.setattr(featureloop.dataset_versions, "write_parquet", crash_on_fourth)
    with pytest.raises(OSError, match="injected"):
        _prepare(synthetic_raw, tmp_path)
    assert read_manifest(tmp_path / "offline")["dataset_version"] == good.dataset_version
    assert verify_version(tmp_path / "offline")
    assert [p.name for p in (tmp_path / "versions").iterdir()] == [good.dataset_version]
