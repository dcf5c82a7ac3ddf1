"""server.api.live: /api/v1/live/rooms: the live rooms of this process and their media health (operators).

Everything comes from the rooms' snapshots and figures (`server.live.rooms.open_rooms`: each room read at one
moment), plus the meetings' titles and the classrooms' units from the database. The operator console
(`/console`) polls these endpoints every two seconds and keeps the history in the page.

Figures per participant:
- `producers`: what it publishes, one entry per source with its simulcast layers summed (bit/s over the SFU's
  last measurement window; cumulative packets and packets lost from sequence gaps, so a page can compute the
  loss between two polls);
- `receive`: what its down connection gets: the sum of its consumers' send bitrates, and from the
  subscriber's RTCP the worst fraction lost, jitter and round-trip time among the slots carrying media, and
  its REMB estimate.

The recorder (a participant of role `recorder`, docs/recorder.md) is not a person: it is left out of
`participants` and `participant_count`; `recording` says the room is being recorded.

Bitrates are measured over windows of at least one second that start at the previous read, so the first read
of a fresh stream may say 0.
"""

from __future__ import annotations

import datetime as dt

from aiohttp import web
from pydantic import BaseModel

from server.config import CONFIG
from server.db.engine import DB
from server.db.models import Meeting, Role
from server.errors import ApiError
from server.live import roster
from server.live.recordings import RECORDERS
from server.live.rooms import ConsumerStats, LiveRoom, ParticipantStats, ProducerStats, open_meetings, open_rooms
from server.live.service import LIVE
from server.openapi import endpoint, int_param, json_response
from server.schedule.meetings import meetings_by_id

OPERATORS = (Role.OPERATOR,)
RECORDER_ROLE = "recorder"


class ProducerOut(BaseModel):
    """ProducerOut: one published stream (camera, microphone or screen) as the SFU receives it (all its simulcast
    layers together)."""

    source: str
    kind: str
    bitrate: int  # bit/s
    packets: int  # received since publishing
    packets_lost: int  # cumulative, from sequence gaps
    loss: float  # packets_lost / (packets + packets_lost), 0..1, since publishing
    muted: bool
    consumers: int  # how many slots forward it


class ReceiveOut(BaseModel):
    """ReceiveOut: what a participant's down connection receives, from its consumers and its RTCP reports."""

    slots: int  # slots carrying media now
    bitrate: int  # bit/s: the sum of the consumers' send bitrates
    fraction_lost: float | None  # 0..1, worst of the last receiver reports
    jitter: float | None  # seconds, worst
    rtt: float | None  # seconds, worst
    remb: int | None  # bit/s, the subscriber's bandwidth estimate
    packets_lost: int  # cumulative, as reported by the subscriber
    nacks: int
    keyframe_requests: int


class LiveParticipantOut(BaseModel):
    """LiveParticipantOut: one participant of a live room with its media figures."""

    id: str
    name: str
    role: str
    state: str  # connected | reconnecting
    hand_raised: bool
    presenter: bool
    floor: bool
    audio_only: bool
    muted: list[str]
    classroom: str | None
    unit: str | None
    publish_bitrate: int  # bit/s, all producers
    producers: list[ProducerOut]
    receive: ReceiveOut


class LiveRoomOut(BaseModel):
    """LiveRoomOut: one live room (a meeting's media) in this process."""

    meeting_id: int
    title: str
    kind: str | None
    starts_at: dt.datetime | None
    ends_at: dt.datetime | None
    video_codec: str
    participant_count: int
    presenter_id: str | None
    presenter_name: str | None
    floor_id: str | None
    floor_name: str | None
    locked: bool
    lobby_waiting: int
    recording: bool = False  # the room is being recorded (its recorder is not among the participants)
    participants: list[LiveParticipantOut]
    at: dt.datetime


def producer_out(layers: list[ProducerStats], muted: bool) -> ProducerOut:
    """producer_out: the API form of one published source, summed over its simulcast layers (one without)."""
    s = layers[0]
    packets, lost = sum(x.packets for x in layers), sum(x.packets_lost for x in layers)
    total = packets + lost
    return ProducerOut(source=s.source, kind=s.kind, bitrate=round(sum(x.bitrate for x in layers)), packets=packets,
                       packets_lost=lost, loss=round(lost / total, 4) if total else 0.0,
                       muted=muted, consumers=sum(x.consumers for x in layers))


def receive_out(consumers: tuple[ConsumerStats, ...]) -> ReceiveOut:
    """receive_out: a participant's consumers summed up (worst loss, jitter and RTT of the slots with media)."""
    active = [c for c in consumers if c.source_participant is not None and c.packets_sent > 0]
    rtts = [c.rtt for c in consumers if c.rtt is not None]
    rembs = [c.remb_bitrate for c in consumers if c.remb_bitrate is not None]
    return ReceiveOut(
        slots=sum(1 for c in consumers if c.source_participant is not None),
        bitrate=round(sum(c.send_bitrate for c in consumers)),
        fraction_lost=round(max(c.fraction_lost for c in active), 4) if active else None,
        jitter=round(max(c.jitter for c in active), 5) if active else None,
        rtt=round(max(rtts), 5) if rtts else None,
        remb=max(rembs) if rembs else None,
        packets_lost=sum(c.packets_lost for c in consumers),
        nacks=sum(c.nacks for c in consumers),
        keyframe_requests=sum(c.keyframe_requests for c in consumers),
    )


