"""server.schedule: meetings and their rules: the meeting service, the 10-day notice and no-overlap rules,
deadlines and documents, calendars and feeds, a term's CSV import, and notifications.

`meetings` is the service the pages, the API and the CLI call; `rules` holds the scheduling rules it
enforces. Uses server.people (units, classrooms) and infrastructure only.
"""
