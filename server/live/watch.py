"""server.live.watch: who may watch a meeting's live broadcast, where its HLS files are, and its public link.

The broadcast of a meeting lives in its current Recording's directory (`<data_dir>/recordings/<directory>/hls/`,
written by the broadcaster: `master.m3u8`, `<rendition>/index.m3u8`, `init.mp4`, `seg<N>.m4s`), so the broadcast
and the recording are one archive entry; a recording's part 2 has its own `hls/`. `broadcast_of` is the one
place that finds it (the meeting's latest Recording row; live while its playlists have no `#EXT-X-ENDLIST`).

Who may watch (`may_watch`): operators; whoever may enter the meeting's live room (presenters, invited
classrooms, the program's trainers: `server.schedule.visibility.enterable`); learners that the audience of the
meeting's recording reaches (`server.live.audience`: enrolled learners, the participants' units, all learners;
`enrolled` before any recording exists); and anyone holding the meeting's public link while an operator keeps it
on (`BroadcastLink`: a signed token naming the meeting and the row's nonce; turning it off deletes the row, so
every link given out dies at once). Everyone else gets 403, an unknown meeting 404, pages, playlists and segments
alike.

`Watch` (one per app, under `WATCH`) caches for a few seconds what every HLS request needs (the broadcast's
directory, the link's nonce, a login's access) so that a thousand viewers cost no database query per segment,
and holds the question box's per-viewer rate limits.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import literal, select

from server.auth import SECRETS, Identity
from server.config import CONFIG
from server.db.engine import DB
from server.db.models import (
    BroadcastLink,
    Meeting,
    MeetingStatus,
    Recording,
    RecordingAudience,
    Role,
)
from server.errors import ApiError
from server.live.audience import reaches
from server.live.broadcast import BROADCASTS
from server.ratelimit import TokenBucket
from server.schedule.visibility import enterable

CACHE_SECONDS = 2.0  # how long a broadcast's directory, a public link's nonce or a login's access is believed
CACHE_ENTRIES = 20_000  # at most this many logins' access decisions are kept
ENDLIST = b"#EXT-X-ENDLIST"


def not_found() -> ApiError:
    """not_found: the 404 of an unknown meeting (or one the caller may not know of)."""
    return ApiError(404, "not-found", "Không có buổi tập huấn này. / No such meeting.")


def forbidden() -> ApiError:
    """forbidden: the 403 of a broadcast the caller may not watch."""
    return ApiError(403, "forbidden", "Bạn không thuộc đối tượng được xem buổi phát trực tiếp này. / "
                                      "You are not in the audience of this live broadcast.")


@dataclass(frozen=True)
class Broadcast:
    """Broadcast: a meeting's current broadcast: its recording, the `hls/` directory, whether it started (a master
    playlist exists) and whether it is live (no ENDLIST yet)."""

    meeting_id: int
    recording_id: int
    directory: Path
    started: bool
    live: bool


@dataclass
class Watch:
    """Watch: the app's short-lived caches for broadcasts, public links and access, and the question limits."""

    app: web.Application
    recordings: dict[int, tuple[float, tuple[int, str] | None]] = field(default_factory=dict)  # meeting → latest
    owners: dict[int, tuple[float, tuple[int, str] | None]] = field(default_factory=dict)  # recording → meeting, dir
    nonces: dict[int, tuple[float, str | None]] = field(default_factory=dict)
    access: OrderedDict[tuple[str, int], tuple[float, bool]] = field(default_factory=OrderedDict)
    buckets: OrderedDict[str, TokenBucket] = field(default_factory=OrderedDict)
    # lookups under way: the requests that find a cache entry expired at once all wait for one query
    inflight: dict[tuple[str, int], asyncio.Future[Any]] = field(default_factory=dict)

    async def _once(self, kind: str, key: int, load: Callable[[], Awaitable[Any]]) -> Any:
        """Watch._once: `load()` once for every caller asking for (kind, key) while it runs."""
        running = self.inflight.get((kind, key))
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.inflight[(kind, key)] = future
        try:
            value = await load()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody else waited
            raise
        finally:
            self.inflight.pop((kind, key), None)
        future.set_result(value)
        return value

    tokens: OrderedDict[str, tuple[int, str] | None] = field(default_factory=OrderedDict)  # checked signatures
    root: Path = field(init=False)  # the directory holding every recording

    def __post_init__(self) -> None:
        self.root = self.app[CONFIG].data_path / "recordings"

    async def latest_recording(self, meeting_id: int) -> tuple[int, str] | None:
        """Watch.latest_recording: (id, directory) of the meeting's current recording (its latest part)."""
        now = time.monotonic()
        hit = self.recordings.get(meeting_id)
        if hit is not None and now - hit[0] < CACHE_SECONDS:
            return hit[1]

        async def load() -> tuple[int, str] | None:
            async with self.app[DB]() as s:
                row = (await s.execute(select(Recording.id, Recording.directory)
                                       .where(Recording.meeting_id == meeting_id)
                                       .order_by(Recording.part.desc(), Recording.id.desc()).limit(1))).first()
            return (int(row[0]), str(row[1])) if row is not None else None

        value = await self._once("latest", meeting_id, load)
        self.recordings[meeting_id] = (time.monotonic(), value)
        return value

    async def recording_owner(self, recording_id: int) -> tuple[int, str] | None:
        """Watch.recording_owner: (meeting id, directory) of a recording (None unknown or without a meeting); a
        recording's meeting and directory never change: known ones stay cached (an unknown one for a moment)."""
        now = time.monotonic()
        hit = self.owners.get(recording_id)
        if hit is not None and (hit[1] is not None or now - hit[0] < CACHE_SECONDS):
            return hit[1]

        async def load() -> tuple[int, str] | None:
            async with self.app[DB]() as s:
                row = (await s.execute(select(Recording.meeting_id, Recording.directory)
                                       .where(Recording.id == recording_id))).first()
            return (int(row[0]), str(row[1])) if row is not None and row[0] is not None else None

        value = await self._once("owner", recording_id, load)
        self.owners[recording_id] = (time.monotonic(), value)
        while len(self.owners) > CACHE_ENTRIES:
            self.owners.pop(next(iter(self.owners)))
        return value

    async def nonce(self, meeting_id: int) -> str | None:
        """Watch.nonce: the nonce of the meeting's public link (None while it is off)."""
        now = time.monotonic()
        hit = self.nonces.get(meeting_id)
        if hit is not None and now - hit[0] < CACHE_SECONDS:
            return hit[1]

        async def load() -> str | None:
            async with self.app[DB]() as s:
                found = await s.scalar(select(BroadcastLink.nonce).where(BroadcastLink.meeting_id == meeting_id))
            return str(found) if found is not None else None

        value = await self._once("nonce", meeting_id, load)
        self.nonces[meeting_id] = (time.monotonic(), value)
        return value

    def forget(self, meeting_id: int) -> None:
        """Watch.forget: drop what is cached about a meeting's public link (it was turned on or off here)."""
        self.nonces.pop(meeting_id, None)

    def hls_dir(self, directory: str) -> Path:
        """Watch.hls_dir: the `hls/` directory of a recording directory (relative to the recordings root)."""
        return self.root / directory / "hls"

    def take(self, viewer: str, per_minute: float | None = None, burst: int = 3) -> bool:
        """Watch.take: whether `viewer` (or an address: `per_minute`, `burst`) may send a question now
        (watch.questions_per_minute, burst 3)."""
        bucket = self.buckets.get(viewer)
        if bucket is None:
            rate = per_minute if per_minute is not None else self.app[CONFIG].watch.questions_per_minute
            bucket = TokenBucket(rate / 60, burst)
            self.buckets[viewer] = bucket
            while len(self.buckets) > CACHE_ENTRIES:
                self.buckets.popitem(last=False)
        self.buckets.move_to_end(viewer)
        return bucket.take()


