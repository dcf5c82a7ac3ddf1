"""server.backup: `taphuan backup DIR`: a consistent copy of the database and media, safe while running.

SQLite is copied with its online backup API (a consistent snapshot even while the server writes); the
media folders (recordings, uploads, media) are copied file by file, skipping files still being written
(`*.part`). PostgreSQL deployments back up with pg_dump instead (the command says so).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import sqlite3
from pathlib import Path

from server.config import Config

MEDIA_DIRS = ("media", "recordings", "uploads")


def _sqlite_path(url: str) -> Path | None:
    for prefix in ("sqlite+aiosqlite:///", "sqlite:///"):
        if url.startswith(prefix):
            return Path(url[len(prefix):])
    return None


def backup_sync(config: Config, target: Path, progress: bool = True) -> Path:
    """backup_sync: write a timestamped backup folder inside `target`; returns its path."""
    db_path = _sqlite_path(config.database_url)
    if db_path is None:
        raise SystemExit("taphuan backup: the database is not SQLite; use pg_dump for PostgreSQL")
    if not db_path.exists():
        raise SystemExit(f"taphuan backup: no database at {db_path}")
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = target / f"taphuan-backup-{stamp}"
    out.mkdir(parents=True, exist_ok=False)
    src = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    dst = sqlite3.connect(out / db_path.name)
    try:
        with dst:
            src.backup(dst, pages=256)
    finally:
        src.close()
        dst.close()
    if progress:
        print(f"database → {out / db_path.name}", flush=True)
    for name in MEDIA_DIRS:
        folder = config.data_path / name
        if not folder.is_dir():
            continue
        files = [p for p in folder.rglob("*") if p.is_file() and not p.name.endswith(".part")]
        for i, path in enumerate(files, 1):
            dest = out / name / path.relative_to(folder)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest)
            if progress and (i == len(files) or i % 50 == 0):
                print(f"{name}: {i}/{len(files)} files", flush=True)
    secrets_dir = config.data_path / "secrets"
    if secrets_dir.is_dir():
        shutil.copytree(secrets_dir, out / "secrets")
    return out


async def run_backup(config: Config, target: str) -> int:
    """run_backup: the CLI entry (runs the copy in a thread)."""
    out = await asyncio.to_thread(backup_sync, config, Path(target))
    print(f"Backup written to {out}")
    return 0
