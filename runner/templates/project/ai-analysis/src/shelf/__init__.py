"""shelf: a small bookshop inventory, the code this example's workflow analyses."""

from shelf.models import Book, Inventory
from shelf.pricing import price_for
from shelf.search import search

__all__ = ["Book", "Inventory", "price_for", "search"]