# ------------------------------------------------------------------------------------ the broadcast


def playlist_ended(path: Path) -> bool:
    """playlist_ended: whether an HLS playlist file says the stream ended (#EXT-X-ENDLIST)."""
    try:
        return ENDLIST in path.read_bytes()
    except OSError:
        return False


def finished_hls(directory: Path) -> bool:
    """finished_hls: whether a recording directory holds finished HLS renditions (a master playlist, and media
    playlists that all end with #EXT-X-ENDLIST): the archive player's video on demand."""
    hls = directory / "hls"
    if not (hls / "master.m3u8").is_file():
        return False
    playlists = list(hls.glob("*/index.m3u8"))
    return bool(playlists) and all(playlist_ended(p) for p in playlists)


def _live_state(app: web.Application, meeting_id: int, hls: Path) -> bool:
    """_live_state: whether the meeting's broadcast in `hls` is live: the broadcaster's word when it broadcasts the
    meeting into `hls` (server.live.broadcast), else the first rendition's playlist (no #EXT-X-ENDLIST yet: HLS
    written by another node or process)."""
    broadcasts = app.get(BROADCASTS)
    if broadcasts is not None and broadcasts.directory(meeting_id) == hls:
        return broadcasts.live(meeting_id)
    for playlist in sorted(hls.glob("*/index.m3u8")):
        return not playlist_ended(playlist)
    return False


