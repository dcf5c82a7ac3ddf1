"""server.learning: materials, the forum and self-study (e-learning progress)."""
