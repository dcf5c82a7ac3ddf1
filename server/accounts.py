"""server.accounts: account management (being written)."""

from __future__ import annotations

import argparse

from server.config import Config


async def run_user_command(config: Config, args: argparse.Namespace) -> int:
    """run_user_command: `taphuan user ...` (being written)."""
    raise SystemExit("taphuan user: not available yet")
