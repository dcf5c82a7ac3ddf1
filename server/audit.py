"""server.audit: record operator and live actions in the audit log (AuditEntry rows)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from server.auth import client_ip, identity
from server.db.models import AuditEntry, utcnow


def record(s: AsyncSession, request: web.Request | None, action: str, target: str = "",
           actor_id: int | None = None, **details: Any) -> AuditEntry:
    """record: add an AuditEntry to `s` (the caller commits it with the change it describes)."""
    ident = identity(request) if request is not None else None
    entry = AuditEntry(
        at=utcnow(),
        actor_id=actor_id if actor_id is not None else (ident.user_id if ident else None),
        action=action,
        target=target,
        details=details,
        ip=client_ip(request) if request is not None else "",
    )
    s.add(entry)
    return entry
