"""Tests of server.people.tokens: who may list and end tokens, what ending one revokes and announces."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from sqlalchemy import select

from server.auth import Identity, load_token_identity, token_digest
from server.db.engine import DB
from server.db.models import ApiToken, AuditEntry, Role, User, utcnow
from server.people.accounts import AccountError, Ended
from server.people.tokens import live_tokens, revoke_token
from tests.conftest import LoggedIn

MakeUser = Callable[..., Awaitable[User]]
LoginAs = Callable[..., Awaitable[LoggedIn]]


async def _token(app: web.Application, user: User, secret: str, **fields: object) -> ApiToken:
    async with app[DB]() as s:
        values: dict[str, object] = {"expires_at": utcnow() + dt.timedelta(hours=1), **fields}
        token = ApiToken(user_id=user.id, secret_hash=token_digest(secret), **values)
        s.add(token)
        await s.commit()
        return token


def _ident(user: User, **fields: object) -> Identity:
    return Identity(login_id="x", role=user.role, csrf_token="", user_id=user.id, username=user.username,
                    **fields)  # type: ignore[arg-type]


async def test_listing_and_ending_ones_own_tokens(app: web.Application, login_as: LoginAs,
                                                  make_user: MakeUser) -> None:
    await login_as(Role.OPERATOR)  # starts the app
    user, other = await make_user(Role.TRAINER), await make_user(Role.TRAINER)
    live = await _token(app, user, "tph_live", name="live")
    await _token(app, user, "tph_old", name="old", expires_at=utcnow() - dt.timedelta(seconds=1))
    await _token(app, user, "tph_gone", name="gone", revoked_at=utcnow())
    theirs = await _token(app, other, "tph_theirs")
    async with app[DB]() as s:
        assert [t.name for t in await live_tokens(s, _ident(user))] == ["live"]
        with pytest.raises(AccountError) as info:
            await revoke_token(s, None, _ident(user), theirs.id)
        assert info.value.status == 404
        token, ended = await revoke_token(s, None, _ident(user), live.id)
        assert token.id == live.id and ended == Ended("logout", [f"token:{live.id}"])
        await s.commit()
        assert await load_token_identity(s, "tph_live") is None
        assert (await load_token_identity(s, "tph_theirs")) is not None
        assert (await s.scalars(select(AuditEntry.action))).all() == ["token.revoke"]


async def test_join_link_logins_and_guests_may_not(app: web.Application, login_as: LoginAs,
                                                   make_user: MakeUser) -> None:
    await login_as(Role.OPERATOR)
    room_account = await make_user(Role.CLASSROOM)
    token = await _token(app, room_account, "tph_room")
    guest = Identity(login_id="g", role=Role.GUEST, csrf_token="", meeting_id=None)
    async with app[DB]() as s:
        for who in (_ident(room_account, meeting_id=7), guest):
            with pytest.raises(AccountError) as info:
                await live_tokens(s, who)
            assert info.value.status == 403
        with pytest.raises(AccountError) as info:
            await revoke_token(s, None, _ident(room_account, meeting_id=7), token.id)
        assert info.value.code == "link-login"
        ident = await load_token_identity(s, "tph_room")
        assert ident is not None and ident.bearer and ident.meeting_id is None and ident.role == Role.CLASSROOM
