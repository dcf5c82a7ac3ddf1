"""server.live.entry: how a connection enters a meeting's room: `join`, resuming after a lost connection, or
being admitted from the lobby (one at a time, or everyone but guests when the room is unlocked). A meeting ended
for everyone (server.live.ending) is entered by nobody: `join` gets the error `meeting-ended`.

Entering holds the connection's output (`Connection.hold`) from before the SFU learns of the participant until
the reply is written: the `joined` reply (or the `error`) goes first, then its follow-ups (chat history, open
polls, the lobby list, for a moderator a recording that could not start and the warning of a meeting past its
scheduled end), then, in order, whatever the room sent
meanwhile (participant-joined, presenter, floor, offer, slot, grid, chat...). docs/protocol.md promises this order.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from server.auth import Identity
from server.config import Config
from server.db.engine import DB
from server.db.models import Meeting, Role
from server.live import attendance, chat, ending, lobby, polls, questions, recordings
from server.live.capabilities import CAPABILITIES
from server.live.cascade import cascade_of
from server.live.cluster import CLUSTER
from server.live.connection import Connection, Route, audit_live
from server.live.service import LIVE
from server.live.wire import MODERATORS, SignalError, field, id_field, is_link
from server.schedule.ending import ENDED_MESSAGE
from server.schedule.visibility import Refusal, refusal
from sfu.errors import SfuError
from sfu.room import Room

PROTOCOL_VERSIONS = (1,)


def ice_servers(config: Config, participant: str, now: float | None = None) -> list[dict[str, Any]]:
    """ice_servers: STUN URLs and TURN with coturn's time-limited credentials (use-auth-secret)."""
    servers: list[dict[str, Any]] = []
    if config.sfu.stun_urls:
        servers.append({"urls": list(config.sfu.stun_urls)})
    turn = config.sfu.turn
    if turn.urls and turn.secret:
        expiry = int((time.time() if now is None else now) + turn.ttl_seconds)
        username = f"{expiry}:{participant}"
        digest = hmac.new(turn.secret.encode(), username.encode(), hashlib.sha1).digest()
        servers.append({"urls": list(turn.urls), "username": username,
                        "credential": base64.b64encode(digest).decode()})
    return servers


REFUSALS = {
    Refusal.NOT_FOUND: ("not-found", "Không có buổi tập huấn này. / No such meeting."),
    Refusal.NOT_INVITED: ("forbidden",
                          "Bạn không được mời vào buổi tập huấn này. / You are not invited to this meeting."),
    Refusal.NOT_PUBLISHED: ("forbidden", "Buổi tập huấn chưa được công bố. / The meeting is not published yet."),
    Refusal.CANCELLED: ("forbidden", "Buổi tập huấn đã bị huỷ. / The meeting was cancelled."),
}


async def load_meeting_for(app: web.Application, ident: Identity, meeting_id: int) -> Meeting:
    """load_meeting_for: the meeting if `ident` may enter its live room (`server.schedule.visibility`), else
    SignalError."""
    async with app[DB]() as s:
        why = await refusal(s, ident, meeting_id)
        meeting = None if why is not None else await s.scalar(
            select(Meeting).where(Meeting.id == meeting_id)
            .options(selectinload(Meeting.presenters), selectinload(Meeting.classrooms)))
    if meeting is None:
        raise SignalError(*REFUSALS[why or Refusal.NOT_FOUND])
    return meeting


