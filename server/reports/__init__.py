"""server.reports: attendance computed from live events, headcounts, reports and their exports."""
