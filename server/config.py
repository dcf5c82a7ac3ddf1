"""server.config: load and validate config.yaml, with TAPHUAN_* environment overrides.

Every key, its type and its default is declared here with pydantic models; `config.yaml` at the
repository root documents the same keys. A wrong key, type or value raises `ConfigError` with one
line naming the key and what is allowed.

Environment overrides: ``TAPHUAN_<SECTION>__<KEY>=value`` (double underscore between levels), e.g.
``TAPHUAN_SERVER__PORT=9000`` or ``TAPHUAN_DATA_DIR=/srv/taphuan``. Values are parsed as YAML scalars,
so ``true``, ``12`` and ``[127.0.0.1]`` work.

Relative paths (`data_dir`, the `server.tls` certificate and key, a SQLite file in `database.url`) are made
absolute by `load_config` against the configuration file's directory, however they were set; without a
file, against the working directory at load time. A service then finds its data wherever it is started.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

ENV_PREFIX = "TAPHUAN_"
# TAPHUAN_* variables that are not configuration keys: the config file's path, the scripts' venv, the tests'
# event loop, database and demand for the compiled SFU path (README "Development").
NOT_CONFIG = frozenset({"TAPHUAN_CONFIG", "TAPHUAN_VENV", "TAPHUAN_TEST_LOOP", "TAPHUAN_REQUIRE_COMPILED",
                        "TAPHUAN_TEST_DATABASE"})


def udp_range(text: str) -> tuple[int, int] | None:
    """udp_range: "LOW-HIGH" as a pair of ports, or None when empty or invalid."""
    low, sep, high = text.partition("-")
    if not sep or not low.strip().isdigit() or not high.strip().isdigit():
        return None
    lo, hi = int(low), int(high)
    return (lo, hi) if 1024 <= lo <= hi <= 65535 else None


class ConfigError(Exception):
    """ConfigError: the configuration is wrong; str() is one line naming the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsConfig(_Section):
    """TlsConfig: certificate and key files for HTTPS."""

    cert: str
    key: str


