"""server.units: administrative units and classrooms: reference data and CSV import (to be written)."""

from __future__ import annotations

import argparse

from sqlalchemy.ext.asyncio import AsyncSession

from server.config import Config


async def seed_reference_units(s: AsyncSession) -> None:
    """seed_reference_units: add the shipped provinces when the units table is empty."""


async def run_import_command(config: Config, args: argparse.Namespace) -> int:
    """run_import_command: `taphuan import ...` (being written)."""
    raise SystemExit("taphuan import: not available yet")