async def on_join(conn: Connection, msg: dict[str, Any]) -> dict[str, Any] | None:
    """on_join: enter a meeting's room, resume a participant after a lost connection, or wait in the lobby."""
    if conn.room is not None or conn.waiting is not None:
        raise SignalError("already-joined", "Kết nối này đã vào phòng. / Already joined.")
    version = field(msg, "version", int)
    if version not in PROTOCOL_VERSIONS:
        raise SignalError("version", f"Phiên bản giao thức không hỗ trợ; hỗ trợ: {list(PROTOCOL_VERSIONS)}. / "
                                     f"Unsupported protocol version {version}; supported: {list(PROTOCOL_VERSIONS)}.")
    meeting_id = id_field(msg, "meeting_id")
    resume = field(msg, "resume", dict, optional=True)
    ident = conn.ident
    meeting = await load_meeting_for(conn.app, ident, meeting_id)
    if meeting.ended_at is not None:  # ended for everyone (server.live.ending): nobody enters or resumes
        raise SignalError("meeting-ended", ENDED_MESSAGE)
    cluster = conn.app.get(CLUSTER)
    owner = None if cluster is None else await cluster.place(meeting.id)
    cascade = cascade_of(conn.app)
    edge = owner is not None and cascade is not None and cascade.serves_here(ident.role, owner, meeting.id)
    if owner is not None and not edge:  # with several nodes: the room is (now placed) on another one
        assert cluster is not None
        raise SignalError("moved", "Phòng của buổi tập huấn ở máy chủ khác; đang chuyển sang đó. / This meeting's "
                                   "room is on another server; connecting there.",
                          url=cluster.url_on(owner, "/ws", websocket=True))
    live = conn.app[LIVE]
    if edge:  # served here as an edge of the owner's room (server.live.cascade)
        assert cascade is not None and owner is not None
        room = await cascade.edge_room(meeting.id, meeting.video_codec, owner)
    else:
        made = live.sfu.rooms.get(str(meeting.id))
        if resume is not None and (made is None or made.closed):
            # nobody to resume in a room that is gone (the resume window is over, or another node held it): the
            # page joins afresh; the room is not made for this refusal (empty, it would close after its grace
            # and be made again by the join that follows, while its automatic recording still started)
            raise SignalError("token", "Không thể nối lại; hãy vào lại phòng. / Cannot resume: join again.")
        room = await live.sfu.room(str(meeting.id), meeting.video_codec)
    name = ident.display_name or ident.username or "Khách"
    if ident.role == Role.GUEST:
        given = msg.get("name")
        if isinstance(given, str) and given.strip():
            name = given.strip()[:80]
    if resume is None and lobby.must_wait(conn, room, meeting.id):
        return await lobby.wait(conn, meeting, name, msg.get("id"))
    request_id = msg.get("id")
    first: list[dict[str, Any]] = []
    conn.hold()
    try:
        reply = await enter(conn, meeting, room, name, resume, admitted=lobby.returning(conn, meeting.id))
        if request_id is not None:  # like any request, a join without id gets no reply on success
            first = [{**reply, "id": request_id}]
        first += conn.followups
    except Exception as exc:
        first = [conn.error_reply(request_id, exc)]
    finally:
        conn.followups = []
        await conn.release(first)
    return None