class ServerSection(_Section):
    """ServerSection: where and how the HTTP server listens."""

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    public_url: str = ""
    tls: Literal["off", "self-signed"] | TlsConfig = "off"
    trusted_proxies: list[str] = Field(default_factory=list)
    shutdown_timeout: float = Field(3.0, gt=0, le=30)
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_proxies(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item.strip(), strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network (e.g. 127.0.0.1, 10.0.0.0/8, ::1)") \
                    from None
        return value


class DatabaseSection(_Section):
    """DatabaseSection: SQLAlchemy URL; empty means SQLite in the data directory."""

    url: str = ""
    echo: bool = False
    busy_timeout: float = Field(5.0, gt=0, le=60)


class BusSection(_Section):
    """BusSection: in-process bus (embedded default) or Redis for several processes."""

    kind: Literal["memory", "redis"] = "memory"
    redis_url: str = "redis://127.0.0.1:6379/0"


class ClusterSection(_Section):
    """ClusterSection: this node among several (used only with `bus.kind: redis`; see docs/deploy.md): its name,
    the public base URL browsers reach it at (a meeting placed here is sent here; empty: `server.public_url`; with
    neither, this node places no rooms and keeps its own rooms local as before), and the lease of its rooms and
    of its heartbeat in Redis (a dead node's rooms move after it)."""

    node_id: str = Field("", max_length=64, pattern=r"^[A-Za-z0-9_.-]*$")
    url: str = ""
    lease_seconds: float = Field(6.0, ge=1, le=60)
    edge_above: int | None = Field(None, ge=0)


class SecretsSection(_Section):
    """SecretsSection: the session and join-link keys from the configuration (or TAPHUAN_SECRETS__* variables), the
    same on every node; an empty one is generated into data_dir/secrets/ on the first start and read from there."""

    session_key: str = ""
    link_key: str = ""

    @field_validator("session_key", "link_key")
    @classmethod
    def _long_key(cls, value: str) -> str:
        value = value.strip()
        if value and len(value) < 32:
            raise ValueError("use at least 32 characters (e.g. the output of: openssl rand -hex 32)")
        return value


class LimitsSection(_Section):
    """LimitsSection: size and rate limits for requests and messages."""

    max_body_bytes: int = Field(1_048_576, ge=1024)
    max_upload_bytes: int = Field(2_147_483_648, ge=1024)
    ws_message_bytes: int = Field(131_072, ge=1024)
    ws_messages_per_second: float = Field(20.0, gt=0)
    ws_burst: int = Field(40, ge=1)
    ws_flood_messages: int = Field(200, ge=1)
    ws_flood_cooldown_seconds: float = Field(30.0, ge=0)
    ws_connections_per_login: int = Field(4, ge=1)
    ws_connections_per_ip: int = Field(100, ge=1)
    ws_send_queue_messages: int = Field(1024, ge=8)
    ws_send_queue_bytes: int = Field(1_048_576, ge=65_536)
    ws_send_timeout_seconds: float = Field(30.0, gt=0)
    max_sdp_bytes: int = Field(65_536, ge=1024)
    chat_message_chars: int = Field(1000, ge=1)


class AuthSection(_Section):
    """AuthSection: login sessions, rate limits and join links."""

    session_hours: float = Field(12.0, gt=0)
    login_failures_per_minute: int = Field(5, ge=1)
    login_ip_failures_per_minute: int = Field(20, ge=1)
    join_link_hours: float = Field(72.0, gt=0)
    cookie_secure: Literal["auto", "always", "never"] = "auto"
    token_hours: float = Field(720.0, gt=0, le=24 * 366)
    hash_threads: int = Field(2, ge=1, le=64)
    hash_queue: int = Field(16, ge=0, le=10_000)


class TurnSection(_Section):
    """TurnSection: TURN servers with time-limited credentials from a shared secret (coturn REST)."""

    urls: list[str] = Field(default_factory=list)
    secret: str = ""
    ttl_seconds: int = Field(86_400, ge=60)


class SfuSection(_Section):
    """SfuSection: the forwarding core and its network."""

    ice_addresses: list[str] = Field(default_factory=list)
    udp_ports: str = ""
    announce_address: str = ""
    stun_urls: list[str] = Field(default_factory=list)
    turn: TurnSection = Field(default_factory=TurnSection)
    video_codec: Literal["VP8", "H264"] = "VP8"
    grid_slots: int = Field(9, ge=0, le=49)
    max_participants_per_room: int = Field(200, ge=1)
    max_participants: int = Field(500, ge=1)
    room_grace_seconds: float = Field(30.0, ge=0)
    resume_seconds: float = Field(60.0, ge=0)
    keyframe_min_interval: float = Field(0.5, ge=0)
    switch_keyframe_interval: float = Field(30.0, ge=0)
    compiled_fanout: bool = True
    allocation: bool = True
    publish_bitrate: int = Field(3_000_000, ge=0, le=50_000_000)
    receive_wait_ms: float = Field(1.0, ge=0, le=5)
    receive_wait_above: int = Field(8000, ge=0)

    @field_validator("udp_ports")
    @classmethod
    def _valid_ports(cls, value: str) -> str:
        if value and udp_range(value) is None:
            raise ValueError("use LOW-HIGH with 1024 ≤ LOW ≤ HIGH ≤ 65535, e.g. 40000-49999")
        return value


class RecorderSection(_Section):
    """RecorderSection: where recordings go and how much disk must stay free."""

    enabled: bool = True
    auto_start: bool = True
    min_free_bytes: int = Field(2_000_000_000, ge=0)
    retention_days: int = Field(0, ge=0)
    segment_seconds: float = Field(4.0, gt=0)
    worker_nice: int = Field(10, ge=0, le=19)
    continue_gap_minutes: float = Field(10.0, ge=0)


class BroadcastRendition(_Section):
    """BroadcastRendition: one quality of the live broadcast (its directory name, picture size, video bitrate)."""

    name: str = Field(pattern=r"^[a-z0-9]{1,16}$")
    width: int = Field(ge=64, le=3840)
    height: int = Field(ge=64, le=2160)
    video_kbps: int = Field(ge=50, le=20000)

    @field_validator("width", "height")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:
            raise ValueError("must be even (H.264 4:2:0)")
        return value


class BroadcastSection(_Section):
    """BroadcastSection: the live HLS broadcast of recorded meetings and the archive's renditions (recorder/hls.py)."""

    enabled: bool = True
    archive: bool = True  # recordings without a (complete) live broadcast get the renditions after finalizing
    renditions: list[BroadcastRendition] = Field(default_factory=lambda: [
        BroadcastRendition(name="720p", width=1280, height=720, video_kbps=1500),
        BroadcastRendition(name="360p", width=640, height=360, video_kbps=500)], min_length=1, max_length=2)
    fps: int = Field(25, ge=5, le=30)
    segment_seconds: float = Field(1.0, ge=1.0, le=6.0)
    low_latency: bool = False  # LL-HLS: partial segments and blocking playlist reload (recorder/hls.py)
    preset: Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium"] = "veryfast"
    audio_kbps: int = Field(64, ge=32, le=192)
    window_seconds: float = Field(300.0, ge=10.0)
    delay_seconds: float = Field(0.5, ge=0.1, le=5.0)
    nice: int = Field(5, ge=0, le=19)

    @field_validator("renditions")
    @classmethod
    def _names(cls, value: list[BroadcastRendition]) -> list[BroadcastRendition]:
        if len({r.name for r in value}) != len(value):
            raise ValueError("rendition names must differ")
        return value


class WatchSection(_Section):
    """WatchSection: the live broadcast's audience side (/watch, HLS files, the question box; server.live.watch)."""

    question_chars: int = Field(500, ge=20, le=4000)
    questions_per_minute: float = Field(2.0, gt=0, le=60)
    ended_playlist_seconds: int = Field(300, ge=1, le=86400)


class MeetingsSection(_Section):
    """MeetingsSection: when a live meeting ends by itself (see docs/protocol.md, Ending a meeting)."""

    overrun_minutes: float = Field(30.0, ge=0, le=24 * 60)
    check_seconds: float = Field(15.0, gt=0, le=600)


class SmtpSection(_Section):
    """SmtpSection: optional e-mail notifications."""

    host: str = ""
    port: int = Field(25, ge=1, le=65535)
    username: str = ""
    password: str = ""
    starttls: bool = False
    sender: str = "taphuan@localhost"


class DeadlinesSection(_Section):
    """DeadlinesSection: reminders of the regional-meeting documents still missing before their due day."""

    reminder_days: list[int] = Field(default_factory=lambda: [3, 1])
    check_seconds: int = Field(900, ge=10, le=86400)

    @field_validator("reminder_days")
    @classmethod
    def _days(cls, value: list[int]) -> list[int]:
        if any(d < 0 or d > 60 for d in value):
            raise ValueError("each day must be 0 (the due day itself) to 60")
        return sorted(set(value), reverse=True)


class MetricsSection(_Section):
    """MetricsSection: who may read /metrics: these client addresses or networks, or anyone with the bearer token."""

    allow: list[str] = Field(default_factory=lambda: ["127.0.0.1", "::1"])
    token: str = ""

    @field_validator("allow")
    @classmethod
    def _valid_networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError as exc:
                raise ValueError(f"{item!r} is not an IP address or network (e.g. 10.0.0.0/8)") from exc
        return value

    @field_validator("token")
    @classmethod
    def _long_token(cls, value: str) -> str:
        if value and len(value) < 16:
            raise ValueError("use at least 16 characters (e.g. the output of: openssl rand -hex 16)")
        return value


class LearningSection(_Section):
    """LearningSection: e-learning (SCORM) packages: the content origin they play from and import limits."""

    content_origin: str = ""
    content_host: str = ""
    content_port: int = Field(0, ge=0, le=65535)
    package_max_bytes: int = Field(1_073_741_824, ge=1024)
    package_max_files: int = Field(20_000, ge=1)
    package_max_ratio: int = Field(200, ge=2)
    commits_per_minute: int = Field(30, ge=1)

    @field_validator("content_origin")
    @classmethod
    def _valid_origin(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and not re.fullmatch(r"https?://(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?", value):
            raise ValueError(f"{value!r} is not an origin (scheme://host[:port], e.g. https://hoclieu.example.vn)")
        return value


class LogSection(_Section):
    """LogSection: log level and format."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["json", "text"] = "text"


class Config(_Section):
    """Config: the whole validated configuration."""

    data_dir: str = "./data"
    timezone: str = "Asia/Ho_Chi_Minh"
    language: Literal["vi", "en"] = "vi"
    server: ServerSection = Field(default_factory=ServerSection)
    database: DatabaseSection = Field(default_factory=DatabaseSection)
    bus: BusSection = Field(default_factory=BusSection)
    cluster: ClusterSection = Field(default_factory=ClusterSection)
    secrets: SecretsSection = Field(default_factory=SecretsSection)
    limits: LimitsSection = Field(default_factory=LimitsSection)
    auth: AuthSection = Field(default_factory=AuthSection)
    sfu: SfuSection = Field(default_factory=SfuSection)
    recorder: RecorderSection = Field(default_factory=RecorderSection)
    broadcast: BroadcastSection = Field(default_factory=BroadcastSection)
    meetings: MeetingsSection = Field(default_factory=MeetingsSection)
    watch: WatchSection = Field(default_factory=WatchSection)
    smtp: SmtpSection = Field(default_factory=SmtpSection)
    deadlines: DeadlinesSection = Field(default_factory=DeadlinesSection)
    metrics: MetricsSection = Field(default_factory=MetricsSection)
    learning: LearningSection = Field(default_factory=LearningSection)
    log: LogSection = Field(default_factory=LogSection)

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {value!r} (use an IANA name such as Asia/Ho_Chi_Minh)") from exc
        return value

    @model_validator(mode="after")
    def _check(self) -> Config:
        if self.sfu.turn.urls and not self.sfu.turn.secret:
            raise ValueError("sfu.turn.secret is required when sfu.turn.urls is set")
        return self

    @property
    def data_path(self) -> Path:
        """Config.data_path: the data directory as an absolute path (load_config has already anchored a relative
        data_dir to the configuration file's directory)."""
        return Path(self.data_dir).expanduser().resolve()

    @property
    def database_url(self) -> str:
        """Config.database_url: the SQLAlchemy async URL in force."""
        if self.database.url:
            return self.database.url
        return f"sqlite+aiosqlite:///{self.data_path / 'taphuan.sqlite3'}"

    @property
    def tz(self) -> ZoneInfo:
        """Config.tz: the configured timezone."""
        return ZoneInfo(self.timezone)


def _set_path(tree: dict[str, Any], path: list[str], value: Any) -> None:
    node = tree
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[path[-1]] = value


def _env_overrides(env: Mapping[str, str]) -> list[tuple[list[str], Any]]:
    out = []
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or name in NOT_CONFIG:
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX):].split("__") if p]
        if not path:
            continue
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        if isinstance(value, (int, float, bool)) and path[-1] in {"url", "redis_url", "host", "secret", "token",
                                                                     "session_key", "link_key"}:
            value = raw
        out.append((path, value))
    return out


