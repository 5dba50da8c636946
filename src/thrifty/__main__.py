"""``python -m thrifty`` runs the CLI."""

from __future__ import annotations

from thrifty.cli import main

main()
