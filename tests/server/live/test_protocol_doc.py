"""Tests of the signalling contract: docs/protocol.md and docs/protocol.schema.json say the same, match the server's
routes and the SFU's statistics, and the checker (tests/protocol_schema.py) refuses what they do not allow."""

from __future__ import annotations

import json
import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from server.live.signalling import ROUTES
from sfu.stats import ConsumerStats, ProducerStats
from tests.protocol_schema import Direction, ProtocolViolation, check, check_text, problem, schema

DOC = Path(__file__).resolve().parents[3] / "docs" / "protocol.md"


def doc() -> str:
    return DOC.read_text(encoding="utf-8")


def section(title: str) -> str:
    """section: the text of one `## ` section of the document."""
    text = doc()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else len(text)]


def table_types(text: str) -> list[str]:
    """table_types: the message types in the first column of the tables headed `| type |`."""
    types: list[str] = []
    in_table = False
    for line in text.splitlines():
        if line.startswith("| type |"):
            in_table = True
        elif not line.startswith("|"):
            in_table = False
        elif in_table:
            m = re.match(r"\| `([a-z-]+)` \|", line)
            if m:
                types.append(m.group(1))
    return types


def schema_types(direction: Direction) -> list[str]:
    return list(schema()["$defs"][f"{direction}-message"]["properties"]["type"]["enum"])


def examples() -> list[tuple[Direction, Any]]:
    """examples: every message of the document's code blocks, written `→ {…}` (client) or `← {…}` (server)."""
    found: list[tuple[Direction, str]] = []
    for block in re.findall(r"```\n(.*?)```", doc(), re.S):
        for line in block.splitlines():
            if line.startswith(("→ ", "← ")):
                found.append(("client" if line[0] == "→" else "server", line[2:]))
            elif found and line.startswith(" "):
                found[-1] = (found[-1][0], found[-1][1] + line)
    return [(direction, json.loads(text)) for direction, text in found]


def test_the_schema_is_a_json_schema() -> None:
    Draft202012Validator.check_schema(schema())
    for direction in ("client", "server"):
        for t in schema_types(direction):  # type: ignore[arg-type]
            assert f"{direction}.{t}" in schema()["$defs"], (direction, t)


@pytest.mark.parametrize(("direction", "title"), [("client", "Client → server"), ("server", "Server → client")])
def test_every_message_type_is_in_the_document_and_the_schema(direction: Direction, title: str) -> None:
    in_doc = table_types(section(title))
    assert len(in_doc) == len(set(in_doc)), in_doc
    assert sorted(in_doc) == sorted(schema_types(direction))


def test_the_client_messages_are_the_server_routes() -> None:
    assert sorted(schema_types("client")) == sorted(ROUTES)


def test_the_examples_of_the_document_follow_the_schema() -> None:
    found = examples()
    assert {m["type"] for _, m in found} >= {"join", "joined", "lobby", "stats", "error", "offer", "ping", "pong"}
    for direction, message in found:
        assert problem(direction, message) is None, problem(direction, message)


def test_the_stats_schema_has_the_fields_of_the_sfu_dataclasses() -> None:
    defs = schema()["$defs"]
    assert list(defs["producer-stats"]["properties"]) == [f.name for f in fields(ProducerStats)]
    assert list(defs["consumer-stats"]["properties"]) == [f.name for f in fields(ConsumerStats)]


def test_every_code_and_reason_of_the_schema_is_documented() -> None:
    defs = schema()["$defs"]
    text = doc()
    enums = {
        "error codes": defs["server.error"]["properties"]["error"]["properties"]["code"]["enum"],
        "participant-left": defs["server.participant-left"]["properties"]["reason"]["enum"],
        "closed": defs["server.closed"]["properties"]["reason"]["enum"],
        "slot states": defs["server.slot"]["properties"]["state"]["enum"],
    }
    for what, values in enums.items():
        missing = [v for v in values if f"`{v}`" not in text]
        assert not missing, (what, missing)
    codes_table = re.findall(r"^\| (`[a-z-]+`(?:, `[a-z-]+`)*) \|", section("Errors"), re.M)
    documented = {c.strip("`") for row in codes_table for c in row.split(", ")}
    assert documented == set(enums["error codes"])


BAD: list[tuple[Direction, Any, str]] = [
    ("client", {"type": "dance", "id": 1}, "an unknown type"),
    ("client", {"id": 1}, "no type"),
    ("client", ["ping"], "not an object"),
    ("client", {"type": "join", "id": 1, "meeting_id": 12}, "a missing field"),
    ("client", {"type": "join", "id": 1, "version": 1, "meeting_id": "12"}, "a wrongly typed field"),
    ("client", {"type": "raise-hand", "id": 1, "raised": True, "loud": True}, "a field the protocol lacks"),
    ("client", {"type": "ping", "id": {"x": 1}}, "an id that is neither string nor integer"),
    ("client", {"type": "ping", "id": "x" * 65}, "an id over 64 characters"),
    ("client", {"type": "joined", "id": 1}, "a server message sent by the client"),
    ("client", {"type": "poll-create", "question": "?", "choices": ["one"]}, "too few choices"),
    ("server", {"type": "pong", "id": 1, "extra": 0}, "a field the protocol lacks"),
    ("server", {"type": "error", "id": None, "error": {"code": "oops", "message": "?"}}, "an undocumented code"),
    ("server", {"type": "participant-left", "participant_id": "p-1", "reason": "bored"}, "an undocumented reason"),
    ("server", {"type": "stats", "id": 1, "room_id": "1", "participants": [{
        "participant_id": "p-1", "role": "classroom", "state": "connected", "consumers": [],
        "producers": [{"source": "camera", "kind": "video", "bitrate": 1, "packets": 1, "lost": 0}]}]},
     "the old, wrong stats field names"),
    ("server", {"type": "recording", "state": "stopped", "recording_id": 1, "reason": "bored"}, "a bad variant"),
    ("server", {"type": "ping"}, "a client message sent by the server"),
]


@pytest.mark.parametrize(("direction", "message", "why"), BAD, ids=[b[2] for b in BAD])
def test_the_checker_refuses_what_the_schema_does_not_allow(direction: Direction, message: Any, why: str) -> None:
    assert problem(direction, message) is not None
    with pytest.raises(ProtocolViolation):
        check(direction, message)


def test_the_checker_reads_frames() -> None:
    assert check_text("server", '{"type": "pong"}') is None
    assert check_text("client", '{"type": "ping"}') is None
    assert check_text("server", "{not json") is not None
    assert check_text("client", b'{"type": "ping"}') is not None
