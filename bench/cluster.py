"""cluster: benchmark of several Taphuan nodes (1, 2, 3) on one machine, each held to the same CPU quota.

Each node is a real `taphuan serve` process (`bus.kind: redis`) sharing one real redis-server, one real
PostgreSQL (tests/pgserver.py) and one data directory, as docs/deploy.md's "Several nodes" describes. Each node
is put in a cgroup of its own with the same CPU quota (cgroup v2's `cpu.max` when the cpu controller is there,
else cgroup v1's `cpu.cfs_quota_us`), so 1, 2 and 3 nodes compare fairly on a 2-core machine: capacity is
counted in quota-equal nodes, not in whatever cores happen to be free. The cgroups are removed at exit.

Meetings of 1 presenter + 20 classrooms are added one at a time. The presenter publishes pre-encoded VP8
(~500 kbit/s, encoded once, sent as av.Packet: aiortc only packetizes) and Opus; the classrooms receive through
decoder-less counting peers (bench/forward.py's `Counter`: the C receive path). Every participant speaks the
signalling protocol like the page does (web/static/protocol.js): it opens the socket of its home node (meeting
k's participants: node k mod n), joins, follows `moved` to the owner the cluster's placement chose, and, when
its socket drops, reconnects to its home (to the next node when the home is dead, as nginx's `backup` does) and
joins afresh. The client processes run outside the quota.

The quota is lifted on every node while a meeting's 21 participants join (a join costs a node ~0.1 s of CPU:
a 0.05-core node would take a minute over 20 classrooms) and set again before the meeting settles. After each
meeting is added and settled, a window of --seconds measures: delivery (the packets the classrooms
received / the packets the presenters sent × the classrooms; under 0.99 a second window is measured, since a
client process held off the CPU for a moment loses packets too, and when it is still under 0.99 the run ends:
capacity is the meetings served before), and per node the CPU (its process's CPU time) per packet it
forwarded (`taphuan_forwarded_packets` from its /metrics). With 2 and 3 nodes the run then drops meetings to
what the other nodes can carry, kills (SIGKILL) the node owning most meetings and times the rejoin: from the
kill until every participant of its meetings joined again and each classroom received the presenter again.

Must run as root (cgroups). Prints its progress.

    .venv/bin/python bench/cluster.py                           # 1, 2, 3 nodes, 0.05 core each
    .venv/bin/python bench/cluster.py --nodes 1 2 --quota 0.1   # a shorter run, bigger nodes
    .venv/bin/python bench/cluster.py --max-meetings 6 --seconds 4

The quota is small on purpose: the clients (outside the quota) cost about as much CPU per packet as the nodes,
so on a 2-core machine 3 nodes of 0.05 core (~3 meetings each) leave the clients the rest; with 0.1 core a node
carried ~7 meetings and 3 such nodes would need more client CPU than the machine has.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import datetime as dt
import json
import multiprocessing as mp
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from sqlalchemy import insert  # noqa: E402

from bench.cluster_clients import Cast, ClientProc  # noqa: E402
from bench.forward import encode_vp8  # noqa: E402
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
from tests.pgserver import PgServer  # noqa: E402

CLASSROOMS = 20
GOAL = 0.99  # delivery a meeting count must keep to be "served"


def say(text: str) -> None:
    """say: one progress line, timestamped."""
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def free_port() -> int:
    """free_port: a TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_cpu(pid: int) -> float:
    """proc_cpu: the CPU seconds (user + system) of a process, from /proc."""
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------------------------------- cgroups


