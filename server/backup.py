"""server.backup: `taphuan backup DIR`: a consistent copy of the database and the files, safe while running.

A backup is a folder `taphuan-backup-<stamp>/` holding:
- `manifest.json`: the backup format, the schema revisions (Alembic heads) the rows belong to, the engine it was
  made from and each table's row count (`server.restore` checks them);
- `database.jsonl.gz`: every table's rows in an engine-neutral form (one JSON line per table header and per row;
  datetimes, dates and JSON values tagged), so a backup of SQLite restores into PostgreSQL and back;
- the media folders (recordings, uploads, media), file by file, without files still being written (`*.part`),
  and the secrets (session and join-link keys: links and logins stay valid after a restore).

The rows are one snapshot: PostgreSQL reads them in one REPEATABLE READ, read-only transaction; SQLite is first
copied with its online backup API (consistent while the server writes) and the rows are read from that copy.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import decimal
import gzip
import json
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, cast

from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from server.config import Config

MEDIA_DIRS = ("media", "recordings", "uploads")
FORMAT = 1  # of manifest.json and database.jsonl.gz
MANIFEST = "manifest.json"
ROWS = "database.jsonl.gz"
BATCH = 500  # rows fetched (and restored) at a time


def sqlite_path(url: str) -> Path | None:
    for prefix in ("sqlite+aiosqlite:///", "sqlite:///"):
        if url.startswith(prefix):
            return Path(url[len(prefix):])
    return None


def encode(value: Any) -> Any:
    """encode: a column value as JSON (datetimes, dates, bytes, decimals and JSON documents tagged)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dt.datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$date": value.isoformat()}
    if isinstance(value, bytes):
        return {"$b64": base64.b64encode(value).decode()}
    if isinstance(value, decimal.Decimal):
        return {"$dec": str(value)}
    return {"$json": value}  # a JSON column's list or dict


def decode(value: Any) -> Any:
    """decode: the column value `encode` wrote."""
    if not isinstance(value, dict):
        return value
    ((tag, inner),) = value.items()
    if tag == "$dt":
        return dt.datetime.fromisoformat(inner)
    if tag == "$date":
        return dt.date.fromisoformat(inner)
    if tag == "$b64":
        return base64.b64decode(inner)
    if tag == "$dec":
        return decimal.Decimal(inner)
    return inner


def revisions(conn: Connection) -> list[str]:
    """revisions: the schema revisions a database is at (its alembic_version rows; [] when never migrated)."""
    if not inspect(conn).has_table("alembic_version"):
        return []
    return sorted(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())


def dump(conn: Connection, out: IO[bytes]) -> dict[str, Any]:
    """dump: write every table of the models that the database has (only its columns) to `out` as JSON lines;
    returns the manifest. The models give the values their Python types (aware UTC datetimes, enums, JSON)."""
    from server.db.models import Base

    present = set(inspect(conn).get_table_names())
    counts: dict[str, int] = {}
    for table in Base.metadata.sorted_tables:
        if table.name not in present:
            continue
        have = {c["name"] for c in inspect(conn).get_columns(table.name)}
        columns = [c for c in table.columns if c.name in have]
        out.write(json.dumps({"table": table.name, "columns": [c.name for c in columns]}).encode() + b"\n")
        order = list(table.primary_key.columns) or columns
        n = 0
        result = conn.execution_options(yield_per=BATCH).execute(select(*columns).order_by(*order))
        for row in result:
            out.write(json.dumps([encode(v) for v in row], ensure_ascii=False, default=str).encode() + b"\n")
            n += 1
        counts[table.name] = n
    return {"format": FORMAT, "revisions": revisions(conn), "dialect": conn.dialect.name,
            "made_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "tables": counts}


def read_rows(path: Path) -> Iterator[tuple[str, list[str], list[list[Any]]]]:
    """read_rows: (table, columns, a batch of decoded rows) from a database.jsonl.gz, in the order written."""
    with gzip.open(path, "rb") as f:
        table = ""
        columns: list[str] = []
        batch: list[list[Any]] = []
        for line in f:
            item = json.loads(line)
            if isinstance(item, dict):
                if table:
                    yield table, columns, batch
                table, columns, batch = item["table"], item["columns"], []
                continue
            batch.append([decode(v) for v in item])
            if len(batch) >= BATCH:
                yield table, columns, batch
                batch = []
        if table:
            yield table, columns, batch


async def dump_database(url: str, out_dir: Path) -> dict[str, Any]:
    """dump_database: database.jsonl.gz of the database at `url` in `out_dir`, one snapshot; its manifest."""
    from server.db.engine import make_engine

    target = out_dir / ROWS
    sqlite = sqlite_path(url)
    if sqlite is not None:
        if not sqlite.exists():
            raise SystemExit(f"taphuan backup: no database at {sqlite}")
        return await asyncio.to_thread(_dump_sqlite, sqlite, target)
    engine: AsyncEngine = make_engine(url)
    try:
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="REPEATABLE READ")
            async with conn.begin():
                if conn.dialect.name == "postgresql":
                    await conn.exec_driver_sql("SET TRANSACTION READ ONLY")
                with gzip.open(target, "wb", compresslevel=6) as f:
                    return await conn.run_sync(dump, cast(IO[bytes], f))
    finally:
        await engine.dispose()


def _dump_sqlite(path: Path, target: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="taphuan-backup-", dir=target.parent) as tmp:
        copy = Path(tmp) / "snapshot.sqlite3"
        src = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        dst = sqlite3.connect(copy)
        try:
            with dst:
                src.backup(dst, pages=256)
        finally:
            src.close()
            dst.close()
        engine = create_engine(f"sqlite:///{copy}")
        try:
            with engine.connect() as conn, gzip.open(target, "wb", compresslevel=6) as f:
                return dump(conn, cast(IO[bytes], f))
        finally:
            engine.dispose()


def copy_files(source: Path, target: Path, progress: bool) -> None:
    """copy_files: the media folders (without `*.part` files still being written) and the secrets of data
    directory `source` into `target` (also used by `taphuan restore`, the other way round)."""
    for name in MEDIA_DIRS:
        folder = source / name
        if not folder.is_dir():
            continue
        files = [p for p in folder.rglob("*") if p.is_file() and not p.name.endswith(".part")]
        for i, path in enumerate(files, 1):
            dest = target / name / path.relative_to(folder)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest)
            if progress and (i == len(files) or i % 50 == 0):
                print(f"{name}: {i}/{len(files)} files", flush=True)
    secrets_dir = source / "secrets"
    if secrets_dir.is_dir():
        shutil.copytree(secrets_dir, target / "secrets", dirs_exist_ok=True)


async def backup(config: Config, target: Path, progress: bool = True) -> Path:
    """backup: write a timestamped backup folder inside `target`; returns its path."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = target / f"taphuan-backup-{stamp}"
    out.mkdir(parents=True, exist_ok=False)
    manifest = await dump_database(config.database_url, out)
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    if progress:
        rows = sum(manifest["tables"].values())
        print(f"database → {out / ROWS} ({rows} rows, {len(manifest['tables'])} tables, "
              f"revision {', '.join(manifest['revisions'])})", flush=True)
    await asyncio.to_thread(copy_files, config.data_path, out, progress)
    return out


async def run_backup(config: Config, target: str) -> int:
    """run_backup: the CLI entry."""
    out = await backup(config, Path(target))
    print(f"Backup written to {out}")
    return 0
