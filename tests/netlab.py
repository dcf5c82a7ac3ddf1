"""netlab: weak classroom links for tests and benches: network namespaces, `tc tbf` caps, cuts, no UDP, TURN.

A `Lab` (root only; `unavailable()` says why not) owns everything it makes and removes it at `close()` (also
on an exception, and at interpreter exit through atexit):

- `lab.server_ip`: an address of this run on the host's `lo` (a /32 from 10.77.0.0/16). The server under
  test listens there (or on 0.0.0.0) and its ICE gathers there (`sfu.ice_addresses: [lab.server_ip]`); it is
  reachable from the host itself (the presenter's page) and from every namespace of the lab.
- `lab.add(down=Shape(300), up=Shape(300))`: a `Netns` joined to the host by a veth pair on its own /30
  (host end .1, namespace end .2, the namespace's default route through the host end). The classroom's
  downlink is the egress of the host end, its uplink the egress of the namespace end; each gets a `tc tbf`
  root qdisc, or none when uncapped. `ns.shape(...)` changes them at run time; `await ns.cut(10)` drops both
  directions to ~1 kbit/s for 10 s, then restores them; `ns.block_udp()` drops every UDP datagram in and out
  of the namespace (nftables, else iptables), as a school firewall does.
- `ns.chromium()`: the path of a generated script, `ip netns exec <ns> /usr/bin/chromium "$@"`, to give
  Playwright as `executable_path`: Playwright talks to Chromium over inherited pipes, which `ip netns exec`
  keeps, so the browser runs in the namespace while the test drives it from the host.
  `insecure_origin_args(url)` lets that browser use camera and microphone on the lab's plain-http origin.
- `lab.turn(secret)`: Debian's coturn on `server_ip` port 443 (TCP and TLS on the same port: coturn
  recognises a TLS handshake on its plain listener), `use-auth-secret` with `secret`, a self-signed
  certificate made for the run, relays on `server_ip`.

Names carry the owning process id (namespaces `tpl<pid>-<n>`, host links `tpl<pid>x<n>`, the `lo` label
`lo:tpl<pid>`), so parallel runs never collide; addresses are chosen under a file lock among the /30 blocks
of 10.77.0.0/16 no host interface uses. A new Lab first removes what a run that no longer exists left behind
(a run killed with SIGKILL cannot clean up after itself).

The shape of a cap (`Shape`) imitates the bottleneck of a DSL or 3G link: the line's rate, a token bucket of
about two full-size packets (or 10 ms of the line, when larger) so packets leave paced at the line rate as on
a real modem, and a queue of `queue_ms` (200 ms: such modems buffer 100-500 ms) beyond which packets are
dropped. No added propagation delay: this kernel has no `sch_netem` (`tc qdisc add ... netem` answers
"Specified qdisc kind is unknown"); `Shape.delay_ms` uses netem where it exists (`netem_available()`) and is
refused otherwise, so round trips here are the queueing delay only.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import contextlib
import fcntl
import hashlib
import ipaddress
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
SUBNET = ipaddress.IPv4Network("10.77.0.0/16")
PREFIX = "tpl"
LOCK = Path("/run/lock") if Path("/run/lock").is_dir() else Path(tempfile.gettempdir())
TURN_PORT = 443
CUT_KBIT = 1.0


class NetlabError(Exception):
    """NetlabError: a network command failed (the message has the command and its error)."""


def unavailable() -> str | None:
    """unavailable: why this machine cannot make a lab (None when it can): root and iproute2 are needed."""
    if os.geteuid() != 0:
        return "network namespaces and tc need root (CI runs the suite as root)"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"`{tool}` is missing (Debian package iproute2)"
    return None


def run(*argv: str, stdin: str | None = None, check: bool = True) -> str:
    """run: one command, its standard output; NetlabError when it fails and `check`."""
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise NetlabError(f"{' '.join(argv)}: {proc.stderr.strip() or proc.returncode}")
    return proc.stdout


_netem: bool | None = None
_numbers = itertools.count(1)  # namespaces of this process, across its labs


def netem_available() -> bool:
    """netem_available: whether the kernel has `sch_netem` (tried once, on `lo` of a scratch namespace)."""
    global _netem
    if _netem is None:
        scratch = f"{PREFIX}{os.getpid()}-netem"
        run("ip", "netns", "add", scratch)
        try:
            _netem = not run("tc", "-n", scratch, "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms",
                             check=False) and _qdisc_kind(scratch, "lo") == "netem"
        finally:
            run("ip", "netns", "del", scratch, check=False)
    return _netem


def _qdisc_kind(netns: str | None, dev: str) -> str | None:
    argv = ["tc"] + (["-n", netns] if netns else []) + ["-j", "qdisc", "show", "dev", dev, "root"]
    rows = json.loads(run(*argv) or "[]")
    return str(rows[0]["kind"]) if rows else None


@dataclass(frozen=True)
class Shape:
    """Shape: one direction's cap, a DSL/3G-like bottleneck: `kbit` line rate, `queue_ms` of queue, no delay.

    The bucket (`burst_bytes`) holds two full-size Ethernet frames or 10 ms of the line, whichever is larger,
    so packets leave at the line's pace; `queue_ms` (tbf's `latency`) bounds the queue ahead of it, beyond
    which packets are dropped. `delay_ms` adds fixed delay through netem, only where the kernel has it.
    """

    kbit: float
    queue_ms: float = 200.0
    delay_ms: float = 0.0

    @property
    def burst_bytes(self) -> int:
        """Shape.burst_bytes: the token bucket's size."""
        return max(2 * 1514, int(self.kbit * 1000 / 8 * 0.010))

    def tbf(self) -> list[str]:
        """Shape.tbf: the `tc qdisc ... tbf` parameters."""
        return ["tbf", "rate", f"{self.kbit:g}kbit", "burst", str(self.burst_bytes), "latency", f"{self.queue_ms:g}ms"]


