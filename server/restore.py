"""server.restore: `taphuan restore BACKUP`: a backup of `taphuan backup` back into an empty database.

Stop every Taphuan node that uses the database first. In order:
1. the backup is checked: its manifest's format, and its schema revisions must be ones this version knows (a
   backup from a newer Taphuan is refused: restore it with that version);
2. the database must be empty (no rows in any table; a server that started once has its first operator): else
   refused, unless `--force`, which drops every table first;
3. the empty database is migrated to the backup's revisions, the rows are inserted table by table (parents
   first), PostgreSQL's id sequences are moved past the restored ids, and the database is migrated to every head
   (a backup of an older version comes out up to date);
4. the files the backup holds (media folders, secrets) are copied into the data directory.
The engines may differ: a SQLite backup restores into PostgreSQL (moving to several nodes) and back.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import Column, MetaData, Table, func, insert, inspect, select, text
from sqlalchemy.engine import Connection

from server.backup import FORMAT, MANIFEST, ROWS, copy_files, read_rows, revisions, sqlite_path
from server.config import Config
from server.db.engine import alembic_config, make_engine


class RestoreError(Exception):
    """RestoreError: the backup cannot be restored here; str() says why (one line, for `taphuan restore`)."""


def read_manifest(folder: Path) -> dict[str, Any]:
    """read_manifest: the backup's manifest, checked (format, known schema revisions), or RestoreError."""
    path = folder / MANIFEST
    if not path.is_file() or not (folder / ROWS).is_file():
        raise RestoreError(f"{folder}: not a Taphuan backup (no {MANIFEST} and {ROWS})")
    try:
        manifest = json.loads(path.read_text())
    except ValueError as exc:
        raise RestoreError(f"{path}: unreadable ({exc})") from None
    if manifest.get("format") != FORMAT:
        raise RestoreError(f"{path}: backup format {manifest.get('format')!r}, this version reads {FORMAT}")
    script = ScriptDirectory.from_config(alembic_config())
    known = {rev.revision for rev in script.walk_revisions()}
    wanted = manifest.get("revisions") or []
    unknown = [r for r in wanted if r not in known]
    if not wanted or unknown:
        raise RestoreError(f"the backup's schema revision {', '.join(unknown or ['(none)'])} is unknown to this "
                           "version of Taphuan: restore it with the version that made it (or a newer one)")
    return dict(manifest)


def rows_in(conn: Connection) -> dict[str, int]:
    """rows_in: the tables of a database that hold rows (alembic_version aside), with their counts."""
    found = {}
    for name in inspect(conn).get_table_names():
        if name == "alembic_version":
            continue
        n = conn.execute(select(func.count()).select_from(Table(name, MetaData()))).scalar_one()
        if n:
            found[name] = int(n)
    return found


def _drop_everything(conn: Connection) -> None:
    meta = MetaData()
    meta.reflect(conn)
    meta.drop_all(conn)


def _upgrade_to(conn: Connection, targets: list[str]) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = conn
    for target in targets:
        command.upgrade(cfg, target)


def _load(conn: Connection, folder: Path) -> dict[str, int]:
    from server.db.models import Base

    counts: dict[str, int] = {}
    loaded: dict[str, Table] = {}
    for name, columns, batch in read_rows(folder / ROWS):
        table = loaded.get(name)
        if table is None:
            model = Base.metadata.tables.get(name)
            if model is None:  # a table later versions dropped: as the database (at the backup's revision) has it
                table = Table(name, MetaData(), autoload_with=conn)
            else:  # the backup's columns with the models' types (no defaults: a backup of an older revision
                # lacks the columns added since, which the database at that revision lacks too)
                table = Table(name, MetaData(), *(Column(c.name, c.type, primary_key=c.primary_key)
                                                  for c in model.columns if c.name in columns))
            loaded[name] = table
        counts.setdefault(name, 0)
        if batch:
            conn.execute(insert(table), [dict(zip(columns, row, strict=True)) for row in batch])
            counts[name] += len(batch)
    if conn.dialect.name == "postgresql":
        _move_sequences(conn, list(loaded.values()))
    return counts


def _move_sequences(conn: Connection, tables: list[Table]) -> None:
    """_move_sequences: PostgreSQL hands out ids from a sequence that rows inserted with their ids did not
    advance: set each past its table's largest id (else the next new row collides with a restored one)."""
    for table in tables:
        for column in table.primary_key.columns:
            sequence = conn.execute(text("SELECT pg_get_serial_sequence(:t, :c)"),
                                    {"t": table.name, "c": column.name}).scalar()
            if sequence:
                conn.execute(text(f"SELECT setval('{sequence}', (SELECT coalesce(max(\"{column.name}\"), 0) + 1 "
                                  f"FROM \"{table.name}\"), false)"))


def _restore(conn: Connection, folder: Path, manifest: dict[str, Any], force: bool) -> dict[str, int]:
    present = rows_in(conn)
    if present and not force:
        some = ", ".join(f"{name} ({n})" for name, n in sorted(present.items())[:4])
        raise RestoreError(f"the database is not empty ({some}…): restore into an empty database, or add --force "
                           "to replace everything in it")
    _drop_everything(conn)  # empty tables, or --force: the backup's revisions start from nothing
    _upgrade_to(conn, list(manifest["revisions"]))
    counts = _load(conn, folder)
    expected = {k: v for k, v in manifest["tables"].items() if v}
    if {k: v for k, v in counts.items() if v} != expected:
        raise RestoreError(f"rows read {counts} differ from the backup's manifest {expected}: the backup is damaged")
    _upgrade_to(conn, ["heads"])
    return counts


async def restore(config: Config, folder: Path, *, force: bool = False, progress: bool = True) -> dict[str, int]:
    """restore: the backup in `folder` into the configured database and data directory (see the module doc);
    returns the rows restored per table. RestoreError when it cannot: a refused backup or database changes nothing;
    on PostgreSQL (whose schema changes are transactional too) no failure leaves anything half done."""
    manifest = read_manifest(folder)
    sqlite = sqlite_path(config.database_url)
    if sqlite is not None:
        sqlite.parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(config.database_url)
    try:
        async with engine.begin() as conn:  # one transaction: a failure leaves the database as it was
            counts = await conn.run_sync(_restore, folder, manifest, force)
            after = await conn.run_sync(revisions)
    finally:
        await engine.dispose()
    if progress:
        print(f"database: {sum(counts.values())} rows in {len(counts)} tables, from revision "
              f"{', '.join(manifest['revisions'])} (made {manifest.get('made_at', '?')} on "
              f"{manifest.get('dialect', '?')}), now at {', '.join(after)}", flush=True)
    config.data_path.mkdir(parents=True, exist_ok=True)
    copy_files(folder, config.data_path, progress)
    return counts


async def run_restore(config: Config, backup: str, force: bool) -> int:
    """run_restore: the CLI entry: 0 when restored, 1 with one line on stderr saying why not."""
    try:
        await restore(config, Path(backup), force=force)
    except RestoreError as exc:
        print(f"taphuan restore: {exc}", file=sys.stderr, flush=True)
        return 1
    print(f"Restored {backup}")
    return 0
