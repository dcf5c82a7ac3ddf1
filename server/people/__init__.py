"""server.people: accounts and join links, the organisational units (provinces, districts, communes),
classrooms, their CSV import and reference data, and enrolment in programs.

Each account action writes its own audit entry and returns the logins it ended; the caller commits, then
announces them on the bus. Uses infrastructure only.
"""
