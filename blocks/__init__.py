"""Prefect blocks of the thrifty project: targets, credentials, policies."""

from __future__ import annotations

from typing import TypeVar

from prefect.blocks.core import Block

B = TypeVar("B", bound=Block)


def load_or_default(cls: type[B], name: str | None) -> B:
    """The saved block ``name`` of type ``cls``, or ``cls()``'s defaults when none is saved.

    A scheduled flow still runs before anyone saved its settings; an empty name asks for the
    defaults on purpose.
    """
    if not name:
        return cls()
    try:
        loaded = cls.load(name)
    except ValueError:
        return cls()
    if not isinstance(loaded, cls):
        return cls()
    return loaded
