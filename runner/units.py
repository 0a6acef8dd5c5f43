"""The one syntax for durations and quantities, shared by the schema docs and the loader.

Durations: a number with a unit, ``500ms``, ``30s``, ``10m``, ``1h``, ``1h30m``, or a bare
number of seconds (``90``, ``0.5``). Quantities: a plain number (``2``, ``0.5``) or, as in
Kubernetes, a number with a suffix: ``m`` (milli, ``500m`` cpu = 0.5), decimal ``k M G T``
and binary ``Ki Mi Gi Ti``. Memory is counted in bytes, cpu in cores.
"""

from __future__ import annotations

import re

SIZE_PATTERN = r"^[0-9]+(\.[0-9]+)?(k|K|M|G|T|Ki|Mi|Gi|Ti)?B?$"  # schemas/config.json
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h|d))+$|^[0-9]+(\.[0-9]+)?$"
QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(m|k|K|M|G|T|Ki|Mi|Gi|Ti)?$"

_DUR_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")
_DUR_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_QTY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(m|k|K|M|G|T|Ki|Mi|Gi|Ti)?$")
_QTY_FACTOR = {
    None: 1.0,
    "m": 0.001,
    "k": 1e3,
    "K": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "Ki": 1024.0,
    "Mi": 1024.0**2,
    "Gi": 1024.0**3,
    "Ti": 1024.0**4,
}


DURATION_EXAMPLES = "500ms, 30s, 10m, 1h30m"


def parse_duration(value: str | int | float, examples: str = DURATION_EXAMPLES) -> float:
    """Seconds in ``value``; raises ValueError with the accepted syntax (``examples``:
    what the hint shows, e.g. days for an age)."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"a duration cannot be negative: {value!r}")
        return float(value)
    text = str(value).strip()
    if re.fullmatch(r"[0-9]+(\.[0-9]+)?", text):
        return float(text)
    parts = _DUR_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {value!r} (use e.g. {examples})")
    return sum(float(n) * _DUR_SECONDS[u] for n, u in parts)


def parse_quantity(value: str | int | float) -> float:
    """The amount in ``value`` (bytes for memory, cores for cpu)."""
    if isinstance(value, bool):
        raise ValueError(f"not a quantity: {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"a quantity cannot be negative: {value!r}")
        return float(value)
    m = _QTY.match(str(value).strip())
    if not m:
        raise ValueError(f"not a quantity: {value!r} (use e.g. 2, 0.5, 500m, 512Mi, 2Gi)")
    return float(m.group(1)) * _QTY_FACTOR[m.group(2)]


def parse_size(value: str | int | float) -> int:
    """Bytes in a size: a quantity (``5Gi``, ``500M``, ``1024``) that may end in ``B`` as
    people write sizes (``5GiB``, ``500MB``, ``100B``). Raises ValueError, with the
    accepted syntax, for anything else, ``m`` (milli: no part of a byte) included."""
    text = value
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("m"):
            raise ValueError(f"not a size: {value!r} (use e.g. 500MB, 5GiB, 1024)")
        text = text.removesuffix("B")
    try:
        return int(parse_quantity(text))
    except ValueError:
        raise ValueError(f"not a size: {value!r} (use e.g. 500MB, 5GiB, 1024)") from None


def format_duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    m, s = divmod(int(seconds), 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    return f"{n:.1f}TiB"