def room_out(app: web.Application, room: LiveRoom, meeting: Meeting | None, places: dict[int, tuple[str, str]],
             tz: dt.tzinfo) -> LiveRoomOut:
    """room_out: one room's snapshot and figures as the API shows them."""
    live = app[LIVE]
    meeting_id = room.meeting_id
    state = room.state
    stats: dict[str, ParticipantStats] = {p.participant_id: p for p in room.stats.participants}
    classroom_of = {c.participant_id: c.ident.classroom_id for c in live.in_meeting(meeting_id)}
    people: list[LiveParticipantOut] = []
    recording = False
    for p in state.participants:
        if p.role == RECORDER_ROLE:
            recording = True
            continue
        ps = stats.get(p.id)
        sources: dict[str, list[ProducerStats]] = {}
        for s in ps.producers if ps else ():
            sources.setdefault(s.source, []).append(s)
        producers = [producer_out(layers, source in p.muted) for source, layers in sources.items()]
        cid = classroom_of.get(p.id)
        classroom, unit = places.get(cid, (None, None)) if cid is not None else (None, None)
        people.append(LiveParticipantOut(
            id=p.id, name=p.name, role=p.role, state=p.state, hand_raised=p.hand_raised,
            presenter=p.id == state.presenter_id, floor=p.id == state.floor_id, audio_only=p.audio_only,
            muted=sorted(p.muted), classroom=classroom, unit=unit,
            publish_bitrate=sum(pr.bitrate for pr in producers), producers=producers,
            receive=receive_out(ps.consumers if ps else ())))
    people.sort(key=lambda x: (not x.presenter, not x.floor, x.role not in ("trainer", "leader", "operator"),
                               x.name.casefold()))
    presenter = state.participant(state.presenter_id)
    floor = state.participant(state.floor_id)
    return LiveRoomOut(
        meeting_id=meeting_id, title=meeting.title if meeting else f"#{meeting_id}",
        kind=meeting.kind.value if meeting else None,
        starts_at=meeting.starts_at.astimezone(tz) if meeting else None,
        ends_at=meeting.ends_at.astimezone(tz) if meeting else None,
        video_codec=state.video_codec, participant_count=len(people),
        presenter_id=state.presenter_id, presenter_name=presenter.name if presenter else None,
        floor_id=state.floor_id, floor_name=floor.name if floor else None, locked=state.locked,
        lobby_waiting=len(live.lobby.get(meeting_id, {})), participants=people,
        recording=recording or (RECORDERS in app and meeting_id in app[RECORDERS].active),
        at=dt.datetime.now(tz))


async def live_rooms(app: web.Application, only: int | None = None) -> list[LiveRoomOut]:
    """live_rooms: every live room (or only meeting `only`), by meeting start then title."""
    meeting_ids = [m for m in open_meetings(app[LIVE]) if only is None or m == only]
    if not meeting_ids:
        return []
    classroom_ids = {c.ident.classroom_id for c in app[LIVE].connections
                     if c.meeting_id in meeting_ids and c.ident.classroom_id is not None}
    async with app[DB]() as s:
        meetings = await meetings_by_id(s, meeting_ids)
        places = await roster.classroom_places(s, classroom_ids)
    tz = app[CONFIG].tz
    # Read the rooms after the last await (those closed meanwhile are gone), each at one moment.
    rooms = open_rooms(app[LIVE], meeting_ids)
    out = [room_out(app, room, meetings.get(mid), places, tz) for mid, room in rooms.items()]
    out.sort(key=lambda r: (r.starts_at or dt.datetime.max.replace(tzinfo=dt.UTC), r.title.casefold(),
                            r.meeting_id))
    return out


@endpoint("GET", "/api/v1/live/rooms", name="api-live-rooms", roles=OPERATORS, response=LiveRoomOut,
          response_list=True, tag="live",
          summary="Every live room of this server with its participants and their media figures")
async def list_live_rooms(request: web.Request) -> web.Response:
    """list_live_rooms: the live rooms (empty list when nothing is live)."""
    return json_response(await live_rooms(request.app))


@endpoint("GET", "/api/v1/live/rooms/{meeting_id}", name="api-live-room", roles=OPERATORS, response=LiveRoomOut,
          tag="live", summary="One live room with its participants and their media figures")
async def get_live_room(request: web.Request) -> web.Response:
    """get_live_room: one meeting's live room, 404 when it is not live."""
    meeting_id = int_param(request, "meeting_id")
    rooms = await live_rooms(request.app, only=meeting_id)
    if not rooms:
        raise ApiError(404, "not-live", "Buổi tập huấn này hiện không trực tiếp. / This meeting is not live now.")
    return json_response(rooms[0])
