"""server.live: the meeting as it happens: signalling, rooms, chat, polls, lobby, recording control, attendance.

Who owns what:
- `service.Live` (one per app, under `service.LIVE`) owns the `Sfu` and the table of open connections and the
  lobby; it is changed only on the event loop, without awaits in between.
- `connection.Connection` owns one WebSocket and at most one participant; `signalling` builds it with the
  union of every area's routes (`entry`, `chat`, `polls`, `lobby`, `recording_live` and its own).
- The room's mailbox task (sfu/room.py) owns the media state; this package reads it through
  `Room.snapshot()` and the replies of the room's calls, and tells the SFU capabilities (`capabilities`), not roles.
- `recordings.Recorders` (under `RECORDERS`) owns one recorder per live room and the finalizing queue.
- `attendance` writes the events reports are computed from (server.reports).
- `ending.Ending` (under `ending.ENDING`) ends meetings for everyone (asked, or past their end plus the overrun)
  and warns presenters at the scheduled end; extensions follow the scheduling rules (server.schedule.ending).

Layering inside the package, lowest first: wire → connection → service → attendance → chat, polls, lobby,
recording_live, ending → entry → signalling. Nothing here imports a module above it (tests/test_layers.py).
"""
