"""recorder: a participant that writes what it consumes into archived lecture videos."""
