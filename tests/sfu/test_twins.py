"""Tests of sfu/twins.py: the C extension's CONTRACT and types == the declaration == the Python twins' attributes."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from sfu.cells import Cell, Cells, PyCell
from sfu.consumer import COMPILED, Consumer, Inbound
from sfu.hooks.receiver import ForwardingReceiver
from sfu.hooks.sender import ForwardingSender
from sfu.hooks.wire import PacketWire
from sfu.pacer import TokenBucket
from sfu.producer import Producer
from sfu.rewriter import HeaderRewriter
from sfu.stats import NackTracker, RtpStreamStats, SequenceTracker
from sfu.tasks import Ticker
from sfu.twins import C_ONLY, CONSTANTS, LAYOUTS, MIRRORS, REACHED
from tests.sfu.fakes import FakeWire, context

compiled = pytest.mark.skipif(not COMPILED, reason="sfu._fanout not built")


def resolve(path: str) -> Any:
    """resolve imports `path` (module.NAME)."""
    module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


def twin_instances() -> dict[type, Any]:
    """twin_instances: a real instance of each Python twin (the attributes its __init__ sets are checked on it).

    In a running event loop (aiortc's senders ask for it)."""
    receiver = ForwardingReceiver("video", SimpleNamespace(_stats_id="t", state="new"))
    ticker = Ticker(lambda: 1.0)
    ticker.close()
    made: list[Any] = [
        RtpStreamStats(90000), NackTracker(), SequenceTracker(), receiver, ticker,
        Producer("p", "camera", "video", "video/vp8", receiver),
        ForwardingSender("video", SimpleNamespace(state="new")),
        Inbound(1, 2, 3, 0, b"", True, 4, 5, 127), HeaderRewriter(90000, 3000, 0, 0),
        Consumer("c", "floor-video", "video", ForwardingSender("video", SimpleNamespace(state="new")),
                 lambda ctx: FakeWire()),  # type: ignore[arg-type]
        TokenBucket(),
    ]
    return {type(obj): obj for obj in made}


def data_attributes(obj: Any) -> set[str]:
    """data_attributes: the instance's own attributes, in its __dict__ or in set __slots__ (no properties)."""
    names = set(getattr(obj, "__dict__", {}))
    for klass in type(obj).__mro__:
        slots = klass.__dict__.get("__slots__", ())
        names |= {n for n in ([slots] if isinstance(slots, str) else slots) if hasattr(obj, n)}
        names |= {n for n, v in vars(klass).items() if isinstance(v, Cell | PyCell)}
    return names


def c_fields(c_type: str) -> set[str]:
    """c_fields: the Python-visible fields (members and getters) of a type of sfu._fanout."""
    from sfu import _fanout

    kinds = ("member_descriptor", "getset_descriptor")
    return {n for n, v in vars(getattr(_fanout, c_type)).items() if type(v).__name__ in kinds and n[:2] != "__"}


def c_contract() -> dict[str, Any]:
    from sfu._fanout import CONTRACT

    return dict(CONTRACT)


def grouped(contract: dict[str, tuple[str, ...]]) -> set[tuple[str, str]]:
    return {(twin, name) for twin, names in contract.items() for name in names}


@compiled
def test_c_reaches_exactly_the_declared_names() -> None:
    contract = c_contract()
    for kind in ("attributes", "methods"):
        c = grouped(contract[kind])
        declared = grouped({twin: getattr(r, kind) for twin, r in REACHED.items()})
        assert not c - declared, f"the C code reaches {kind} sfu/twins.py does not declare: {sorted(c - declared)}"
        assert not declared - c, f"sfu/twins.py declares {kind} the C code does not reach: {sorted(declared - c)}"


async def test_python_twins_have_the_declared_attributes_and_methods() -> None:
    instances = twin_instances()
    for twin, reached in REACHED.items():
        cls = resolve(f"{reached.module}.{twin}")
        obj = instances[cls]
        attributes = data_attributes(obj)
        for name in reached.attributes:
            assert name in attributes, (
                f"{reached.module}.{twin} has no attribute {name!r}, which sfu/_fanout's C code reads or writes by "
                "that name: rename both (and sfu/twins.py)")
        for name in reached.methods:
            assert callable(getattr(cls, name, None)), (
                f"{reached.module}.{twin} has no method {name!r}, which sfu/_fanout's C code calls by that name: "
                "rename both (and sfu/twins.py)")


def test_what_c_reaches_per_packet_is_a_writable_slot_member_or_a_cell() -> None:
    """sfu/_ingress.c reads these at their __slots__ member's offset or in their cell; an attribute moved back to
    the instance's __dict__ would still work, by name, at a dictionary lookup per packet and access (the path's
    cost, silently)."""
    for twin, reached in REACHED.items():
        assert set(reached.per_packet) <= set(reached.attributes), twin
        cls = resolve(f"{reached.module}.{twin}")
        for name in reached.per_packet:
            member = inspect.getattr_static(cls, name, None)
            if isinstance(member, Cell | PyCell):
                assert issubclass(cls, Cells), f"{reached.module}.{twin}.{name} is a cell of a class without cells"
                continue
            assert type(member).__name__ == "member_descriptor", (
                f"{reached.module}.{twin}.{name} is reached per packet by sfu/_ingress.c but is neither in the "
                f"class's __slots__ nor a cell (found {type(member).__name__})")


@compiled
def test_c_types_have_the_mirrored_fields() -> None:
    from sfu import _fanout

    for c_type, only in C_ONLY.items():
        visible = c_fields(c_type)
        mirrored = {c for m in MIRRORS if m.c_type == c_type for c in m.fields}
        assert not mirrored - visible, (
            f"sfu._fanout.{c_type} has no field {sorted(mirrored - visible)}, mirrored in Python: rename both "
            "(and sfu/twins.py)")
        unknown = visible - mirrored - set(only)
        assert not unknown, f"sfu._fanout.{c_type}'s {sorted(unknown)}: declare their Python twin in sfu/twins.py"
    for m in MIRRORS:
        for name in m.methods:
            assert callable(getattr(getattr(_fanout, m.c_type), name, None)), f"sfu._fanout.{m.c_type}.{name}"


async def test_python_classes_have_the_mirrored_fields() -> None:
    instances = twin_instances()
    assert {m.c_type for m in MIRRORS} == set(C_ONLY)
    for m in MIRRORS:
        cls = resolve(m.python)
        attributes = data_attributes(instances[cls])
        for c_name, name in m.fields.items():
            assert name in attributes, (
                f"{m.python} has no attribute {name!r}, the twin of sfu._fanout.{m.c_type}.{c_name}: rename both "
                "(and sfu/twins.py)")
        for name in m.methods:
            assert callable(getattr(cls, name, None)), f"{m.python}.{name}, the twin of sfu._fanout.{m.c_type}.{name}"
        if m.complete:
            unknown = attributes - set(m.fields.values()) - set(m.python_only)
            assert not unknown, f"{m.python}'s {sorted(unknown)}: declare their C twin in sfu/twins.py"


@compiled
def test_c_constants_are_the_python_ones() -> None:
    constants = c_contract()["constants"]
    assert set(constants) == set(CONSTANTS), "the C constants and sfu/twins.py's CONSTANTS name different ones"
    for name, path in CONSTANTS.items():
        assert constants[name] == resolve(path), f"sfu/_fanout's {name} is {constants[name]}, {path} {resolve(path)}"


def test_declared_python_constants_exist() -> None:
    for path in CONSTANTS.values():
        assert isinstance(resolve(path), int | float), path


@compiled
async def test_report_entries_have_the_layout_the_reporter_reads() -> None:
    from sfu._fanout import Slot

    assert c_contract()["layouts"] == LAYOUTS
    sender = ForwardingSender("video", SimpleNamespace(state="new"))
    sender.report_slot = Slot(90000, 3000, 0, 0)
    sender.context = ctx = context("video")
    build: Callable[[Any], tuple[tuple[Any, ...], ...]] = PacketWire._build_report_entries
    (entry,) = build(SimpleNamespace(_senders=[sender]))
    assert dict(zip(LAYOUTS["report_entry"], entry, strict=True)) == {
        "sender": sender, "slot": sender.report_slot, "ssrc": ctx.ssrc, "cname": ctx.cname.encode()}


def test_the_forward_benchs_counter_stands_in_for_a_producer_on_the_c_path() -> None:
    """bench/forward.py's subscribers receive through the C path with a ``Counter`` in a Producer's place: it must
    carry every Producer attribute and method that path reaches (a frame counter added to the Producer alone made
    every client packet raise in the bench's reader until this check)."""
    spec = importlib.util.spec_from_file_location("bench_forward", Path(__file__).resolve().parents[2] / "bench"
                                                  / "forward.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    counter = bench.Counter("video")
    reached = REACHED["Producer"]
    missing = [name for name in (*reached.attributes, *reached.methods) if not hasattr(counter, name)]
    assert not missing, f"bench/forward.py's Counter lacks {missing}, which the C receive path reaches on a Producer"
