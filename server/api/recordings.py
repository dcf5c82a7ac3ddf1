"""server.api.recordings: /api/v1/recordings: the archive (list, state and progress, media with Range, chapters,
publish to an audience, unpublish and delete by operators). Who sees what: `server.live.recordings.visible`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from server.auth import require
from server.config import CONFIG
from server.db.engine import DB
from server.db.models import Recording, RecordingAudience, RecordingState, Role
from server.errors import ApiError
from server.inputs import check_id
from server.learning import archive
from server.live.broadcast import BROADCASTS
from server.live.recordings import RECORDERS
from server.live.watch import finished_hls
from server.openapi import TEXT, endpoint, int_param, json_response, parse_body

OPERATORS = (Role.OPERATOR,)
STAFF = (Role.OPERATOR, Role.TRAINER, Role.LEADER)


class ChapterOut(BaseModel):
    """ChapterOut: one chapter of a recording (seconds)."""

    start: float
    end: float
    title: str


class RecordingOut(BaseModel):
    """RecordingOut: a recording with its state (recording, processing with progress, ready, failed)."""

    id: int
    title: str
    meeting_id: int | None
    part: int  # the meeting's n-th lecture video: a meeting's recordings are the parts of one archive entry
    program_id: int | None
    program_title: str
    state: str
    progress: int
    error: str
    recovered: bool
    gaps: int  # times media was lost while recording (the server's disk fell too far behind)
    published: bool
    audience: RecordingAudience  # which learners a published recording reaches: enrolled, units, all
    video_codec: str
    mime: str
    duration: float
    size: int
    started_at: dt.datetime
    ended_at: dt.datetime | None
    chapters: list[ChapterOut]
    originals: list[str]
    media_url: str
    hls_url: str | None  # the HLS renditions (master playlist) once the recording has finished ones, else null
    download_url: str
    chapters_url: str
    # its HLS renditions in the recording's hls/ (server.live.broadcast): "" none, live, queued, encoding
    # (hls_progress percent), ready, failed
    hls_state: str = ""
    hls_progress: int = 0


class RecordingPatch(BaseModel):
    """RecordingPatch: operators publish or unpublish a recording to learners, or rename it."""

    model_config = ConfigDict(extra="forbid")  # a command: an unknown key is an error

    published: bool | None = None
    title: str | None = Field(None, min_length=1, max_length=300)
    audience: RecordingAudience | None = None


class AudienceOption(BaseModel):
    """AudienceOption: one audience a recording may be published to and how many learners it reaches."""

    audience: RecordingAudience
    learners: int


class AudienceOut(BaseModel):
    """AudienceOut: a recording's audience now and what each choice would reach (the publish form)."""

    id: int
    program_id: int | None
    meeting_id: int | None
    published: bool
    audience: RecordingAudience
    options: list[AudienceOption]


def recording_out(request: web.Request, row: Recording, program_title: str = "") -> RecordingOut:
    """recording_out: a Recording row as RecordingOut (live progress from the recorder service)."""
    tz = request.app[CONFIG].tz
    progress = request.app[RECORDERS].progress.get(row.id, row.progress) if RECORDERS in request.app \
        else row.progress
    base = f"/api/v1/recordings/{row.id}"
    return RecordingOut(
        id=row.id, title=row.title, meeting_id=row.meeting_id, part=row.part, program_id=row.program_id,
        program_title=program_title, state=row.state.value, progress=progress, error=row.error,
        recovered=row.recovered, gaps=row.gaps, published=row.published, audience=row.audience,
        video_codec=row.video_codec, mime=row.mime,
        duration=row.duration, size=row.size, started_at=row.started_at.astimezone(tz),
        ended_at=row.ended_at.astimezone(tz) if row.ended_at else None,
        chapters=[ChapterOut(**c) for c in row.chapters or []], originals=sorted(row.originals or {}),
        media_url=f"{base}/media", hls_url=hls_url(request, row), download_url=f"{base}/media?download=1",
        chapters_url=f"{base}/chapters.vtt", hls_state=row.hls_state, hls_progress=hls_progress(request, row))


