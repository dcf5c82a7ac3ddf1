"""server.schedule: meetings, the scheduling rules, deadlines, calendars, CSV import and notifications."""
