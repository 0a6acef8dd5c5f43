"""Shelf prices: the list price after the shop's discount rules.

The rules stack in a fixed order (age, then genre, then volume) and the result never
drops below the floor price, so a pile of discounts cannot sell a book at a loss.
"""

from __future__ import annotations

from shelf.models import Book

FLOOR = 0.4  # never below 40% of the list price
GENRE_DISCOUNT = {"poetry": 0.15, "travel": 0.10}


def age_discount(book: Book, this_year: int) -> float:
    """Older books are cheaper: 10% after five years, 25% after twenty."""
    age = this_year - book.year
    if age >= 20:
        return 0.25
    if age >= 5:
        return 0.10
    return 0.0


def volume_discount(copies: int, member: bool) -> float:
    """Buying several copies earns a discount; members earn it sooner."""
    threshold = 3 if member else 5
    if copies >= threshold * 2:
        return 0.15
    if copies >= threshold:
        return 0.05
    return 0.0


def price_for(book: Book, copies: int = 1, *, this_year: int, member: bool = False) -> float:
    """The total for ``copies`` of ``book``, all applicable discounts applied."""
    if copies < 1:
        raise ValueError("copies must be at least 1")
    factor = 1.0
    for discount in (
        age_discount(book, this_year),
        GENRE_DISCOUNT.get(book.genre, 0.0),
        volume_discount(copies, member),
    ):
        if discount:
            factor *= 1 - discount
    if member and book.genre != "textbook":
        factor *= 0.95
    factor = max(factor, FLOOR)
    return round(book.list_price * factor * copies, 2)