class CpuQuota:
    """CpuQuota: one cgroup per node under a parent of this run, each held to `cores` of CPU (v2 `cpu.max`, else
    v1 `cpu.cfs_quota_us`); `cleanup` moves what is left to the root group and removes them."""

    PERIOD = 100_000  # µs
    WEIGHED = 3  # the parent group's scheduling weight, in ordinary processes (one per node at most)

    def __init__(self, cores: float) -> None:
        self.cores = cores
        v2 = Path("/sys/fs/cgroup")
        if (v2 / "cgroup.controllers").exists() and "cpu" in (v2 / "cgroup.controllers").read_text().split():
            self.kind, self.root = "v2", v2
        elif (v2 / "cpu" / "cpu.cfs_quota_us").exists():
            self.kind, self.root = "v1", v2 / "cpu"
        else:
            raise SystemExit("no cgroup CPU controller found (neither cgroup v2's cpu.max nor v1's cpu.cfs_quota_us)")
        self.parent = self.root / f"taphuan-bench-{os.getpid()}"
        self.groups: list[Path] = []
        self.parent.mkdir()
        # the parent weighs as much as WEIGHED ordinary processes: on a shared machine the nodes then get their
        # quota (a parent of one process's weight would leave three nodes a third of one process's share)
        if self.kind == "v2":
            with contextlib.suppress(OSError):
                (self.root / "cgroup.subtree_control").write_text("+cpu")
            (self.parent / "cgroup.subtree_control").write_text("+cpu")
            (self.parent / "cpu.weight").write_text(str(100 * self.WEIGHED))
        else:
            (self.parent / "cpu.shares").write_text(str(1024 * self.WEIGHED))
        atexit.register(self.cleanup)

    def group(self, name: str) -> Path:
        """CpuQuota.group: a new cgroup named `name` held to the quota."""
        path = self.parent / name
        path.mkdir()
        self.hold(path, True)
        self.groups.append(path)
        return path

    def hold(self, path: Path, held: bool) -> None:
        """CpuQuota.hold: hold the group to the quota, or (False) let it run unlimited for a while."""
        quota = int(self.cores * self.PERIOD)
        if self.kind == "v2":
            (path / "cpu.max").write_text(f"{quota if held else 'max'} {self.PERIOD}")
        else:
            (path / "cpu.cfs_period_us").write_text(str(self.PERIOD))
            (path / "cpu.cfs_quota_us").write_text(str(quota if held else -1))

    @staticmethod
    def add(group: Path, pid: int) -> None:
        """CpuQuota.add: move process `pid` (its later children follow) into `group`."""
        (group / "cgroup.procs").write_text(str(pid))

    @staticmethod
    def throttled(group: Path) -> float:
        """CpuQuota.throttled: the seconds the group was held back by its quota so far."""
        text = (group / "cpu.stat").read_text()
        v2 = re.search(r"throttled_usec (\d+)", text)
        if v2:
            return int(v2.group(1)) / 1e6
        v1 = re.search(r"throttled_time (\d+)", text)
        return int(v1.group(1)) / 1e9 if v1 else 0.0

    def cleanup(self) -> None:
        """CpuQuota.cleanup: every process left goes back to the root group; the groups are removed."""
        for path in [*reversed(self.groups), self.parent]:
            if not path.exists():
                continue
            with contextlib.suppress(OSError):
                for pid in (path / "cgroup.procs").read_text().split():
                    with contextlib.suppress(OSError):
                        (self.root / "cgroup.procs").write_text(pid)
            for _ in range(50):
                try:
                    path.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)
        self.groups.clear()


# --------------------------------------------------------------------------------------- the shared parts


