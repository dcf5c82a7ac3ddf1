"""server.bootstrap: first-run data: the first operator account and the reference units."""

from __future__ import annotations

import logging

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.auth import generate_password, hash_password
from server.db.models import Role, Setting, User

log = logging.getLogger("taphuan")
FIRST_OPERATOR = "admin"


async def bootstrap(db: async_sessionmaker[AsyncSession]) -> str | None:
    """bootstrap: on the very first run create operator `admin`; returns its password then, else None (also on the
    nodes that started together with the one that made it: they find its rows when they commit theirs)."""
    async with db() as s:
        done = await s.get(Setting, "bootstrapped")
        if done is not None:
            return None
        password: str | None = None
        try:
            users = await s.scalar(select(func.count()).select_from(User))
            if not users:
                password = generate_password()
                s.add(User(username=FIRST_OPERATOR, display_name="Quản trị viên", role=Role.OPERATOR,
                           password_hash=hash_password(password)))
            from server.people.importer import seed_reference_units

            await seed_reference_units(s)
            s.add(Setting(key="bootstrapped", value="1"))
            await s.commit()
        except IntegrityError:  # another node starting at the same moment made them first: nothing to show here
            await s.rollback()
            log.info("first-run data made by another node")
            return None
        return password
