"""server.live: the meeting as it happens: signalling, rooms, chat, polls, lobby, recording control, attendance
events."""
