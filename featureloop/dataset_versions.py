"""Write a dataset version atomically: a new folder per version, then one symlink swap.

A crash at any point leaves the previous version in place and `offline/` pointing at it; a rerun
with the same inputs writes byte-identical files and so the same dataset version.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

MANIFEST = "manifest.json"
KEEP_VERSIONS = 2


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    """Deterministic parquet: same frame, same bytes."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table, path, compression="zstd", write_statistics=True)


def dataset_version(files: dict[str, dict[str, Any]], extra: dict[str, Any]) -> str:
    """The dataset version: a hash of every file's name, row count and content hash, and the manifest's
    other entries (validation counts, time range), so one version always means one manifest."""
    canonical = json.dumps({"files": files, **extra}, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(canonical).hexdigest()[:16]


def write_version(
    tables: dict[str, pd.DataFrame],
    versions_dir: Path,
    current_link: Path,
    extra: dict[str, Any],
) -> dict[str, Any]:
    """Write `tables` (relative name -> frame) as a new dataset version and point `current_link` at it."""
    versions_dir.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(versions_dir, ".staging-")  # what a killed run left (its except never ran)
    _remove_abandoned(current_link.parent, f".{current_link.name}.tmp-")
    staging = Path(tempfile.mkdtemp(prefix=f".staging-{os.getpid()}-", dir=versions_dir))
    staging.chmod(0o755)
    try:
        files: dict[str, dict[str, Any]] = {}
        for name, frame in sorted(tables.items()):
            path = staging / f"{name}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_parquet(frame, path)
            files[f"{name}.parquet"] = {"rows": len(frame), "sha256": sha256_file(path)}
        version = dataset_version(files, extra)
        manifest = {"dataset_version": version, "files": files, **extra}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        _fsync_tree(staging)
        final = versions_dir / version
        if final.exists() and verify_version(final):
            shutil.rmtree(staging)
        else:
            if final.exists():
                shutil.rmtree(final)
            os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _point_link(current_link, final)
    _prune(versions_dir, keep={final.name})
    return manifest


def read_manifest(folder: Path) -> dict[str, Any]:
    return dict(json.loads((folder / MANIFEST).read_text()))


def verify_version(folder: Path) -> bool:
    """True when every file the manifest lists is there with its recorded hash."""
    try:
        manifest = read_manifest(folder)
    except (OSError, ValueError):
        return False
    return all(
        (folder / name).is_file() and sha256_file(folder / name) == meta["sha256"]
        for name, meta in manifest["files"].items()
    )


def _point_link(link: Path, target: Path) -> None:
    if link.exists() and not link.is_symlink():
        raise FileExistsError(f"{link} exists and is not a symlink made by `prepare`: move it away and rerun")
    tmp = link.with_name(f".{link.name}.tmp-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(os.path.relpath(target, link.parent))
    os.replace(tmp, link)
    _fsync_dir(link.parent)


def _remove_abandoned(folder: Path, prefix: str) -> None:
    """Remove `<prefix><pid>-...` / `<prefix><pid>` entries whose process is gone (killed before it
    could clean up); those of a live process are another run's work in progress."""
    if not folder.is_dir():
        return
    for entry in folder.iterdir():
        if not entry.name.startswith(prefix):
            continue
        pid = entry.name[len(prefix) :].split("-", 1)[0]
        if pid.isdigit() and process_alive(int(pid)):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def process_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this machine (another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _prune(versions_dir: Path, keep: set[str]) -> None:
    """Keep the current version and the most recent others, up to KEEP_VERSIONS in all (staging
    folders are not versions)."""
    others = sorted(
        (
            p
            for p in versions_dir.iterdir()
            if p.is_dir() and p.name not in keep and not p.name.startswith(".")
        ),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for stale in others[KEEP_VERSIONS - len(keep) :]:
        shutil.rmtree(stale, ignore_errors=True)


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
