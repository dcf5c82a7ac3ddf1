"""Tests of tests/netlab.py: namespaces reach the host, caps cap, cuts cut and end, UDP blocks, Chromium runs inside,
coturn relays with Taphuan's credentials, and nothing is left behind."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from aioice.turn import create_turn_endpoint

from server.config import load_config
from server.live.entry import ice_servers
from tests import netlab
from tests.netlab import Lab, NetlabError, Shape

pytestmark = pytest.mark.skipif(netlab.unavailable() is not None, reason=f"netlab: {netlab.unavailable()}")

# Receives for up to `seconds` on a TCP port of the namespace; prints the bytes and the span of the transfer.
SINK = """
import socket, sys, time
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((sys.argv[1], int(sys.argv[2]))); srv.listen(1); srv.settimeout(float(sys.argv[3]))
print("ready", flush=True)
conn, _ = srv.accept(); conn.settimeout(float(sys.argv[3]))
got, first, last = 0, None, None
try:
    while True:
        data = conn.recv(65536)
        if not data:
            break
        now = time.monotonic(); first = first or now; last = now; got += len(data)
except OSError:
    pass
print(got, (last or 0) - (first or 0), flush=True)
"""


@pytest.fixture
def lab() -> Iterator[Lab]:
    with Lab() as made:
        yield made


def names() -> tuple[str, str, str]:
    """names: the namespaces, links and `lo` addresses there are now (as text, for `in`)."""
    return (netlab.run("ip", "netns", "list"), netlab.run("ip", "-o", "link"),
            netlab.run("ip", "-o", "-4", "addr", "show", "dev", "lo"))


def transfer(ns: netlab.Netns, host_ip: str, size: int, within: float = 60.0) -> tuple[int, float]:
    """transfer: send `size` bytes from the host to a sink in `ns`; returns (bytes received, seconds taken)."""
    sink = subprocess.Popen(ns.argv(sys.executable, "-c", SINK, ns.ip, "5001", str(within)),
                            stdout=subprocess.PIPE, text=True)
    try:
        assert sink.stdout is not None and sink.stdout.readline().strip() == "ready"
        with socket.create_connection((ns.ip, 5001), 10, source_address=(host_ip, 0)) as s:
            s.sendall(b"x" * size)
        got, span = sink.stdout.readline().split()
        return int(got), float(span)
    finally:
        sink.wait(within + 10)


def test_namespace_reaches_the_server_address_and_close_removes_everything() -> None:
    with Lab() as lab:
        ns = lab.add()
        with socket.socket() as srv:
            srv.bind((lab.server_ip, 0))
            srv.listen(1)
            port = srv.getsockname()[1]
            out = subprocess.run(ns.argv(sys.executable, "-c", f"import socket; socket.create_connection("
                                 f"('{lab.server_ip}', {port}), 5); print('ok')"),
                                 capture_output=True, text=True, timeout=30)
            assert out.stdout.strip() == "ok", out.stderr
        # the host's own loopback is not the namespace's
        out = subprocess.run(ns.argv(sys.executable, "-c", "import socket; socket.create_connection(('127.0.0.1',"
                                     f" {port}), 2)"), capture_output=True, text=True, timeout=30)
        assert out.returncode != 0
        made = (ns.name, ns.host_if, lab.server_ip)
        assert all(any(x in text for text in names()) for x in made)
    text = names()
    assert not any(x in t for x in made for t in text)


def test_two_labs_get_distinct_names_and_addresses() -> None:
    with Lab() as a, Lab() as b:
        na, nb = a.add(), b.add()
        assert len({a.server_ip, b.server_ip, na.ip, nb.ip, na.host_ip, nb.host_ip}) == 6
        assert na.name != nb.name and na.host_if != nb.host_if


def test_the_downlink_cap_holds_and_an_uncapped_link_is_not_capped(lab: Lab) -> None:
    capped, free = lab.add(down=Shape(1000)), lab.add()
    got, span = transfer(capped, capped.host_ip, 250_000)
    assert got == 250_000
    # 2 Mbit at 1 Mbit/s: at least ~2 s whatever the machine (the bucket lets a few kB through at once)
    assert span >= 1.5, f"{got} bytes in {span:.2f} s through a 1 Mbit/s cap"
    assert capped.counters().sent_bytes >= 250_000
    got, span = transfer(free, free.host_ip, 250_000)
    assert got == 250_000 and free.counters().sent_packets == 0  # no qdisc of ours on it


def test_shape_is_a_small_bucket_and_a_bounded_queue(lab: Lab) -> None:
    ns = lab.add(down=Shape(300), up=Shape(500, queue_ms=100))
    down = json.loads(netlab.run("tc", "-j", "qdisc", "show", "dev", ns.host_if, "root"))[0]
    up = json.loads(netlab.run("tc", "-n", ns.name, "-j", "qdisc", "show", "dev", "veth0", "root"))[0]
    assert down["kind"] == up["kind"] == "tbf"
    assert down["options"]["rate"] == 300_000 // 8 and up["options"]["rate"] == 500_000 // 8
    assert 3000 <= down["options"]["burst"] <= 3100  # two full-size frames
    assert Shape(20_000).burst_bytes == 25_000  # 10 ms of a faster line


def test_cut_drops_to_1_kbit_and_restores_the_caps(lab: Lab) -> None:
    ns = lab.add(down=Shape(300), up=None)

    def rates() -> tuple[int | None, int | None]:
        out = []
        for argv in (["tc", "-j", "qdisc", "show", "dev", ns.host_if, "root"],
                     ["tc", "-n", ns.name, "-j", "qdisc", "show", "dev", "veth0", "root"]):
            row = json.loads(netlab.run(*argv))[0]
            out.append(row["options"]["rate"] if row["kind"] == "tbf" else None)
        return out[0], out[1]

    async def scenario() -> tuple[tuple[int | None, int | None], float]:
        task = asyncio.create_task(ns.cut(1.5))
        await asyncio.sleep(0.5)
        during = rates()
        return during, await task

    during, ended = asyncio.run(scenario())
    assert during == (1000 // 8, 1000 // 8)
    assert ended <= time.monotonic()
    assert rates() == (300_000 // 8, None)


def test_delay_needs_netem(lab: Lab) -> None:
    ns = lab.add()
    if netlab.netem_available():
        ns.shape(Shape(1000, delay_ms=50), None)
        assert "netem" in netlab.run("tc", "qdisc", "show", "dev", ns.host_if)
    else:
        with pytest.raises(NetlabError, match="netem"):
            ns.shape(Shape(1000, delay_ms=50), None)


def test_block_udp_drops_udp_and_keeps_tcp(lab: Lab) -> None:
    ns = lab.add(block_udp=True)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, socket.socket() as tcp:
        udp.bind((lab.server_ip, 0))
        udp.settimeout(2)
        tcp.bind((lab.server_ip, 0))
        tcp.listen(1)
        # sendto fails with EPERM when the output hook drops it: either way nothing may arrive
        code = (f"import contextlib, socket; u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                f"for _ in range(5):\n"
                f"    with contextlib.suppress(OSError): u.sendto(b'x', ('{lab.server_ip}', {udp.getsockname()[1]}))\n"
                f"socket.create_connection(('{lab.server_ip}', {tcp.getsockname()[1]}), 5)")
        out = subprocess.run(ns.argv(sys.executable, "-c", code), capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        with pytest.raises(TimeoutError):
            udp.recvfrom(100)
        conn, _ = tcp.accept()
        conn.close()


def test_sweep_removes_what_a_dead_run_left() -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    name, link = f"{netlab.PREFIX}{dead.pid}-1", f"{netlab.PREFIX}{dead.pid}x1"
    netlab.run("ip", "netns", "add", name)
    netlab.run("ip", "link", "add", link, "type", "veth", "peer", "name", "veth0", "netns", name)
    address = "10.77.255.253"
    netlab.run("ip", "addr", "add", f"{address}/32", "dev", "lo", "label", f"lo:{netlab.PREFIX}{dead.pid}")
    removed = netlab.sweep()
    assert name in removed and f"{address} on lo" in removed
    assert address not in names()[2]
    assert name not in names()[0] and link not in names()[1]


async def test_chromium_runs_inside_the_namespace(lab: Lab) -> None:
    from playwright.async_api import async_playwright

    from tests.e2e.browser import FLAGS

    ns = lab.add(down=Shape(2000), up=Shape(2000))
    seen: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        seen.append(writer.get_extra_info("peername")[0])
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, lab.server_ip, 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=ns.chromium(), headless=True, args=FLAGS)
            try:
                page = await browser.new_page()
                response = await page.goto(f"http://{lab.server_ip}:{port}/")
                assert response is not None and response.status == 200
            finally:
                await browser.close()
    finally:
        server.close()
        await server.wait_closed()
    assert seen and set(seen) == {ns.ip}  # the page (and its favicon) came from inside the namespace


async def test_coturn_allocates_with_taphuans_credentials_over_tcp_and_tls(lab: Lab) -> None:
    turn = lab.turn("shared-secret-of-the-test")
    config = load_config(None, env={}, overrides={"sfu.turn.urls": turn.urls,
                                                  "sfu.turn.secret": "shared-secret-of-the-test"})
    server = ice_servers(config, "p-1")[0]
    insecure = ssl.create_default_context()
    insecure.check_hostname, insecure.verify_mode = False, ssl.CERT_NONE
    for tls in (None, insecure):
        transport, _ = await create_turn_endpoint(asyncio.DatagramProtocol, (lab.server_ip, turn.port),
                                                  server["username"], server["credential"], ssl=tls,
                                                  transport="tcp")
        try:
            assert transport.get_extra_info("sockname")[0] == lab.server_ip  # relayed on the lab's address
        finally:
            transport.close()
    with pytest.raises(Exception, match="401|Unauthorized"):
        await create_turn_endpoint(asyncio.DatagramProtocol, (lab.server_ip, turn.port), server["username"],
                                   "wrong", transport="tcp")