def hls_progress(request: web.Request, row: Recording) -> int:
    """hls_progress: the percent done of the recording's archive renditions (live from the broadcast service)."""
    broadcasts = request.app.get(BROADCASTS)
    return broadcasts.progress.get(row.id, row.hls_progress) if broadcasts is not None else row.hls_progress


def hls_url(request: web.Request, row: Recording) -> str | None:
    """hls_url: the master playlist of the recording's finished HLS renditions (`hls/master.m3u8` whose media
    playlists end with #EXT-X-ENDLIST: server.live.hls serves them), None without them."""
    return f"/hls/{row.id}/master.m3u8" if finished_hls(request.app[CONFIG].data_path / "recordings" / row.directory) \
        else None


async def _load(request: web.Request, *, for_media: bool = False) -> Recording:
    """_load: the recording of the path's {id} if the caller may see it (404 unknown, 403 not allowed)."""
    ident = require(request)
    rid = int_param(request, "id")
    async with request.app[DB]() as s:
        row = await archive.viewable(s, ident, rid)
    if for_media and (row.state != RecordingState.READY or not row.file):
        raise ApiError(409, "not-ready", "Bản ghi hình chưa sẵn sàng. / The recording is not ready yet.")
    return row


def _path(request: web.Request, row: Recording, rel: str) -> Path:
    root = (request.app[CONFIG].data_path / "recordings").resolve()
    path = (root / row.directory / rel).resolve()
    if root not in path.parents or not path.is_file():
        raise archive.not_found()
    return path


@endpoint("GET", "/api/v1/recordings", name="api-recordings", summary="Recordings the caller may watch",
          response=RecordingOut, response_list=True, tag="recordings",
          query=(("q", "words of the title"), ("program_id", "only this program"),
                 ("meeting_id", "only this meeting"), ("since", "started on or after (YYYY-MM-DD)"),
                 ("until", "started on or before (YYYY-MM-DD)")))
async def list_recordings(request: web.Request) -> web.Response:
    """list_recordings: newest first, filtered by title words, program, meeting and dates."""
    ident = require(request)
    q = request.query
    ids: dict[str, int | None] = {}
    for name in ("program_id", "meeting_id"):
        ids[name] = None
        if q.get(name):
            if not (q[name].isascii() and q[name].isdigit()):
                raise ApiError(400, "invalid", f"{name} phải là số / {name} must be a number", field=name)
            ids[name] = check_id(int(q[name]), name)
    tz = request.app[CONFIG].tz
    days: dict[str, dt.datetime | None] = {}
    for name in ("since", "until"):
        days[name] = None
        if q.get(name):
            try:
                day = dt.date.fromisoformat(q[name])
            except ValueError:
                raise ApiError(400, "invalid", f"{name}: YYYY-MM-DD", field=name) from None
            days[name] = dt.datetime.combine(day + dt.timedelta(days=name == "until"), dt.time(), tzinfo=tz)
    async with request.app[DB]() as s:
        rows = await archive.find(s, ident, words=(q.get("q") or "").split()[:8], program_id=ids["program_id"],
                                  meeting_id=ids["meeting_id"], since=days["since"], until=days["until"])
    return json_response([recording_out(request, row, title) for row, title in rows])


@endpoint("GET", "/api/v1/recordings/{id}", name="api-recording", summary="One recording, its state and chapters",
          response=RecordingOut, tag="recordings")
async def get_recording(request: web.Request) -> web.Response:
    """get_recording: one recording (403 when the caller may not watch it)."""
    row = await _load(request)
    async with request.app[DB]() as s:
        title = await archive.program_title(s, row)
    return json_response(recording_out(request, row, title))


@endpoint("GET", "/api/v1/recordings/{id}/audience", name="api-recording-audience",
          summary="Who a recording reaches: its audience and the learners each audience would reach",
          roles=OPERATORS, response=AudienceOut, tag="recordings")
async def recording_audience(request: web.Request) -> web.Response:
    """recording_audience: the publish form's "who will see it" (counts of active learner accounts)."""
    rid = int_param(request, "id")
    async with request.app[DB]() as s:
        row, counts = await archive.audience(s, rid)
    return json_response(AudienceOut(id=row.id, program_id=row.program_id, meeting_id=row.meeting_id,
                                     published=row.published, audience=row.audience,
                                     options=[AudienceOption(audience=a, learners=n) for a, n in counts.items()]))


