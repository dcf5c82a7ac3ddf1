"""server.audit: record operator and live actions in the audit log (AuditEntry rows), and read them back in words
(`readable`: the audit page shows labels, not action codes or JSON)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.auth import client_ip, identity
from server.db.models import AuditEntry, Classroom, Meeting, Program, Recording, User, utcnow


def record(s: AsyncSession, request: web.Request | None, action: str, target: str = "",
           actor_id: int | None = None, **details: Any) -> AuditEntry:
    """record: add an AuditEntry to `s` (the caller commits it with the change it describes)."""
    ident = identity(request) if request is not None else None
    entry = AuditEntry(
        at=utcnow(),
        actor_id=actor_id if actor_id is not None else (ident.user_id if ident else None),
        action=action,
        target=target,
        details=details,
        ip=client_ip(request) if request is not None else "",
    )
    s.add(entry)
    return entry


# --- the log as operators read it (the audit page) ------------------------------------------------------------

ACTIONS: dict[str, str] = {
    "login": "Logged in", "login.failed": "Login failed",
    "joinlink.create": "Join link created", "joinlink.open": "Entered by a join link",
    "joinlink.revoke": "Join link revoked",
    "token.create": "API token created", "token.revoke": "API token revoked",
    "user.create": "Account created", "user.update": "Account changed", "user.disable": "Account locked",
    "user.enable": "Account unlocked", "user.reset-password": "Password reset",
    "user.password-change": "Own password changed",
    "unit.create": "Unit created", "unit.update": "Unit changed", "units.import": "Units imported from a file",
    "classroom.create": "Classroom created", "classroom.update": "Classroom changed",
    "classroom.deactivate": "Classroom taken out of use", "classrooms.import": "Classrooms imported from a file",
    "program.create": "Program created", "program.update": "Program changed", "program.delete": "Program deleted",
    "program.learners": "Program learners changed", "program.trainers": "Program trainers changed",
    "meeting.create": "Meeting created", "meeting.update": "Meeting changed", "meeting.delete": "Meeting deleted",
    "meeting.import": "Meetings imported from a file", "meeting.publish": "Meeting published",
    "meeting.unpublish": "Meeting withdrawn to draft", "meeting.cancel": "Meeting cancelled",
    "meeting.document": "Meeting document uploaded", "headcount.save": "Headcount entered",
    "meeting.end": "Meeting ended for everyone", "meeting.extend": "Meeting extended",
    "live.admit": "Let in from the lobby", "live.refuse": "Refused at the lobby",
    "live.floor": "Floor given or taken back", "live.presenter": "Presenting handed over",
    "live.mute": "A participant's microphone, camera or screen turned off or on",
    "live.mute-all": "Every classroom's microphone turned off", "live.lock": "Room locked or unlocked",
    "live.remove": "Participant removed from the room", "live.chat-delete": "Chat message deleted",
    "recording.start": "Recording started", "recording.stop": "Recording stopped",
    "recording.refused": "Recording could not start", "recording.recovered": "Recording recovered after a stop",
    "recording.rename": "Recording renamed", "recording.publish": "Recording published",
    "recording.delete": "Recording deleted", "recording.audience": "Recording's audience changed",
    "recording.continue": "Recording continued after a pause",
    "broadcast.public-link": "Public watch link of the live broadcast turned on or off",
    "broadcast.question-approved": "Viewer's question put into the room's chat",
    "broadcast.question-answered": "Viewer's question answered",
    "broadcast.question-dismissed": "Viewer's question dismissed",
    "material.upload": "Material uploaded", "material.update": "Material changed",
    "material.delete": "Material deleted",
    "quiz.create": "Quiz created", "quiz.update": "Quiz changed", "quiz.delete": "Quiz deleted",
    "forum.topic": "Forum topic started", "forum.reply": "Forum answer posted",
    "forum.answered": "Forum question marked answered",
}
"""ACTIONS: every action code `record` is called with → its English label (message id; server/locale translates)."""

TOGGLES: dict[str, tuple[str, str, str]] = {
    "live.mute": ("muted", "A participant's microphone, camera or screen turned off",
                  "A participant's microphone, camera or screen turned back on"),
    "live.lock": ("locked", "Locked the room", "Unlocked the room"),
    "live.floor": ("participant", "Floor given", "Floor taken back"),
    "broadcast.public-link": ("enabled", "Public watch link turned on", "Public watch link turned off"),
}
"""TOGGLES: actions whose label says which way they went: action → (detail, label when truthy, label when not)."""

TARGETS: dict[str, str] = {
    "meeting": "Meeting", "program": "Program", "user": "Account", "classroom": "Classroom", "unit": "Unit",
    "recording": "Archived recording", "material": "Material", "quiz": "Quiz", "topic": "Forum topic",
    "question": "Forum question", "meetings": "Meetings",
}
"""TARGETS: the kind before the colon of a target ("meeting:12") → its English label."""

DETAILS: dict[str, str] = {
    "added": "Items added", "automatic": "Automatic", "before": "Before", "changes": "Changes",
    "classroom_id": "Classroom", "code": "Code", "count": "Number", "created": "Number created", "directory": "Folder",
    "ended": "Logins ended", "fields": "Fields changed", "filename": "File", "guest_name": "Guest name",
    "kind": "Kind", "link_id": "Join link", "lobby_id": "Lobby entry", "locked": "Locked", "meeting_id": "Meeting",
    "meeting_ids": "Meetings", "message_id": "Message", "mime": "File type", "muted": "Turned off", "name": "Name",
    "names": "Names", "new": "New", "old": "Old", "participant": "Participant", "previous": "Previous state",
    "program_id": "Program", "questions": "Questions", "reason": "Reason", "removed": "Removed",
    "replaced": "Replaced", "reply_id": "Answer", "result": "Result", "role": "Role", "rows": "Rows",
    "sha256": "Checksum (SHA-256)", "size": "Size (bytes)", "source": "Source", "starts_at": "Starts",
    "title": "Title", "token_id": "API token", "updated": "Number updated", "username": "Username", "via": "Through",
    "scheduled_end": "Scheduled end", "minutes": "Minutes", "ends_at_before": "End before", "ends_at": "New end",
    "after_seconds": "After (seconds)", "part": "Part", "enabled": "Turned on", "question_id": "Viewer's question",
}
"""DETAILS: the keys of an entry's details → their English labels."""

