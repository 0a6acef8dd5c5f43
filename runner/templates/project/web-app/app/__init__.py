"""A small web app on the standard library's ``http.server``: no framework, no packages."""

from app.server import make_server, respond
from app.settings import Settings, load_settings

__all__ = ["Settings", "load_settings", "make_server", "respond"]
