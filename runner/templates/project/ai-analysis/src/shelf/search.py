"""Find books by words in the title or author, forgiving case, accents and small typos."""

from __future__ import annotations

import unicodedata
from difflib import SequenceMatcher

from shelf.models import Book, Inventory


def normalise(text: str) -> str:
    """Lower-case and strip accents, so "Émile" matches "emile"."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def similarity(query: str, word: str) -> float:
    return SequenceMatcher(None, query, word).ratio()


def score(book: Book, terms: list[str]) -> float:
    """How well a book matches: each term scores its best word, exact matches count double."""
    words = normalise(f"{book.title} {book.author}").split()
    total = 0.0
    for term in terms:
        best = 0.0
        for word in words:
            if word == term:
                best = 2.0
                break
            best = max(best, similarity(term, word))
        if best < 0.75:
            return 0.0
        total += best
    return total


def search(inventory: Inventory, query: str, limit: int = 10, in_stock: bool = True) -> list[Book]:
    """Books matching every word of ``query``, best first (ties by title, then ISBN)."""
    terms = normalise(query).split()
    if not terms:
        return []
    pool = inventory.in_stock() if in_stock else list(inventory.books.values())
    scored = [(score(book, terms), book) for book in pool]
    ranked = [(s, b) for s, b in scored if s > 0]
    ranked.sort(key=lambda pair: (-pair[0], pair[1].title, pair[1].isbn))
    return [book for _, book in ranked[:limit]]