@dataclass
class Counters:
    """Counters: what one direction's cap did so far (the root qdisc's statistics; zeros when uncapped)."""

    sent_packets: int = 0
    sent_bytes: int = 0
    dropped: int = 0
    backlog: int = 0  # bytes waiting in the cap's queue now


@dataclass
class Netns:
    """Netns: one classroom's network: a namespace, its veth pair, the caps of both directions."""

    lab: Lab
    name: str
    host_if: str
    host_ip: str
    ip: str
    down: Shape | None = None
    up: Shape | None = None
    udp_blocked: bool = False

    def shape(self, down: Shape | None, up: Shape | None) -> None:
        """Netns.shape: cap the downlink (host end egress) and uplink (namespace end egress); None: uncapped."""
        _apply(None, self.host_if, down)
        _apply(self.name, "veth0", up)
        self.down, self.up = down, up

    async def cut(self, seconds: float, kbit: float = CUT_KBIT) -> float:
        """Netns.cut: both directions at ~`kbit` for `seconds`, then the caps before; returns when it ended.

        The return value is `time.monotonic()` right after the link came back (recovery is timed from it).
        """
        down, up = self.down, self.up
        _apply(None, self.host_if, Shape(kbit))
        _apply(self.name, "veth0", Shape(kbit))
        try:
            await asyncio.sleep(seconds)
        finally:
            _apply(None, self.host_if, down)
            _apply(self.name, "veth0", up)
        return time.monotonic()

    def block_udp(self) -> None:
        """Netns.block_udp: drop every UDP datagram leaving or entering the namespace (a school firewall)."""
        if shutil.which("nft"):
            rules = ("table inet taphuan_firewall {\n"
                     " chain output {\n  type filter hook output priority 0; policy accept;\n"
                     "  meta l4proto udp drop\n }\n"
                     " chain input {\n  type filter hook input priority 0; policy accept;\n"
                     "  meta l4proto udp drop\n }\n}\n")
            run("ip", "netns", "exec", self.name, "nft", "-f", "-", stdin=rules)
        elif shutil.which("iptables"):
            for chain in ("OUTPUT", "INPUT"):
                run("ip", "netns", "exec", self.name, "iptables", "-A", chain, "-p", "udp", "-j", "DROP")
        else:
            raise NetlabError("neither nft nor iptables is installed (Debian package nftables)")
        self.udp_blocked = True

    def argv(self, *command: str) -> list[str]:
        """Netns.argv: `command` run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *command]

    def chromium(self) -> str:
        """Netns.chromium: a script that runs Debian's Chromium in this namespace (Playwright's executable_path)."""
        path = self.lab.directory / f"chromium-{self.name}"
        if not path.exists():
            ip = shutil.which("ip") or "ip"
            path.write_text(f'#!/bin/sh\nexec {ip} netns exec {self.name} {CHROMIUM} "$@"\n', encoding="utf-8")
            path.chmod(0o755)
        return str(path)

    def counters(self, downlink: bool = True) -> Counters:
        """Netns.counters: packets sent and dropped by the downlink's (or the uplink's) cap."""
        argv = ["tc", "-s", "-j", "qdisc", "show", "dev", self.host_if, "root"] if downlink else \
            ["tc", "-n", self.name, "-s", "-j", "qdisc", "show", "dev", "veth0", "root"]
        for row in json.loads(run(*argv) or "[]"):
            if row.get("kind") == "tbf":
                return Counters(int(row.get("packets", 0)), int(row.get("bytes", 0)), int(row.get("drops", 0)),
                                int(row.get("backlog", 0)))
        return Counters()


def _apply(netns: str | None, dev: str, shape: Shape | None) -> None:
    """_apply: make `shape` the root qdisc of `dev` (tbf, with a netem child for delay), or remove it."""
    tc = ["tc"] + (["-n", netns] if netns else [])
    if shape is None:
        if _qdisc_kind(netns, dev) in ("tbf", "netem"):
            run(*tc, "qdisc", "del", "dev", dev, "root")
        return
    if shape.delay_ms and not netem_available():
        raise NetlabError("Shape.delay_ms needs sch_netem, which this kernel does not have")
    run(*tc, "qdisc", "replace", "dev", dev, "root", "handle", "1:", *shape.tbf())
    if shape.delay_ms:
        run(*tc, "qdisc", "replace", "dev", dev, "parent", "1:1", "handle", "10:", "netem", "delay",
            f"{shape.delay_ms:g}ms")


def insecure_origin_args(url: str) -> list[str]:
    """insecure_origin_args: Chromium flags that give camera and microphone to the lab's plain-http origin."""
    parts = url.split("/")
    return [f"--unsafely-treat-insecure-origin-as-secure={parts[0]}//{parts[2]}"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    with (LOCK / "taphuan-netlab.lock").open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def sweep() -> list[str]:
    """sweep: remove the namespaces, links and `lo` addresses of lab runs whose process is gone; returns them."""
    removed: list[str] = []
    for line in run("ip", "netns", "list").splitlines():
        name = line.split()[0] if line.strip() else ""
        m = re.fullmatch(rf"{PREFIX}(\d+)-\w+", name)
        if m and not _alive(int(m.group(1))):
            run("ip", "netns", "del", name, check=False)
            removed.append(name)
    for link in json.loads(run("ip", "-j", "link", "show") or "[]"):
        m = re.fullmatch(rf"{PREFIX}(\d+)x\d+", str(link.get("ifname", "")))
        if m and not _alive(int(m.group(1))):
            run("ip", "link", "del", link["ifname"], check=False)
            removed.append(link["ifname"])
    for iface in json.loads(run("ip", "-j", "-4", "addr", "show", "dev", "lo") or "[]"):
        for a in iface.get("addr_info", []):
            m = re.fullmatch(rf"lo:{PREFIX}(\d+)", str(a.get("label", "")))
            if m and not _alive(int(m.group(1))):
                run("ip", "addr", "del", f"{a['local']}/{a['prefixlen']}", "dev", "lo", check=False)
                removed.append(f"{a['local']} on lo")
    return removed


def _used_blocks() -> set[int]:
    used: set[int] = set()
    for iface in json.loads(run("ip", "-j", "-4", "addr", "show") or "[]"):
        for a in iface.get("addr_info", []):
            addr = ipaddress.IPv4Address(a["local"])
            if addr in SUBNET:
                used.add((int(addr) - int(SUBNET.network_address)) // 4)
    return used


@dataclass
class Lab:
    """Lab: the namespaces, addresses and TURN server of one test or bench run (see the module's docstring)."""

    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="taphuan-netlab-")))
    server_ip: str = ""
    namespaces: list[Netns] = field(default_factory=list)
    turn_servers: list[Coturn] = field(default_factory=list)

    def __post_init__(self) -> None:
        reason = unavailable()
        if reason is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            raise NetlabError(reason)
        atexit.register(self.close)
        with _locked():
            sweep()
            block = self._free_block()
            self.server_ip = str(SUBNET.network_address + 4 * block + 1)
            run("ip", "addr", "add", f"{self.server_ip}/32", "dev", "lo", "label", f"lo:{PREFIX}{os.getpid()}")

    @staticmethod
    def _free_block() -> int:
        used = _used_blocks()
        for block in range(1, SUBNET.num_addresses // 4 - 1):
            if block not in used:
                return block
        raise NetlabError(f"no free /30 left in {SUBNET}")

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, down: Shape | None = None, up: Shape | None = None, block_udp: bool = False) -> Netns:
        """Lab.add: a new namespace joined to the host, with these caps (None: uncapped) and maybe no UDP."""
        n, pid = next(_numbers), os.getpid()
        name, host_if = f"{PREFIX}{pid}-{n}", f"{PREFIX}{pid}x{n}"
        with _locked():
            block = self._free_block()
            host_ip = str(SUBNET.network_address + 4 * block + 1)
            ns_ip = str(SUBNET.network_address + 4 * block + 2)
            run("ip", "netns", "add", name)
            ns = Netns(self, name, host_if, host_ip, ns_ip)
            self.namespaces.append(ns)
            run("ip", "link", "add", host_if, "type", "veth", "peer", "name", "veth0", "netns", name)
            run("ip", "addr", "add", f"{host_ip}/30", "dev", host_if)
        run("ip", "link", "set", host_if, "up")
        run("ip", "-n", name, "addr", "add", f"{ns_ip}/30", "dev", "veth0")
        run("ip", "-n", name, "link", "set", "veth0", "up")
        run("ip", "-n", name, "link", "set", "lo", "up")
        run("ip", "-n", name, "route", "add", "default", "via", host_ip)
        ns.shape(down, up)
        if block_udp:
            ns.block_udp()
        return ns

    def turn(self, secret: str, port: int = TURN_PORT) -> Coturn:
        """Lab.turn: coturn started on `server_ip`:`port` (TCP and TLS) with `secret`; stopped at close."""
        server = Coturn(self, secret, port)
        self.turn_servers.append(server)
        server.start()
        return server

    def close(self) -> None:
        """Lab.close: stop coturn, end the processes left in the namespaces, delete namespaces, links, address."""
        for server in self.turn_servers:
            server.stop()
        self.turn_servers.clear()
        for ns in self.namespaces:
            for pid in run("ip", "netns", "pids", ns.name, check=False).split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            run("ip", "netns", "del", ns.name, check=False)
            run("ip", "link", "del", ns.host_if, check=False)
        self.namespaces.clear()
        if self.server_ip:
            run("ip", "addr", "del", f"{self.server_ip}/32", "dev", "lo", check=False)
            self.server_ip = ""
        shutil.rmtree(self.directory, ignore_errors=True)
        atexit.unregister(self.close)


