"""wsflood: one login floods the signalling WebSocket while a classroom watches the presenter: what the meeting pays.

The server runs as its own process (``python -m server.cli serve``, a temporary data directory, SQLite, on
127.0.0.1). In this process a trainer publishes a 30 fps camera (aiortc, 160x120) and a classroom receives it,
decoding every frame; a leader who is not invited to the meeting floods from a third process (tests/wsflood.py):
--connections sockets of its one login send ``{"type":"nope"}`` and 16-byte binary frames in turn, as fast as the
server takes them, and open again after --reconnect-delay when closed. Each run has two phases of --phase seconds,
before the flood and during it; /healthz is asked every 0.2 s in both.

    .venv/bin/python bench/wsflood.py                   # the limits of config.yaml
    .venv/bin/python bench/wsflood.py --no-close        # sockets not capped, floods not closed: silent drops only
    .venv/bin/python bench/wsflood.py --set limits.ws_connections_per_login=20 --repeat 3
    .venv/bin/python bench/wsflood.py --server-root DIR # the server of another checkout (built), e.g. an older commit

Printed per run: the classroom's frames per second before and during the flood and their ratio (the issue asks
for >= 0.9); /healthz's latencies (median and max) before and during; what the flooder sent (text, binary),
how many replies it got (by code), the messages it sent that were never answered, the sockets it opened and how
they ended (`closed` reasons, close codes); the server's own counts from /metrics (messages refused by reason,
sockets refused or closed by a limit); the server's CPU (% of one core) in each phase.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import re
import secrets
import signal
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from sqlalchemy import insert  # noqa: E402

from server.auth import COOKIE  # noqa: E402
from server.config import load_config  # noqa: E402
from server.db.engine import make_engine, make_sessionmaker  # noqa: E402
from server.db.models import (  # noqa: E402
    Classroom,
    LoginSession,
    Meeting,
    MeetingStatus,
    Program,
    Role,
    Unit,
    UnitLevel,
    User,
    meeting_classrooms,
    meeting_presenters,
)
from tests.live_client import LiveClient  # noqa: E402
from tests.sfu.helpers import RED, ColorTrack  # noqa: E402

NO_CLOSE = {"limits.ws_connections_per_login": "1000", "limits.ws_flood_messages": "1000000000"}


def free_port() -> int:
    """free_port: a TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """cpu_seconds: user + system CPU seconds of a process, from /proc."""
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    """Server: `taphuan serve` in its own process and session, with `overrides` as TAPHUAN_* variables."""

    def __init__(self, directory: Path, overrides: dict[str, str], root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.config_path = directory / "config.yaml"
        self.config_path.write_text(
            f"data_dir: {json.dumps(str(directory / 'data'))}\n"
            f"server: {{host: 127.0.0.1, port: {self.port}, shutdown_timeout: 3.0}}\n"
            "sfu: {ice_addresses: [127.0.0.1]}\n"
            "recorder: {enabled: false}\n"
            "log: {level: WARNING, format: text}\n", encoding="utf-8")
        self.env = {**os.environ, **{"TAPHUAN_" + k.upper().replace(".", "__"): v for k, v in overrides.items()}}
        self.log_path = directory / "server.log"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, within: float = 60.0) -> int:
        """Server.start: start it and wait until /healthz answers; returns its pid."""
        with self.log_path.open("wb") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "server.cli", "serve", "--config", str(self.config_path), cwd=str(self.root),
                env=self.env, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=asyncio.subprocess.STDOUT,
                start_new_session=True)
        deadline = time.monotonic() + within
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if self.proc.returncode is not None:
                    raise RuntimeError(f"the server exited:\n{self.log_path.read_text(errors='replace')[-2000:]}")
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with http.get(self.base + "/healthz", timeout=aiohttp.ClientTimeout(total=2)) as r:
                        if r.status == 200:
                            return self.proc.pid
                await asyncio.sleep(0.25)
        raise RuntimeError("the server did not answer /healthz")

    async def stop(self) -> None:
        """Server.stop: SIGTERM, SIGKILL after 15 s."""
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def cast(database_url: str) -> tuple[int, dict[str, str]]:
    """cast: a trainer presenting a published meeting, its classroom, a leader not invited; their login tokens."""
    engine = make_engine(database_url)
    db = make_sessionmaker(engine)
    now = dt.datetime.now(dt.UTC)
    try:
        async with db() as s:
            unit = Unit(code="FLOOD", name="Tỉnh thử", level=UnitLevel.PROVINCE)
            program = Program(title="Chương trình thử")
            s.add_all([unit, program])
            await s.flush()
            room = Classroom(code="FLOOD1", name="Lớp thử", unit_id=unit.id)
            meeting = Meeting(program_id=program.id, title="Thử tràn tin nhắn", status=MeetingStatus.PUBLISHED,
                              starts_at=now - dt.timedelta(minutes=5), ends_at=now + dt.timedelta(hours=2))
            s.add_all([room, meeting])
            await s.flush()
            users = {"trainer": User(username="flood-trainer", display_name="Giảng viên", role=Role.TRAINER),
                     "classroom": User(username="flood-class", display_name="Lớp thử", role=Role.CLASSROOM,
                                       classroom_id=room.id),
                     "attacker": User(username="flood-leader", display_name="Lãnh đạo", role=Role.LEADER)}
            s.add_all(users.values())
            await s.flush()
            await s.execute(insert(meeting_presenters).values(meeting_id=meeting.id, user_id=users["trainer"].id))
            await s.execute(insert(meeting_classrooms).values(meeting_id=meeting.id, classroom_id=room.id))
            tokens: dict[str, str] = {}
            for name, user in users.items():
                token = secrets.token_urlsafe(32)
                s.add(LoginSession(id=token, user_id=user.id, csrf_token=secrets.token_urlsafe(24), created_at=now,
                                   expires_at=now + dt.timedelta(hours=2), ip="127.0.0.1", user_agent="wsflood"))
                tokens[name] = token
            await s.commit()
            return meeting.id, tokens
    finally:
        await engine.dispose()


