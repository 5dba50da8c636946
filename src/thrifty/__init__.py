"""thrifty: from a model file to the cheapest verified deployment."""

from __future__ import annotations

__version__ = "0.1.0"
