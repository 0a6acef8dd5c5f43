"""The app's settings: a JSON file in development, baked into the archive by the build.

``config/settings.json`` holds the defaults a developer runs with; the workflow's ``build``
step overlays the project environment's params (``--env prod``) and writes the result into
the archive as ``app/settings.json``, so a built app carries exactly the settings it was
built and smoke-tested with.
"""

from __future__ import annotations

import json
import pkgutil
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    title: str = "web app"
    port: int = 8080
    debug: bool = False

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def parse(data: dict[str, object]) -> Settings:
    """Settings from a mapping; an unknown key is an error, not silently ignored."""
    known = set(Settings.__dataclass_fields__)
    unknown = sorted(set(data) - known)
    if unknown:
        names = ", ".join(sorted(known))
        raise ValueError(f"unknown settings: {', '.join(unknown)} (known: {names})")
    settings = Settings(**data)  # type: ignore[arg-type]
    if not isinstance(settings.port, int) or not 0 <= settings.port < 65536:
        raise ValueError(f"port must be a whole number from 0 to 65535, not {settings.port!r}")
    if not isinstance(settings.debug, bool):
        raise ValueError(f"debug must be true or false, not {settings.debug!r}")
    return settings


def load_settings(path: Path | None = None) -> Settings:
    """From ``path``, else the copy baked into the archive, else the defaults."""
    if path is not None:
        return parse(json.loads(path.read_text(encoding="utf-8")))
    baked = pkgutil.get_data("app", "settings.json")
    return parse(json.loads(baked)) if baked else Settings()
