"""server.reports: attendance computed from live events (`presence`), classrooms' headcounts, the reports
built on them (`build`) and their CSV/XLSX exports.

Nothing here is stored as totals: every figure is recomputed from server.live.attendance's events. Uses
server.schedule, server.learning and server.live; nothing but the handlers uses it.
"""
