"""server.api.broadcasts: /api/v1/broadcasts/{meeting}: a meeting's live broadcast for its watch page.

The state (waiting, live, ended) and where its master playlist is, the player's heartbeat (viewers in attendance:
server.live.viewers), the viewer's questions (server.live.questions) and, for operators, the public link
(server.live.watch). Who may watch is `server.live.watch.check_viewer`: a login in the audience, or anyone with
the public link's token (`k`: in the query string, or in the body of a POST). Every answer is `no-store`: a
cache in front (docs/deploy.md) never answers one, so a heartbeat always reaches the server.
"""

from __future__ import annotations

import secrets

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from server.audit import record
from server.auth import client_ip, require
from server.db.engine import DB
from server.db.models import BroadcastLink, Meeting, Role
from server.live import questions, viewers
from server.live.watch import WATCH, Viewer, broadcast_of, check_viewer, not_found, public_url
from server.openapi import TEXT, endpoint, int_param, json_response, parse_body

NO_STORE = {"Cache-Control": "no-store"}
K = ("k", "the public link's token (without a login)")
OPERATORS = (Role.OPERATOR,)


class BroadcastOut(BaseModel):
    """BroadcastOut: a meeting's broadcast as its watch page shows it."""

    meeting_id: int
    title: str
    presenters: list[str]
    state: str  # waiting (not started), live, ended
    recording_id: int | None
    master_url: str | None  # the master playlist (under /hls/, or /hls/p/{token}/ for the public link)
    archive_url: str | None  # the archive entry once it ended (logged-in viewers)
    public: bool  # watched through the public link


class HeartbeatIn(BaseModel):
    """HeartbeatIn: the player is playing (sent every 30 s); `viewer` is the player's own random id."""

    model_config = ConfigDict(extra="forbid")

    viewer: str = Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9-]+$")
    k: str = Field("", max_length=200)


class HeartbeatOut(BaseModel):
    """HeartbeatOut: the viewer's minutes so far and the broadcast's state (the page follows it)."""

    minutes: float
    state: str
    recording_id: int | None


class ViewerQuestionIn(BaseModel):
    """ViewerQuestionIn: a viewer's question; `name` only matters without a login (an anonymous viewer's signature)."""

    model_config = ConfigDict(extra="forbid")

    viewer: str = Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9-]+$")
    text: str = Field(max_length=10_000)
    name: str = Field("", max_length=80)
    k: str = Field("", max_length=200)


class ViewerQuestionOut(BaseModel):
    """ViewerQuestionOut: one of the viewer's questions: pending, approved (into the chat), answered, dismissed."""

    id: int
    name: str
    text: str
    state: str
    answer: str
    asked_at: str


class PublicLinkOut(BaseModel):
    """PublicLinkOut: the meeting's public watch link (`url` null while it is off)."""

    meeting_id: int
    enabled: bool
    url: str | None


def _json(data: BaseModel) -> web.Response:
    resp = json_response(data)
    resp.headers.update(NO_STORE)
    return resp


async def _viewer(request: web.Request, token: str = "", client_id: str = "") -> tuple[int, Viewer]:
    meeting_id = int_param(request, "meeting")
    return meeting_id, await check_viewer(request, meeting_id, token or request.query.get("k", ""), client_id)


async def state_of(request: web.Request, meeting_id: int, viewer: Viewer, token: str) -> BroadcastOut:
    """state_of: the broadcast's state for `viewer` (its playlist under the prefix the viewer may use)."""
    async with request.app[DB]() as s:
        meeting = await s.scalar(select(Meeting).where(Meeting.id == meeting_id)
                                 .options(selectinload(Meeting.presenters)))
    if meeting is None:
        raise not_found()
    b = await broadcast_of(request.app, meeting_id)
    if b is None or not b.started:
        state = "ended" if meeting.ended_at is not None else "waiting"
    else:
        state = "live" if b.live and meeting.ended_at is None else "ended"
    master = None
    if b is not None and b.started:
        master = f"/hls/p/{token}/{b.recording_id}/master.m3u8" if viewer.public else \
            f"/hls/{b.recording_id}/master.m3u8"
    archive = f"/archive/{b.recording_id}" if b is not None and state == "ended" and viewer.ident is not None \
        and viewer.ident.role != Role.GUEST else None
    return BroadcastOut(meeting_id=meeting_id, title=meeting.title,
                        presenters=[p.display_name or p.username for p in meeting.presenters], state=state,
                        recording_id=b.recording_id if b else None, master_url=master, archive_url=archive,
                        public=viewer.public)


@endpoint("GET", "/api/v1/broadcasts/{meeting}", name="api-broadcast", summary="A meeting's live broadcast",
          public=True, response=BroadcastOut, tag="broadcasts", query=(K,), errors=(401, 403))
async def get_broadcast(request: web.Request) -> web.Response:
    """get_broadcast: state, title, presenters and master playlist (404 unknown, 403 outside the audience)."""
    token = request.query.get("k", "")
    meeting_id, viewer = await _viewer(request, token)
    out = await state_of(request, meeting_id, viewer, token)
    return _json(out)


