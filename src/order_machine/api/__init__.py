"""The HTTP API (FastAPI): `create_app(settings)` is the only entry point.

Imports FastAPI and the service side; nothing in the domain imports this package.
"""

from __future__ import annotations

from .app import create_app

__all__ = ["create_app"]
