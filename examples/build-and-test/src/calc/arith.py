"""Basic arithmetic, with division that says what went wrong instead of raising a bare error."""

from __future__ import annotations

Number = int | float


def add(a: Number, b: Number) -> Number:
    return a + b


def subtract(a: Number, b: Number) -> Number:
    return a - b


def multiply(a: Number, b: Number) -> Number:
    return a * b


def divide(a: Number, b: Number) -> float:
    """Divide, raising ValueError (not ZeroDivisionError) so callers handle one error type."""
    if b == 0:
        raise ValueError(f"cannot divide {a} by zero")
    return a / b


def clamp(value: Number, low: Number, high: Number) -> Number:
    """Keep ``value`` inside [low, high]; a reversed range is a caller mistake."""
    if low > high:
        raise ValueError(f"empty range [{low}, {high}]")
    return max(low, min(high, value))