async def broadcast_of(app: web.Application, meeting_id: int) -> Broadcast | None:
    """broadcast_of: the meeting's current broadcast (its latest recording's `hls/`), None before any recording."""
    watch = app[WATCH]
    latest = await watch.latest_recording(meeting_id)
    if latest is None:
        return None
    hls = watch.hls_dir(latest[1])
    started = (hls / "master.m3u8").is_file()
    return Broadcast(meeting_id, latest[0], hls, started, started and _live_state(app, meeting_id, hls))


# -------------------------------------------------------------------------------------- public links


def _serializer(app: web.Application) -> URLSafeSerializer:
    return serializer(app[SECRETS].link_key)


def serializer(link_key: bytes) -> URLSafeSerializer:
    """serializer: what signs public links, with the server's link key (data_dir/secrets/link.key)."""
    return URLSafeSerializer(link_key, salt="broadcast-link")


def link_token(app: web.Application, meeting_id: int, nonce: str) -> str:
    """link_token: the signed token of a meeting's public link."""
    return str(_serializer(app).dumps([meeting_id, nonce]))


async def public_ok(app: web.Application, meeting_id: int, token: str) -> bool:
    """public_ok: whether `token` is the meeting's public link, still on."""
    if not token or len(token) > 200:
        return False
    watch = app[WATCH]
    if token in watch.tokens:  # its signature was checked before (what it names is still checked below)
        signed = watch.tokens[token]
    else:
        try:
            value = _serializer(app).loads(token)
        except BadSignature:
            value = None
        ok = isinstance(value, list) and len(value) == 2 and isinstance(value[0], int) and isinstance(value[1], str)
        signed = (value[0], value[1]) if ok else None
        watch.tokens[token] = signed
        while len(watch.tokens) > CACHE_ENTRIES:
            watch.tokens.popitem(last=False)
    if signed is None or signed[0] != meeting_id:
        return False
    nonce = await watch.nonce(meeting_id)
    return nonce is not None and nonce == signed[1]


def public_url(app: web.Application, meeting_id: int, nonce: str) -> str:
    """public_url: the path of the meeting's public watch link."""
    return f"/watch/{meeting_id}?k={link_token(app, meeting_id, nonce)}"


# -------------------------------------------------------------------------------------------- access


async def may_watch(app: web.Application, ident: Identity, meeting_id: int) -> bool | None:
    """may_watch: whether `ident` may watch the meeting's broadcast (None: no such meeting)."""
    async with app[DB]() as s:
        row = (await s.execute(select(Meeting.status, Meeting.program_id).where(Meeting.id == meeting_id))).first()
        if row is None:
            return None
        if ident.role == Role.OPERATOR:
            return True
        one = select(Meeting.id).where(Meeting.id == meeting_id)
        if ident.role != Role.LEARNER:
            return await s.scalar(enterable(one, ident)) is not None
        if row[0] != MeetingStatus.PUBLISHED or ident.user_id is None:
            return False
        audience = await s.scalar(select(Recording.audience).where(Recording.meeting_id == meeting_id)
                                  .order_by(Recording.part.desc(), Recording.id.desc()).limit(1))
        audience = audience or RecordingAudience.ENROLLED
        found = await s.scalar(select(literal(1)).where(
            reaches(literal(audience.value), ident.user_id, row[1], meeting_id)))
        return found is not None


