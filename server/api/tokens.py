"""server.api.tokens: /api/v1/tokens, bearer tokens for clients that are not browsers (server.people.tokens).

`POST /api/v1/tokens` takes a username and password (no cookie, no CSRF token) and answers the token once; later
requests send `Authorization: Bearer <token>` instead of the login cookie, the WebSocket included (no `Origin`
needed). `GET` lists the caller's live tokens, `DELETE /api/v1/tokens/{id}` ends one.
"""

from __future__ import annotations

import datetime as dt

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from server.auth import require
from server.db.engine import DB
from server.db.models import ApiToken, Role
from server.openapi import endpoint, int_param, json_response, parse_body
from server.people.accounts import announce
from server.people.tokens import issue_token, live_tokens, revoke_token

ACCOUNTS = (Role.OPERATOR, Role.TRAINER, Role.LEADER, Role.CLASSROOM, Role.LEARNER)


class TokenIn(BaseModel):
    """TokenIn: credentials for a new token, an optional label and validity (hours, at most auth.token_hours)."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=200)
    name: str = Field("", max_length=100)
    hours: float | None = Field(None, gt=0, le=24 * 366)


class TokenOut(BaseModel):
    """TokenOut: a token as listed (never its secret)."""

    id: int
    name: str
    created_at: dt.datetime
    expires_at: dt.datetime


class TokenIssued(TokenOut):
    """TokenIssued: a new token with its secret, shown this once: send it as `Authorization: Bearer <token>`."""

    token: str
    role: Role


def token_out(token: ApiToken) -> TokenOut:
    """token_out: the API view of a token."""
    return TokenOut(id=token.id, name=token.name, created_at=token.created_at, expires_at=token.expires_at)


@endpoint("POST", "/api/v1/tokens", name="api-tokens-create", public=True, body=TokenIn, response=TokenIssued,
          status=201, tag="login",
          summary="A bearer token for a client that is not a browser (password checked and limited as a login)")
async def create_token(request: web.Request) -> web.Response:
    """create_token: check the credentials like a login and answer a new token (the secret only here)."""
    data = await parse_body(request, TokenIn)
    async with request.app[DB]() as s:
        issued = await issue_token(s, request, data.username, data.password, name=data.name, hours=data.hours)
        await s.commit()
    out = token_out(issued.token)
    return json_response(TokenIssued(**out.model_dump(), token=issued.secret, role=issued.role), status=201)


@endpoint("GET", "/api/v1/tokens", name="api-tokens-list", summary="My bearer tokens still valid", roles=ACCOUNTS,
          response=TokenOut, response_list=True, tag="login")
async def list_tokens(request: web.Request) -> web.Response:
    """list_tokens: the caller's live tokens, newest first (join-link logins: 403)."""
    ident = require(request, *ACCOUNTS)
    async with request.app[DB]() as s:
        tokens = await live_tokens(s, ident)
    return json_response([token_out(t) for t in tokens])


@endpoint("DELETE", "/api/v1/tokens/{id}", name="api-tokens-revoke", summary="End one of my bearer tokens",
          roles=ACCOUNTS, response=TokenOut, tag="login")
async def delete_token(request: web.Request) -> web.Response:
    """delete_token: revoke one of the caller's tokens; its WebSockets close."""
    token_id = int_param(request, "id")
    ident = require(request, *ACCOUNTS)
    async with request.app[DB]() as s:
        token, ended = await revoke_token(s, request, ident, token_id)
        await s.commit()
    await announce(request.app, ended)
    return json_response(token_out(token))