@endpoint("POST", "/api/v1/broadcasts/{meeting}/heartbeat", name="api-broadcast-heartbeat",
          summary="The player is playing: counts the viewer in attendance (every 30 s)", public=True,
          body=HeartbeatIn, response=HeartbeatOut, tag="broadcasts", errors=(401, 403))
async def post_heartbeat(request: web.Request) -> web.Response:
    """post_heartbeat: one heartbeat of the viewer (minutes watched; server.live.viewers)."""
    body = await parse_body(request, HeartbeatIn)
    meeting_id, viewer = await _viewer(request, body.k, body.viewer)
    seconds = await viewers.heartbeat(request.app[DB], meeting_id, viewer)
    b = await broadcast_of(request.app, meeting_id)
    state = "waiting" if b is None or not b.started else "live" if b.live else "ended"
    return _json(HeartbeatOut(minutes=round(seconds / 60, 1), state=state,
                                      recording_id=b.recording_id if b else None))


@endpoint("GET", "/api/v1/broadcasts/{meeting}/questions", name="api-broadcast-questions",
          summary="The viewer's own questions and their answers", public=True, response=ViewerQuestionOut,
          response_list=True, tag="broadcasts", query=(K, ("viewer", "the player's random id")),
          schemas={"viewer": TEXT}, errors=(401, 403))
async def list_questions(request: web.Request) -> web.Response:
    """list_questions: the viewer's questions of the meeting, oldest first."""
    meeting_id, viewer = await _viewer(request, "", request.query.get("viewer", ""))
    rows = await questions.mine(request.app, meeting_id, viewer)
    return web.json_response([questions.question_view(q) for q in rows], headers=NO_STORE)


@endpoint("POST", "/api/v1/broadcasts/{meeting}/questions", name="api-broadcast-ask",
          summary="Ask the presenters a question (moderated; rate-limited per viewer)", public=True, status=201,
          body=ViewerQuestionIn, response=ViewerQuestionOut, tag="broadcasts", errors=(401, 403, 429))
async def post_question(request: web.Request) -> web.Response:
    """post_question: a viewer's question into the moderated queue (422 empty or too long, 429 too many)."""
    body = await parse_body(request, ViewerQuestionIn)
    meeting_id, viewer = await _viewer(request, body.k, body.viewer)
    row = await questions.ask(request.app, meeting_id, viewer, body.text, body.name, client_ip(request))
    return web.json_response(questions.question_view(row), status=201, headers=NO_STORE)


async def _link(request: web.Request) -> tuple[int, str | None]:
    meeting_id = int_param(request, "meeting")
    async with request.app[DB]() as s:
        if await s.scalar(select(Meeting.id).where(Meeting.id == meeting_id)) is None:
            raise not_found()
        nonce = await s.scalar(select(BroadcastLink.nonce).where(BroadcastLink.meeting_id == meeting_id))
    return meeting_id, nonce


def _link_out(request: web.Request, meeting_id: int, nonce: str | None) -> PublicLinkOut:
    return PublicLinkOut(meeting_id=meeting_id, enabled=nonce is not None,
                         url=public_url(request.app, meeting_id, nonce) if nonce else None)


@endpoint("GET", "/api/v1/broadcasts/{meeting}/public-link", name="api-broadcast-link",
          summary="The meeting's public watch link", roles=OPERATORS, response=PublicLinkOut, tag="broadcasts")
async def get_link(request: web.Request) -> web.Response:
    """get_link: whether the public link is on, and the link."""
    meeting_id, nonce = await _link(request)
    return _json(_link_out(request, meeting_id, nonce))


@endpoint("PUT", "/api/v1/broadcasts/{meeting}/public-link", name="api-broadcast-link-on",
          summary="Turn the public watch link on (anyone with it may watch; audit-logged)", roles=OPERATORS,
          response=PublicLinkOut, tag="broadcasts")
async def put_link(request: web.Request) -> web.Response:
    """put_link: turn the public link on (a link already on stays the same)."""
    meeting_id, nonce = await _link(request)
    if nonce is None:
        nonce = secrets.token_urlsafe(12)
        async with request.app[DB]() as s:
            s.add(BroadcastLink(meeting_id=meeting_id, nonce=nonce, created_by=require(request).user_id))
            record(s, request, "broadcast.public-link", f"meeting:{meeting_id}", enabled=True)
            await s.commit()
        request.app[WATCH].forget(meeting_id)
    return _json(_link_out(request, meeting_id, nonce))


@endpoint("DELETE", "/api/v1/broadcasts/{meeting}/public-link", name="api-broadcast-link-off",
          summary="Turn the public watch link off (every copy of it stops working)", roles=OPERATORS, status=204,
          tag="broadcasts")
async def delete_link(request: web.Request) -> web.Response:
    """delete_link: turn the public link off; turning it on again makes a new link."""
    meeting_id, nonce = await _link(request)
    if nonce is not None:
        async with request.app[DB]() as s:
            row = await s.get(BroadcastLink, meeting_id)
            if row is not None:
                await s.delete(row)
            record(s, request, "broadcast.public-link", f"meeting:{meeting_id}", enabled=False)
            await s.commit()
        request.app[WATCH].forget(meeting_id)
    return web.Response(status=204, headers=NO_STORE)