async def may_watch_cached(app: web.Application, ident: Identity, meeting_id: int) -> bool | None:
    """may_watch_cached: `may_watch` remembered for a few seconds per login (the HLS files' check)."""
    watch = app[WATCH]
    key = (ident.login_id, meeting_id)
    now = time.monotonic()
    hit = watch.access.get(key)
    if hit is not None and now - hit[0] < CACHE_SECONDS:
        return hit[1]
    allowed = await may_watch(app, ident, meeting_id)
    if allowed is None:
        return None
    watch.access[key] = (now, allowed)
    watch.access.move_to_end(key)
    while len(watch.access) > CACHE_ENTRIES:
        watch.access.popitem(last=False)
    return allowed


@dataclass(frozen=True)
class Viewer:
    """Viewer: who is watching: `key` ("user:<id>", "login:<digest>" or "anon:<digest>"), their identity (None on
    the public link without a login) and whether they watch by the public link (`public`: a login in the audience
    never does; one outside it may)."""

    key: str
    ident: Identity | None
    public: bool

    @property
    def name(self) -> str:
        """Viewer.name: the viewer's display name ("" for an anonymous viewer)."""
        return (self.ident.display_name or self.ident.username) if self.ident is not None else ""


def viewer_key(ident: Identity | None, meeting_id: int, client_id: str) -> str:
    """viewer_key: the stable key of a viewer of a meeting: their account, their login, or the anonymous player's
    own random id (hashed with the meeting: nothing links two meetings' anonymous viewers)."""
    if ident is not None and ident.user_id is not None:
        return f"user:{ident.user_id}"
    if ident is not None:
        return "login:" + hashlib.sha256(ident.login_id.encode()).hexdigest()[:24]
    return "anon:" + hashlib.sha256(f"{meeting_id}:{client_id}".encode()).hexdigest()[:24]


async def check_viewer(request: web.Request, meeting_id: int, token: str, client_id: str = "") -> Viewer:
    """check_viewer: the viewer of the request (its login, else the public link `token`), or 404/403/401."""
    from server.auth import identity

    ident = identity(request)
    if ident is not None:
        allowed = await may_watch_cached(request.app, ident, meeting_id)
        if allowed is None:
            raise not_found()
        if allowed:
            return Viewer(viewer_key(ident, meeting_id, client_id), ident, False)
    if token and await public_ok(request.app, meeting_id, token):
        if ident is None and not valid_client_id(client_id):
            client_id = "page"
        # by the link (a login outside the audience too): its files are the public ones
        return Viewer(viewer_key(ident, meeting_id, client_id), ident, True)
    if ident is None:
        async with request.app[DB]() as s:
            known = await s.scalar(select(Meeting.id).where(Meeting.id == meeting_id))
        if known is None:
            raise not_found()
        if token:  # a link given out, turned off since (or mistyped): say so, not "log in"
            raise ApiError(403, "link-off", "Liên kết xem công khai này đã bị tắt hoặc không đúng. / "
                                            "This public watch link is turned off or wrong.")
        raise ApiError(401, "unauthenticated", "Cần đăng nhập để xem buổi phát trực tiếp này. / "
                                               "Log in to watch this live broadcast.")
    raise forbidden()


def valid_client_id(value: Any) -> bool:
    """valid_client_id: a player's random id: 8 to 64 letters, digits or dashes."""
    return isinstance(value, str) and 8 <= len(value) <= 64 and all(c.isascii() and (c.isalnum() or c == "-")
                                                                     for c in value)


async def _watch_ctx(app: web.Application) -> Any:
    app[WATCH] = Watch(app)
    yield


def setup(app: web.Application) -> None:
    """setup: the `Watch` caches (a cleanup context; server.live.hls adds the file routes and calls this)."""
    app.cleanup_ctx.append(_watch_ctx)


WATCH: web.AppKey[Watch] = web.AppKey("watch", Watch)