VALUES: dict[str, str] = {
    "cli": "the command line", "camera": "Camera", "mic": "Microphone", "screen": "Screen share",
    "audio": "Microphone", "video": "Camera", "published": "Published", "draft": "Draft", "cancelled": "Cancelled",
    "operator": "Operator", "trainer": "Trainer", "leader": "Leader", "classroom": "Classroom",
    "learner": "Learner", "guest": "Guest", "storage": "the disk could not be written",
    "disk-full": "the disk is full", "deleted by an operator": "deleted by an operator", "deleted": "deleted",
    "stopped": "stopped in the room", "lost": "the recorder lost the room", "empty": "the room was empty",
    "server-shutdown": "the server was shutting down", "meeting-ended": "the meeting was ended for everyone",
    "ended": "ended by a presenter or an operator",
    "overrun": "the time allowed after the scheduled end ran out", "enrolled": "learners enrolled in the program",
    "units": "learners of the participating units", "all": "all learners",
}
"""VALUES: detail values that are codes → their English labels (other values are shown as they are)."""
RETENTION = re.compile(r"retention \((\d+) days\)")
"""RETENTION: the reason of a recording deleted at the end of its retention period (server.live.recordings)."""


@dataclass
class ReadableEntry:
    """ReadableEntry: one audit entry in words: label, target (kind label, id or name, a page's link) and details."""

    action: str
    label: str
    target: str
    target_url: str
    details: list[tuple[str, str]]


TARGET_PAGES = {"meeting": "/meetings/{}", "program": "/programs/{}", "user": "/accounts/{}"}
NAMED: dict[str, tuple[Any, Any]] = {"meeting": (Meeting.id, Meeting.title), "program": (Program.id, Program.title),
                                     "user": (User.id, User.display_name), "recording": (Recording.id, Recording.title),
                                     "classroom": (Classroom.id, Classroom.name)}


async def target_names(s: AsyncSession, entries: list[AuditEntry]) -> dict[str, str]:
    """target_names: the title or name of each target ("meeting:12" → "Bài 3: …") of `entries` that still exists."""
    wanted: dict[str, set[int]] = {}
    for e in entries:
        kind, _, ident = e.target.partition(":")
        if kind in NAMED and ident.isdigit():
            wanted.setdefault(kind, set()).add(int(ident))
    names: dict[str, str] = {}
    for kind, ids in wanted.items():
        key, name = NAMED[kind]
        for row_id, text in (await s.execute(select(key, name).where(key.in_(ids)))).all():
            names[f"{kind}:{row_id}"] = str(text)
    return names


def readable(entry: AuditEntry, gettext: Callable[[str], str], names: dict[str, str] | None = None) -> ReadableEntry:
    """readable: `entry` in the words of `gettext`, its target named from `names` (`target_names`) when known (an
    unknown action code is shown as it is: the test of every recorded action keeps that from happening)."""
    label = gettext(ACTIONS[entry.action]) if entry.action in ACTIONS else entry.action
    if entry.action in TOGGLES and TOGGLES[entry.action][0] in (entry.details or {}):
        key, when_on, when_off = TOGGLES[entry.action]
        label = gettext(when_on if (entry.details or {})[key] else when_off)
    kind, sep, ident = entry.target.partition(":")
    target, url = entry.target, ""
    if kind in TARGETS:
        known = (names or {}).get(entry.target)
        target = gettext(TARGETS[kind]) + (f" “{known}”" if known else f" #{ident}" if ident.isdigit()
                                           else f" {ident}" if sep else "")
        if ident.isdigit() and kind in TARGET_PAGES:
            url = TARGET_PAGES[kind].format(ident)
    shown = dict(entry.details or {})
    if shown.get("name") and "participant" in shown:  # a live room's participant id means nothing to a reader
        shown["participant"] = shown.pop("name")
    details = [(gettext(DETAILS.get(key, key)), _value(value, gettext)) for key, value in shown.items()]
    return ReadableEntry(entry.action, label, target, url, details)


def _value(value: Any, gettext: Callable[[str], str]) -> str:
    if isinstance(value, bool):
        return gettext("yes") if value else gettext("no")
    if value is None or value == "":
        return "—"
    if isinstance(value, list | tuple):
        return ", ".join(_value(v, gettext) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{gettext(DETAILS.get(str(k), str(k)))}: {_value(v, gettext)}" for k, v in value.items())
    text = str(value)
    if retention := RETENTION.fullmatch(text):
        return gettext("kept for its %(days)s days") % {"days": retention.group(1)}
    return gettext(VALUES[text]) if text in VALUES else gettext(DETAILS[text]) if text in DETAILS else text