@dataclass
class Coturn:
    """Coturn: Debian's `turnserver` for one run: TCP and TLS on one port of the lab's address, shared secret."""

    lab: Lab
    secret: str
    port: int = TURN_PORT
    proc: subprocess.Popen[bytes] | None = None

    @property
    def urls(self) -> list[str]:
        """Coturn.urls: what `sfu.turn.urls` hands to browsers: TURN over TCP and over TLS."""
        ip = self.lab.server_ip
        return [f"turn:{ip}:{self.port}?transport=tcp", f"turns:{ip}:{self.port}?transport=tcp"]

    @property
    def log(self) -> Path:
        """Coturn.log: the server's log file."""
        return self.lab.directory / "turnserver.log"

    def config(self) -> str:
        """Coturn.config: the generated turnserver.conf (a certificate is made next to it).

        Plain TCP and TLS share `port` (coturn's plain listener recognises a TLS handshake); coturn insists on
        a TLS-only listener too, which goes to the next port and is not handed out. Binding port 443 needs no
        mapping: the address is this run's own, so nothing else listens there (unless on 0.0.0.0:443).
        """
        d, ip = self.lab.directory, self.lab.server_ip
        cert, key = d / "turn-cert.pem", d / "turn-key.pem"
        if not cert.exists():
            run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={ip}",
                "-addext", f"subjectAltName=IP:{ip}", "-keyout", str(key), "-out", str(cert))
        return "\n".join([
            f"listening-ip={ip}", f"relay-ip={ip}", f"listening-port={self.port}",
            f"tls-listening-port={self.port + 1}",
            "use-auth-secret", f"static-auth-secret={self.secret}", "realm=taphuan.test",
            f"cert={cert}", f"pkey={key}", "fingerprint", "no-cli", "no-multicast-peers", "no-tlsv1", "no-tlsv1_1",
            f"log-file={self.log}", "simple-log", f"pidfile={d / 'turnserver.pid'}", ""])

    def browser_args(self) -> list[str]:
        """Coturn.browser_args: Chromium flags that trust this run's self-signed certificate (its key, pinned).

        Chromium checks the certificate of a `turns:` server like a web site's; a real deployment uses a
        certificate browsers trust, the test pins its own key instead of turning the checks off.
        """
        cert = self.lab.directory / "turn-cert.pem"
        key = subprocess.run(["openssl", "x509", "-in", str(cert), "-pubkey", "-noout"], capture_output=True,
                             check=True).stdout
        der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=key, capture_output=True,
                             check=True).stdout
        return [f"--ignore-certificate-errors-spki-list={base64.b64encode(hashlib.sha256(der).digest()).decode()}"]

    def start(self, within: float = 20.0) -> None:
        """Coturn.start: run turnserver and wait (bounded) until its TCP port accepts connections."""
        if shutil.which("turnserver") is None:
            raise NetlabError("turnserver is missing (Debian package coturn)")
        conf = self.lab.directory / "turnserver.conf"
        conf.write_text(self.config(), encoding="utf-8")
        self.proc = subprocess.Popen(["turnserver", "-c", str(conf)], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise NetlabError(f"turnserver exited ({self.proc.returncode}): {self.log_tail()}")
            with contextlib.suppress(OSError), socket.create_connection((self.lab.server_ip, self.port), 1):
                return
            time.sleep(0.2)
        raise NetlabError(f"turnserver did not listen within {within:g} s: {self.log_tail()}")

    def log_tail(self, lines: int = 10) -> str:
        """Coturn.log_tail: the end of its log, for error messages."""
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"

    def stop(self) -> None:
        """Coturn.stop: SIGTERM, SIGKILL after 5 s."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