async def metric_samples(http: aiohttp.ClientSession, base: str) -> dict[str, float]:
    """metric_samples: the server's WebSocket limit counters from /metrics (empty when it does not answer)."""
    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
        async with http.get(base + "/metrics", timeout=aiohttp.ClientTimeout(total=5)) as r:
            if r.status == 200:
                pattern = r"^(taphuan_ws_(?:messages_refused|policy_closes)_total\{[^}]*\}) (\S+)$"
                return {m.group(1): float(m.group(2)) for m in re.finditer(pattern, await r.text(), re.M)}
    return {}


class Healthz:
    """Healthz: /healthz asked every 0.2 s; each latency (s) kept, 10 s counted when it does not answer."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http, self.base = http, base
        self.latencies: list[float] = []
        self.asked: float | None = None  # when the request in flight was sent
        self.task = asyncio.create_task(self.run())

    async def run(self) -> None:
        """Healthz.run: ask until cancelled."""
        while True:
            self.asked = t0 = time.monotonic()
            try:
                async with self.http.get(self.base + "/healthz", timeout=aiohttp.ClientTimeout(total=10)) as r:
                    await r.read()
                self.latencies.append(time.monotonic() - t0)
            except (aiohttp.ClientError, TimeoutError):
                self.latencies.append(10.0)
            self.asked = None
            await asyncio.sleep(0.2)

    def take(self) -> list[float]:
        """Healthz.take: the latencies since the last take; a request still unanswered counts with its wait so
        far (and again, whole, in the next take)."""
        out, self.latencies = self.latencies, []
        if self.asked is not None:
            out.append(time.monotonic() - self.asked)
        return out


def latency_text(values: list[float]) -> str:
    """latency_text: count, median and max of latencies, in ms."""
    if not values:
        return "no answer"
    return f"n={len(values)} median {statistics.median(values) * 1000:.1f} ms, max {max(values) * 1000:.1f} ms"


async def one_run(args: argparse.Namespace, overrides: dict[str, str]) -> dict[str, Any]:
    """one_run: a fresh server, the meeting, the two phases; the figures."""
    with tempfile.TemporaryDirectory(prefix="wsflood-") as tmp:
        server = Server(Path(tmp), overrides, Path(args.server_root or ROOT))
        pid = await server.start()
        config = load_config(server.config_path, env={})
        made: list[LiveClient] = []
        sessions: list[aiohttp.ClientSession] = []
        try:
            meeting_id, tokens = await cast(config.database_url)
            url = server.base.replace("http", "ws") + "/ws"
            for name in ("trainer", "classroom"):
                sessions.append(aiohttp.ClientSession(cookies={COOKIE: tokens[name]}))
            trainer = LiveClient(sessions[0], url)
            classroom = LiveClient(sessions[1], url)
            made += [trainer, classroom]
            await trainer.connect()
            await trainer.join(meeting_id)
            await trainer.publish(ColorTrack(RED), audio=False)
            await classroom.connect()
            await classroom.join(meeting_id)
            await classroom.wait_frames("presenter-video", 30, within=60)
            frames = classroom.slot_frames("presenter-video")
            plain = aiohttp.ClientSession()
            sessions.append(plain)
            health = Healthz(plain, server.base)

            async def phase() -> tuple[float, float]:
                n0, t0, c0 = len(frames), time.monotonic(), cpu_seconds(pid)
                await asyncio.sleep(args.phase)
                elapsed = time.monotonic() - t0
                return (len(frames) - n0) / elapsed, (cpu_seconds(pid) - c0) / elapsed * 100

            fps_before, cpu_before = await phase()
            healthz_before = health.take()
            flood = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.wsflood", url, f"{COOKIE}={tokens['attacker']}",
                "--connections", str(args.connections), "--seconds", str(args.phase),
                "--reconnect-delay", str(args.reconnect_delay), cwd=str(ROOT), stdout=asyncio.subprocess.PIPE)
            assert flood.stdout is not None
            await asyncio.wait_for(flood.stdout.readline(), 60)
            fps_during, cpu_during = await phase()
            healthz_during = health.take()
            out, _ = await asyncio.wait_for(flood.communicate(), 120)
            health.task.cancel()
            figures = json.loads(out.decode().splitlines()[-1])
            metrics = await metric_samples(plain, server.base)
        finally:
            for c in made:
                with contextlib.suppress(Exception):
                    await c.close()
            for http in sessions:
                await http.close()
            await server.stop()
    return {"fps_before": fps_before, "fps_during": fps_during, "cpu_before": cpu_before, "cpu_during": cpu_during,
            "healthz_before": healthz_before, "healthz_during": healthz_during, "flood": figures,
            "metrics": metrics}


def report(n: int, r: dict[str, Any]) -> None:
    """report: the figures of one run."""
    f = r["flood"]
    ratio = r["fps_during"] / r["fps_before"] if r["fps_before"] else 0.0
    print(f"run {n}: classroom frames/s before {r['fps_before']:.1f}, during {r['fps_during']:.1f}: "
          f"ratio {ratio:.2f} ({'met' if ratio >= 0.9 else 'NOT met'}: >= 0.9)")
    print(f"  /healthz before: {latency_text(r['healthz_before'])}; during: {latency_text(r['healthz_during'])}"
          f" ({'met' if r['healthz_during'] and max(r['healthz_during']) < 2 else 'NOT met'}: every one < 2 s)")
    print(f"  server CPU: {r['cpu_before']:.0f} % of a core before, {r['cpu_during']:.0f} % during")
    print(f"  flooder ({f['connections']} sockets, {f['seconds']:.1f} s): sent {f['sent']} messages "
          f"({f['sent_text']} text, {f['sent_binary']} binary), answered {f['answered']} {f['codes']}, "
          f"unanswered {f['unanswered']}")
    print(f"  sockets: {f['attempts']} upgrades tried, {f['opened']} accepted; `closed` reasons {f['closed']}; "
          f"close codes {f['close_codes']}")
    counts = ", ".join(f"{k.removeprefix('taphuan_ws_')} {v:.0f}" for k, v in sorted(r["metrics"].items()))
    print(f"  server counts: {counts or '(none)'}")


async def main_async(args: argparse.Namespace) -> int:
    """main_async: the runs, then the frame-rate ratios over them."""
    overrides = dict(NO_CLOSE) if args.no_close else {}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = value
    print(f"{args.connections} sockets of one login flooding for {args.phase:.0f} s; server overrides: "
          f"{overrides or 'none (config.yaml defaults)'}; server from {args.server_root or ROOT}", flush=True)
    ratios = []
    for n in range(1, args.repeat + 1):
        result = await one_run(args, overrides)
        report(n, result)
        ratios.append(result["fps_during"] / result["fps_before"] if result["fps_before"] else 0.0)
    if args.repeat > 1:
        print(f"frame-rate ratio over {args.repeat} runs: min {min(ratios):.2f}, "
              f"median {statistics.median(ratios):.2f}")
    return 0


def main() -> int:
    """main: the command line (see the module's docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--phase", type=float, default=5.0, help="seconds before the flood, and of the flood")
    parser.add_argument("--reconnect-delay", type=float, default=0.2)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--no-close", action="store_true",
                        help="sockets not capped per login, floods not closed: the silent drop and the per-turn "
                             "budget alone")
    parser.add_argument("--server-root", metavar="DIR",
                        help="run the server of this checkout (its C extensions built) instead of this one's")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a server setting, e.g. limits.ws_flood_messages=1000 (repeatable)")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