def _describe(error: Any) -> str:
    loc = ".".join(str(p) for p in error["loc"] if not str(p).startswith(("function-", "literal[")))
    msg = error["msg"]
    if error["type"] == "extra_forbidden":
        msg = "unknown key"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    got = error.get("input")
    shown = "" if error["type"] in ("extra_forbidden", "missing") or isinstance(got, dict) else f" (got {got!r})"
    return f"{loc or 'config'}: {msg}{shown}"


def _anchor(value: str, base: Path) -> str:
    """_anchor: a path value made absolute against `base` (after expanding ~)."""
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else base / path)


def _anchor_sqlite(url: str, base: Path) -> str:
    """_anchor_sqlite: a SQLite URL whose relative file path is made absolute against `base`; other URLs as given."""
    if not url.startswith("sqlite"):
        return url
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return url  # the engine names the problem at start-up
    name = parsed.database
    if not name or name == ":memory:" or name.startswith("file:") or Path(name).is_absolute():
        return url
    return parsed.set(database=_anchor(name, base)).render_as_string(hide_password=False)


def _anchor_paths(config: Config, base: Path) -> Config:
    """_anchor_paths: `config` with every relative path value made absolute against the directory `base`."""
    server = config.server
    if isinstance(server.tls, TlsConfig):
        tls = TlsConfig(cert=_anchor(server.tls.cert, base), key=_anchor(server.tls.key, base))
        server = server.model_copy(update={"tls": tls})
    database = config.database.model_copy(update={"url": _anchor_sqlite(config.database.url, base)})
    return config.model_copy(update={"data_dir": _anchor(config.data_dir, base), "server": server,
                                     "database": database})


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None,
                overrides: Mapping[str, Any] | None = None) -> Config:
    """load_config: read YAML (optional), apply TAPHUAN_* variables, then dotted overrides; validate; make
    relative paths absolute against the file's directory (without a file, the working directory)."""
    tree: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{p}: cannot read ({exc.strerror})") from exc
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark is not None else ""
            raise ConfigError(f"{p}:{where} is not valid YAML") from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: the top level must be a mapping of keys")
        tree = loaded
    for key_path, value in _env_overrides(os.environ if env is None else env):
        _set_path(tree, key_path, value)
    for dotted, value in (overrides or {}).items():
        _set_path(tree, dotted.split("."), value)
    try:
        config = Config.model_validate(tree)
    except ValidationError as exc:
        first = exc.errors()[0]
        more = len(exc.errors()) - 1
        suffix = f" (and {more} more error{'s' if more > 1 else ''})" if more else ""
        raise ConfigError(_describe(first) + suffix) from None
    return _anchor_paths(config, Path(path).absolute().parent if path is not None else Path.cwd())


CONFIG: web.AppKey[Config] = web.AppKey("config")