async def enter(conn: Connection, meeting: Meeting, room: Room, name: str, resume: dict[str, Any] | None,
                admitted: bool = False) -> dict[str, Any]:
    """enter: join (or resume) the participant and build the `joined` reply; follow-ups queue after it.

    The caller holds the connection's output (`Connection.hold`) and releases it with the reply first.
    """
    ident = conn.ident
    live = conn.app[LIVE]
    # The same classroom account joining again (another PC) replaces the earlier connection.
    if ident.role == Role.CLASSROOM and ident.user_id is not None:
        resumed = resume.get("participant_id") if resume is not None else None
        for other in live.by_user_in_meeting(ident.user_id, meeting.id):
            if other is not conn and other.participant_id != resumed:  # not the one it resumes (see below)
                await other.close("replaced")
    if resume is not None:
        pid = resume.get("participant_id")
        token = resume.get("token")
        if not isinstance(pid, str) or not isinstance(token, str):
            raise SignalError("bad-message", "resume cần participant_id và token / resume needs participant_id, token")
        earlier = live.by_participant(meeting.id, pid)
        try:
            joined = await room.resume(pid, token, conn.on_event)
        except SfuError as exc:
            if exc.code != "not-found":
                raise
            # The resume window is over (or the participant was removed): to the client, an expired token.
            raise SfuError("token", f"{pid} is no longer in the room") from exc
        if earlier is not None and earlier is not conn:
            # a socket the server still believed open (its loss not noticed yet, e.g. during a network cut) gave
            # its participant over: when it ends it neither leaves nor detaches (its heartbeat ends it)
            earlier.room, earlier.participant_id = None, None
    else:
        pid = f"p-{secrets.token_hex(6)}"
        joined = await room.join(pid, ident.role.value, name, CAPABILITIES[ident.role], conn.on_event,
                                 admitted=admitted)
    participant = joined.participant
    conn.room, conn.meeting_id, conn.participant_id = room, meeting.id, participant.id
    conn.name = participant.name
    live.entered.setdefault(meeting.id, set()).add(lobby.removal_key(conn))
    await attendance.record(conn, "resume" if resume is not None else "join")
    conn.followups += await chat.history_for(conn)
    conn.followups += await polls.open_polls_for(conn)
    conn.followups += lobby.waiting_for(conn)
    conn.followups += await questions.queue_for(conn)  # the broadcast's viewers' questions waiting (moderators)
    conn.followups += recordings.refusal_for(conn.app, meeting.id, ident.role.value)
    conn.followups += ending.warning_for(conn.app, meeting, ident.role.value)
    # The room's snapshot is taken after the last await: whoever joined meanwhile (e.g. the recorder, started
    # by the first join) is in the reply, which the browser takes as the whole truth.
    state = room.snapshot()
    people = [{"participant_id": p.id, "role": p.role, "name": p.name, "hand_raised": p.hand_raised,
               "state": p.state, "audio_only": p.audio_only} for p in state.participants
              if p.id != participant.id and not is_link(p.id)]  # a cascade's relay is no one to show
    return {
        "type": "joined",
        "participant_id": participant.id,
        "resume_token": joined.resume_token,
        "role": participant.role,
        "name": participant.name,
        "room": {"meeting_id": meeting.id, "title": meeting.title, "video_codec": state.video_codec,
                 "locked": state.locked, "presenter_id": state.presenter_id, "floor_id": state.floor_id,
                 "participants": people},
        "ice_servers": ice_servers(conn.config, participant.id),
        "limits": {"max_sdp_bytes": conn.config.limits.max_sdp_bytes,
                   "ws_message_bytes": conn.config.limits.ws_message_bytes,
                   "chat_message_chars": conn.config.limits.chat_message_chars},
    }


async def admit(conn: Connection, other: Connection) -> None:
    """admit: let a waiting connection in: it gets `joined` as the reply to its original join."""
    assert other.pending_join is not None
    meeting, request_id = other.pending_join
    await lobby.leave_lobby(other)
    room = await conn.app[LIVE].sfu.room(str(meeting.id), meeting.video_codec)
    conn.app[LIVE].removed.get(meeting.id, set()).discard(lobby.removal_key(other))
    first: list[dict[str, Any]] = []
    other.hold()
    try:
        reply = await enter(other, meeting, room, other.name, None, admitted=True)
        first = [{**reply, "id": request_id}, *other.followups]
    except SignalError as exc:
        first = [other.error_reply(request_id, exc)]
    except SfuError as exc:
        first = [other.error_reply(request_id, exc)]
        raise  # the moderator learns it too (e.g. `full`)
    finally:
        other.followups = []
        await other.release(first)


async def on_admit(conn: Connection, msg: dict[str, Any]) -> dict[str, Any]:
    """on_admit: a moderator lets someone in from the lobby."""
    await admit(conn, lobby.waiting_connection(conn, msg))
    await audit_live(conn, "live.admit", lobby_id=msg.get("lobby_id"))
    return {"type": "ok"}


async def admit_all_after_unlock(conn: Connection) -> None:
    """admit_all_after_unlock: unlocking the room lets in everyone waiting except guests."""
    assert conn.meeting_id is not None
    entries = list(conn.app[LIVE].lobby.get(conn.meeting_id, {}).values())
    for other in entries:
        if other.ident.role != Role.GUEST:
            await admit(conn, other)


ROUTES: dict[str, Route] = {
    "join": Route(on_join, joined=False),
    "admit": Route(on_admit, roles=MODERATORS),
}
