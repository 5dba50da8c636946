"""CLI: `thrifty ingest`, `thrifty models list|show` (filled in by the ingest work)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    return None
