"""The inventory's data: books, and the stock of them a shop holds."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Book:
    """One title; the ISBN identifies it, everything else describes it."""

    isbn: str
    title: str
    author: str
    year: int
    genre: str
    list_price: float


@dataclass
class Inventory:
    """Copies in stock per ISBN, with the books they belong to."""

    books: dict[str, Book] = field(default_factory=dict)
    stock: dict[str, int] = field(default_factory=dict)

    def add(self, book: Book, copies: int = 1) -> None:
        """Receive copies of a book; a known ISBN must describe the same book."""
        if copies < 1:
            raise ValueError("copies must be at least 1")
        known = self.books.get(book.isbn)
        if known is not None and known != book:
            raise ValueError(f"ISBN {book.isbn} already names {known.title!r}")
        self.books[book.isbn] = book
        self.stock[book.isbn] = self.stock.get(book.isbn, 0) + copies

    def sell(self, isbn: str, copies: int = 1) -> int:
        """Take copies out of stock and return how many are left."""
        have = self.stock.get(isbn, 0)
        if copies > have:
            raise ValueError(f"only {have} copies of {isbn} in stock")
        self.stock[isbn] = have - copies
        return self.stock[isbn]

    def in_stock(self) -> list[Book]:
        return [self.books[i] for i in sorted(self.stock) if self.stock[i] > 0]

    def value(self) -> float:
        return round(sum(self.books[i].list_price * n for i, n in self.stock.items()), 2)