@endpoint("PATCH", "/api/v1/recordings/{id}", name="api-recording-update",
          summary="Publish or unpublish a recording to learners (audience: enrolled, units or all), or rename it",
          roles=OPERATORS,
          body=RecordingPatch, response=RecordingOut, tag="recordings",
          errors=(409,))
async def update_recording(request: web.Request) -> web.Response:
    """update_recording: publish (ready recordings only), unpublish, rename or choose the audience; audit-logged."""
    rid = int_param(request, "id")
    data = await parse_body(request, RecordingPatch)
    async with request.app[DB]() as s:
        row = await archive.change(s, request, rid, published=data.published, title=data.title,
                                   audience=data.audience)
        await s.commit()
    return json_response(recording_out(request, row))


@endpoint("DELETE", "/api/v1/recordings/{id}", name="api-recording-delete",
          summary="Delete a recording and its files (audit-logged; refused while recording or processing)",
          roles=OPERATORS, status=204, tag="recordings",
          errors=(409,))
async def remove_recording(request: web.Request) -> web.Response:
    """remove_recording: delete the files and the row; the audit log keeps what was deleted and by whom."""
    rid = int_param(request, "id")
    async with request.app[DB]() as s:
        await archive.remove(s, request, request.app[CONFIG].data_path / "recordings", rid)
        await s.commit()
    return web.Response(status=204)


@endpoint("GET", "/api/v1/recordings/{id}/media", name="api-recording-media",
          summary="The lecture video (HTTP Range requests; ?download=1 to save it)", tag="recordings",
          content_type="video/webm",
          partial=True, errors=(409, 416))
async def recording_media(request: web.Request) -> web.StreamResponse:
    """recording_media: the lecture file, with Range support (206) so the player seeks at once."""
    row = await _load(request, for_media=True)
    path = _path(request, row, row.file)
    headers = {"Content-Type": row.mime or "application/octet-stream", "Cache-Control": "private, max-age=3600"}
    if request.query.get("download"):
        stem = "".join(ch if ch.isalnum() or ch in "-_ " else "_" for ch in row.title)[:80].strip() or "ghi-hinh"
        headers["Content-Disposition"] = f"attachment; filename=\"recording-{row.id}{path.suffix}\"; " \
                                         f"filename*=UTF-8''{_quote(stem)}{path.suffix}"
    return web.FileResponse(path, headers=headers)


@endpoint("GET", "/api/v1/recordings/{id}/chapters.vtt", name="api-recording-chapters",
          summary="WebVTT chapters of the lecture video", tag="recordings", content_type="text/vtt",
          errors=(409,))
async def recording_chapters(request: web.Request) -> web.StreamResponse:
    """recording_chapters: the chapters file for <track kind="chapters">."""
    row = await _load(request, for_media=True)
    path = _path(request, row, "chapters.vtt")
    return web.Response(body=path.read_bytes(), content_type="text/vtt", charset="utf-8")


@endpoint("GET", "/api/v1/recordings/{id}/originals/{slot}", name="api-recording-original",
          summary="One original stream of the recording (presenter, screen, floor)", roles=STAFF,
          tag="recordings", content_type="video/webm",
          schemas={"slot": TEXT}, partial=True, errors=(409, 416))
async def recording_original(request: web.Request) -> web.StreamResponse:
    """recording_original: a per-stream original file (staff who may watch the recording)."""
    row = await _load(request, for_media=True)
    rel = (row.originals or {}).get(request.match_info["slot"])
    if rel is None:
        raise archive.not_found()
    path = _path(request, row, rel)
    kind = "audio" if request.match_info["slot"].endswith("audio") else "video"
    ctype = f"{kind}/webm" if path.suffix == ".webm" else "video/x-matroska"
    return web.FileResponse(path, headers={"Content-Type": ctype,
                                           "Content-Disposition": f"attachment; filename=\"{path.name}\""})


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text)
