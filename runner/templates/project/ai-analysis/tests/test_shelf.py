"""Unit tests of the sample code; replace them with your own along with src/."""

from __future__ import annotations

import unittest

from shelf import Book, Inventory, price_for, search

DUNE = Book("9780441172719", "Dune", "Frank Herbert", 1965, "fiction", 10.0)
ODES = Book("9780140424447", "Odes", "John Keats", 2020, "poetry", 8.0)


class InventoryTest(unittest.TestCase):
    def test_stock_and_value(self) -> None:
        shop = Inventory()
        shop.add(DUNE, 2)
        shop.add(ODES)
        self.assertEqual(shop.sell(DUNE.isbn), 1)
        self.assertEqual(shop.value(), 18.0)
        with self.assertRaises(ValueError):
            shop.sell(ODES.isbn, 2)


class PricingTest(unittest.TestCase):
    def test_discounts_stack(self) -> None:
        self.assertEqual(price_for(DUNE, this_year=2024), 7.5)
        # 80 x 0.85 (poetry) x 0.85 (ten copies, member) x 0.95 (member)
        self.assertEqual(price_for(ODES, 10, this_year=2024, member=True), 54.91)


class SearchTest(unittest.TestCase):
    def test_forgives_case_and_small_typos(self) -> None:
        shop = Inventory()
        shop.add(DUNE)
        shop.add(ODES)
        self.assertEqual(search(shop, "herbrt"), [DUNE])
        self.assertEqual(search(shop, "KEATS odes"), [ODES])


if __name__ == "__main__":
    unittest.main()