class Redis:
    """Redis: a real redis-server on a free loopback port, in a temporary directory."""

    def __init__(self, folder: Path) -> None:
        exe = shutil.which("redis-server")
        if not exe:
            raise SystemExit("redis-server is required (apt-get install redis-server)")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = subprocess.Popen([exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(folder)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            time.sleep(0.05)
        raise SystemExit("redis-server did not start")

    def flush(self) -> None:
        """Redis.flush: empty it (a new cluster's run starts from nothing)."""
        subprocess.run(["redis-cli", "-p", str(self.port), "flushall"], check=True, stdout=subprocess.DEVNULL)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@dataclass
class Node:
    """Node: one `taphuan serve` process in its cgroup."""

    node_id: str
    port: int
    group: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    cpu0: float = 0.0
    fwd0: float = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def write_node_config(folder: Path, node_id: str, port: int, database: str, redis_url: str, data: Path,
                      lease: float, allocation: bool) -> Path:
    """write_node_config: one node's configuration (what docs/deploy.md shows, on loopback, without recording)."""
    path = folder / f"node-{node_id}.yaml"
    path.write_text(
        f"data_dir: {json.dumps(str(data))}\n"
        f"server: {{host: 127.0.0.1, port: {port}, shutdown_timeout: 3.0}}\n"
        f"database: {{url: {json.dumps(database)}}}\n"
        f"bus: {{kind: redis, redis_url: {json.dumps(redis_url)}}}\n"
        f"cluster: {{node_id: {node_id}, url: 'http://127.0.0.1:{port}', lease_seconds: {lease}}}\n"
        f"sfu: {{ice_addresses: [127.0.0.1], max_participants: 5000, allocation: {str(allocation).lower()}}}\n"
        "recorder: {enabled: false}\n"
        "broadcast: {enabled: false}\n"
        # every client of the bench comes from 127.0.0.1: the per-address caps are the operator's, not these
        "limits: {ws_connections_per_ip: 100000, ws_connections_per_login: 16, ws_messages_per_second: 200,"
        " ws_burst: 400}\n"
        "log: {level: WARNING, format: text}\n", encoding="utf-8")
    return path


async def start_node(node: Node, config: Path, nice: int) -> None:
    """start_node: spawn the node, wait (bounded) until /healthz answers, then put it in its cgroup."""
    with node.log.open("ab") as log:
        node.proc = subprocess.Popen([sys.executable, "-m", "server.cli", "--config", str(config), "serve"],  # noqa: ASYNC220
                                     cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    if nice:
        os.setpriority(os.PRIO_PROCESS, node.proc.pid, nice)
    deadline = time.monotonic() + 120
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if node.proc.poll() is not None:
                raise SystemExit(f"node {node.node_id} exited: {node.log.read_text(errors='replace')[-2000:]}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.get(node.url + "/healthz", timeout=aiohttp.ClientTimeout(total=2)) as r:
                    if r.status == 200:  # its start-up (imports, migrations) is not what the quota is for
                        CpuQuota.add(node.group, node.proc.pid)
                        return
            await asyncio.sleep(0.3)
    raise SystemExit(f"node {node.node_id} did not answer /healthz within 120 s")


def stop_node(node: Node) -> None:
    """stop_node: SIGTERM (a clean stop), SIGKILL after 15 s."""
    if node.proc is None or node.proc.poll() is not None:
        return
    node.proc.terminate()
    try:
        node.proc.wait(15)
    except subprocess.TimeoutExpired:
        node.proc.kill()
        node.proc.wait(5)


async def forwarded(http: aiohttp.ClientSession, node: Node) -> float:
    """forwarded: the RTP packets the node forwarded so far (its /metrics)."""
    async with http.get(node.url + "/metrics") as r:
        text = await r.text()
    found = re.search(r"^taphuan_forwarded_packets(?:_total)? ([0-9.e+]+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


async def create_meetings(database: str, count: int) -> list[Cast]:
    """create_meetings: `count` published meetings, each with a trainer and 20 classrooms, and their logins."""
    engine = make_engine(database)
    db = make_sessionmaker(engine)
    now = dt.datetime.now(dt.UTC)
    out: list[Cast] = []
    tag = secrets.token_hex(3)

    def login(user: User) -> LoginSession:
        return LoginSession(id=secrets.token_urlsafe(32), user_id=user.id, csrf_token=secrets.token_urlsafe(24),
                            created_at=now, expires_at=now + dt.timedelta(hours=12), ip="127.0.0.1",
                            user_agent="bench-cluster")

    async with db() as s:
        unit = Unit(code=f"BC{tag}", name="Tỉnh thử tải cụm", level=UnitLevel.PROVINCE)
        program = Program(title="Chương trình thử tải cụm")
        s.add_all([unit, program])
        await s.flush()
        for k in range(count):
            trainer = User(username=f"bc-{tag}-t{k}", display_name=f"Giảng viên {k}", role=Role.TRAINER)
            meeting = Meeting(program_id=program.id, title=f"Thử tải cụm {k}", status=MeetingStatus.PUBLISHED,
                              starts_at=now - dt.timedelta(minutes=5), ends_at=now + dt.timedelta(hours=6),
                              record=False)
            s.add_all([trainer, meeting])
            await s.flush()
            await s.execute(insert(meeting_presenters).values(meeting_id=meeting.id, user_id=trainer.id))
            sessions = [login(trainer)]
            for i in range(CLASSROOMS):
                room = Classroom(code=f"BC{tag}{k}x{i}", name=f"Phòng {k}.{i}", unit_id=unit.id)
                s.add(room)
                await s.flush()
                user = User(username=f"bc-{tag}-c{k}x{i}", display_name=f"Lớp {k}.{i}", role=Role.CLASSROOM,
                            classroom_id=room.id)
                s.add(user)
                await s.flush()
                await s.execute(insert(meeting_classrooms).values(meeting_id=meeting.id, classroom_id=room.id))
                sessions.append(login(user))
            s.add_all(sessions)
            out.append(Cast(meeting.id, sessions[0].id, [x.id for x in sessions[1:]]))
        await s.commit()
    await engine.dispose()
    return out


# ---------------------------------------------------------------------------------------------- driver


@dataclass
class Row:
    """Row: one measured window."""

    meetings: int
    delivery: float
    worst: float
    per_node: dict[str, tuple[int, float, float, float]]  # node → (meetings, CPU % of a core, µs/pkt, throttled %)
    clients_cpu: float
    sfu_share: float  # the packets the nodes forwarded / the packets the presenters sent × the classrooms


async def measure(http: aiohttp.ClientSession, nodes: list[Node], procs: list[ClientProc], seconds: float,
                  load: int) -> Row:
    """measure: one window: delivery over every meeting, per node its CPU and CPU per forwarded packet."""
    async def snapshot() -> tuple[dict[int, Any], dict[str, tuple[float, float, float]], float, float]:
        stats: dict[int, Any] = {}
        for proc in procs:
            stats.update(await proc.call("stats"))
        per = {n.node_id: (proc_cpu(n.proc.pid), await forwarded(http, n), CpuQuota.throttled(n.group))
               for n in nodes if n.alive and n.proc is not None}
        clients = sum(proc_cpu(p.process.pid) for p in procs if p.process.pid is not None)
        return stats, per, clients, time.monotonic()

    s0, n0, c0, t0 = await snapshot()
    await asyncio.sleep(seconds)
    s1, n1, c1, t1 = await snapshot()
    wall = t1 - t0
    expected = received = 0
    worst = 1.0
    owners: dict[str, int] = {}
    for mid, (sent, recv, rooms, node) in s1.items():
        if mid not in s0:
            continue
        e = (sent - s0[mid][0]) * rooms
        r = recv - s0[mid][1]
        expected += e
        received += r
        worst = min(worst, r / e if e else 0.0)
        owners[node] = owners.get(node, 0) + 1
    per_node = {}
    for n in nodes:
        if n.node_id not in n1 or n.node_id not in n0:
            continue
        cpu = n1[n.node_id][0] - n0[n.node_id][0]
        fwd = n1[n.node_id][1] - n0[n.node_id][1]
        per_node[n.node_id] = (owners.get(f"127.0.0.1:{n.port}", 0), 100 * cpu / wall,
                               cpu / fwd * 1e6 if fwd else float("nan"),
                               100 * (n1[n.node_id][2] - n0[n.node_id][2]) / wall)
    out = sum(n1[k][1] - n0[k][1] for k in n1 if k in n0)
    return Row(load, min(1.0, received / expected) if expected else 0.0, min(1.0, worst), per_node,
               100 * (c1 - c0) / wall, out / expected if expected else 0.0)


def show(row: Row) -> str:
    nodes = "  ".join(f"{k}: {m} mtg {cpu:.0f}% core {us:.1f} µs/pkt (throttled {th:.0f}%)"
                      for k, (m, cpu, us, th) in row.per_node.items())
    return (f"N={row.meetings:>2}  delivery {row.delivery:.4f} (worst meeting {row.worst:.4f}; forwarded "
            f"{row.sfu_share:.3f} of sent x classrooms)  {nodes}  "
            f"clients {row.clients_cpu:.0f}% core  load {os.getloadavg()[0]:.1f}")


@dataclass
class Result:
    """Result: one node count's outcome."""

    nodes: int
    capacity: int
    rows: list[Row]
    rejoin: list[float] = field(default_factory=list)  # s until every classroom received again, per meeting moved
    joined: list[float] = field(default_factory=list)  # s until every participant joined again, per meeting moved
    moved: int = 0


async def run_cluster(n: int, args: argparse.Namespace, quota: CpuQuota, redis: Redis, database: str,
                      folder: Path, casts: list[Cast], frames: list[tuple[bytes, bool]]) -> Result:
    """run_cluster: `n` nodes; meetings added until delivery falls under 0.99; then (n ≥ 2) a node killed."""
    redis.flush()
    data = folder / f"data-{n}"
    data.mkdir()
    nodes = []
    for i in range(n):
        node_id = "abc"[i]
        port = free_port()
        nodes.append(Node(node_id, port, quota.group(f"n{n}-{node_id}"), folder / f"node-{n}-{node_id}.log"))
    ctx = mp.get_context("spawn")
    procs: list[ClientProc] = []
    result = Result(n, 0, [])
    http = aiohttp.ClientSession()
    try:
        for node in nodes:  # one after the other: the first creates the shared secrets
            cfg = write_node_config(folder, node.node_id, node.port, database, redis.url, data, args.lease,
                                    args.allocation)
            await start_node(node, cfg, args.nice)
        say(f"{n} node(s) up: {', '.join(f'{x.node_id} {x.url}' for x in nodes)}; quota {quota.cores:g} core each "
            f"({quota.kind})")
        await asyncio.sleep(args.lease / 3 + 0.5)  # every heartbeat in Redis
        used = 0
        for k in range(args.max_meetings):
            if k % args.meetings_per_proc == 0:
                procs.append(ClientProc(ctx, args.nice))
                await procs[-1].call("frames", frames)
            proc = procs[-1]
            homes = [nodes[(k + j) % n].url for j in range(n)]
            for node in nodes:  # joins run unlimited (each costs a node ~0.1 s of CPU: DTLS, ICE, SDP), on every
                quota.hold(node.group, False)  # node alike; the windows measure forwarding under the quota
            try:
                owner, receiving = await proc.call("meeting", casts[used], homes)
            finally:
                for node in nodes:
                    quota.hold(node.group, True)
            proc.meetings.append(casts[used].meeting_id)
            used += 1
            say(f"{n} node(s): meeting {k + 1} placed on {owner}, {receiving}/{CLASSROOMS} classrooms receiving")
            await asyncio.sleep(max(args.settle, args.lease / 3 + 0.3))  # media settles; the owner's heartbeat
            row = await measure(http, nodes, procs, args.seconds, k + 1)
            say(show(row))
            if row.delivery < GOAL and receiving == CLASSROOMS:  # once more: a client held off the CPU a moment
                row = await measure(http, nodes, procs, args.seconds, k + 1)
                say(show(row) + "  (again)")
            result.rows.append(row)
            if row.delivery < GOAL or receiving < CLASSROOMS:
                break
            result.capacity = k + 1
        if n >= 2 and result.capacity > 0:
            await rejoin(n, args, quota, nodes, procs, result)
    finally:
        interrupted = asyncio.current_task().cancelling() > 0  # type: ignore[union-attr]
        for proc in procs:
            if not interrupted:  # a clean leave; after Ctrl-C the client processes are simply ended
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(proc.call("close"), 30)
                proc.process.join(5)
            if proc.process.is_alive():
                proc.process.kill()
        await http.close()
        for node in nodes:
            if node.alive and node.proc is not None:  # its clean stop is not what the quota is for either
                with contextlib.suppress(OSError):
                    CpuQuota.add(quota.root, node.proc.pid)
            stop_node(node)
        for node in nodes:
            quota.groups.remove(node.group)
            with contextlib.suppress(OSError):
                node.group.rmdir()
    return result


async def rejoin(n: int, args: argparse.Namespace, quota: CpuQuota, nodes: list[Node], procs: list[ClientProc],
                 result: Result) -> None:
    """rejoin: drop meetings to what n - 1 nodes carried, SIGKILL the node owning most, time the rejoin."""
    keep = max(1, min(result.capacity * (n - 1) // n, result.capacity))
    open_ = [m for p in procs for m in p.meetings]
    drop = open_[keep:]
    for proc in procs:
        mine = [m for m in proc.meetings if m in drop]
        if mine:
            await proc.call("drop", mine)
            proc.meetings = [m for m in proc.meetings if m not in mine]
    await asyncio.sleep(args.lease + 1)  # the dropped rooms close, the heartbeats say so
    stats: dict[int, Any] = {}
    for proc in procs:
        stats.update(await proc.call("stats"))
    owners: dict[str, int] = {}
    for _sent, _recv, _rooms, node in stats.values():
        owners[node] = owners.get(node, 0) + 1
    victim_addr = max(owners, key=lambda k: owners[k])
    victim = next(x for x in nodes if f"127.0.0.1:{x.port}" == victim_addr)
    say(f"{n} node(s): {keep} meetings ({owners}); killing node {victim.node_id} (SIGKILL), owner of "
        f"{owners[victim_addr]}")
    assert victim.proc is not None
    if args.rejoin_unlimited:  # the reconnection path alone (lease, `moved`, joins), not a small node's handshakes
        for node in nodes:
            quota.hold(node.group, False)
    since = time.monotonic()
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait(10)
    replies = await asyncio.gather(*(p.call("rejoined", victim_addr, since, args.rejoin_wait) for p in procs))
    result.moved = sum(r[0] for r in replies)
    result.joined = sorted(t for r in replies for t in r[1])
    result.rejoin = sorted(t for r in replies for t in r[2])
    if result.rejoin:
        say(f"{n} node(s): {len(result.rejoin)} of {result.moved} meetings back on the other node(s): all joined "
            f"again after median {statistics.median(result.joined):.1f} s (max {max(result.joined):.1f}), all "
            f"classrooms receiving after median {statistics.median(result.rejoin):.1f} s, max "
            f"{max(result.rejoin):.1f} s (lease {args.lease:g} s)")
    else:
        say(f"{n} node(s): none of the {result.moved} meetings came back within {args.rejoin_wait:g} s")


async def main(args: argparse.Namespace) -> int:
    """main: the shared parts once, then each node count in turn; the summary at the end."""
    if os.geteuid() != 0:
        print("bench/cluster.py must run as root (it makes cgroups to hold each node to its CPU quota)",
              file=sys.stderr)
        return 2
    folder = Path(tempfile.mkdtemp(prefix="taphuan-cluster-"))
    quota = CpuQuota(args.quota)
    redis = Redis(folder)
    say("starting PostgreSQL")
    pg = await asyncio.to_thread(PgServer.start)
    results: list[Result] = []
    try:
        database = await asyncio.to_thread(pg.migrated_database)
        total = args.max_meetings * len(args.nodes)
        say(f"creating {total} meetings of 1 presenter + {CLASSROOMS} classrooms")
        casts = await create_meetings(database, total)
        frames = encode_vp8(5.0)
        kbps = sum(len(f) for f, _ in frames) * 8 / (len(frames) / 30) / 1000
        say(f"presenter video: VP8 640x360@30 pre-encoded, {kbps:.0f} kbit/s, + Opus; load {os.getloadavg()}")
        for i, n in enumerate(args.nodes):
            share = casts[i * args.max_meetings:(i + 1) * args.max_meetings]
            results.append(await run_cluster(n, args, quota, redis, database, folder, share, frames))
    finally:
        pg.stop()
        redis.stop()
        quota.cleanup()
        if args.keep:
            print(f"kept: {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    print(f"\nsummary: meetings of 1 presenter + {CLASSROOMS} classrooms; each node {args.quota:g} core "
          f"({quota.kind}); window {args.seconds:g} s; lease {args.lease:g} s; sfu.allocation "
          f"{'on' if args.allocation else 'off'}; load {os.getloadavg()}")
    print(f"{'nodes':>5} {'meetings at ≥0.99':>18} {'×':>5} {'µs/pkt per node (at capacity)':>30} "
          f"{'rejoin after kill (median)':>40}")
    base = results[0].capacity if results else 0
    for r in results:
        at = next((row for row in r.rows if row.meetings == r.capacity), None)
        us = " ".join(f"{k}:{v[2]:.1f}" for k, v in at.per_node.items()) if at else "-"
        rj = (f"joined {statistics.median(r.joined):.1f} s, media {statistics.median(r.rejoin):.1f} s "
              f"(max {max(r.rejoin):.1f}; {len(r.rejoin)}/{r.moved})"
              if r.rejoin else ("-" if r.nodes < 2 else f"none of {r.moved}"))
        ratio = f"{r.capacity / base:.2f}" if base else "-"
        print(f"{r.nodes:>5} {r.capacity:>18} {ratio:>5} {us:>30} {rj:>40}", flush=True)
    return 0


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, nargs="+", default=[1, 2, 3], choices=[1, 2, 3])
    ap.add_argument("--quota", type=float, default=0.05, help="CPU of each node, in cores (cgroup quota)")
    ap.add_argument("--max-meetings", type=int, default=16, help="stop growing at this many meetings")
    ap.add_argument("--seconds", type=float, default=6.0, help="measurement window per meeting count")
    ap.add_argument("--settle", type=float, default=3.0, help="s after a meeting joins before its window")
    ap.add_argument("--lease", type=float, default=6.0, help="cluster.lease_seconds of the nodes")
    ap.add_argument("--meetings-per-proc", type=int, default=2, help="meetings per client process")
    ap.add_argument("--allocation", action="store_true",
                    help="sfu.allocation on (off by default: loopback needs no downlink budget, and decoder-less "
                         "clients on a busy machine report estimates a real link would not)")
    ap.add_argument("--rejoin-wait", type=float, default=180.0, help="s to wait for the moved meetings")
    ap.add_argument("--rejoin-unlimited", action="store_true",
                    help="lift the quota for the rejoin (the reconnection path alone: a small node's 21 DTLS "
                         "handshakes per meeting otherwise dominate it)")
    ap.add_argument("--nice", type=int, default=-10,
                    help="niceness of the nodes and the client processes: on a machine busy with other work they "
                         "then get their quota and keep up (the quota still caps each node)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (node logs)")
    return ap.parse_args()


async def run(args: argparse.Namespace) -> int:
    """run: main, cancelled (everything stopped and removed) by Ctrl-C or SIGTERM."""
    task = asyncio.ensure_future(main(args))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    try:
        return await task
    except asyncio.CancelledError:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(asyncio.run(run(parse_args())))
