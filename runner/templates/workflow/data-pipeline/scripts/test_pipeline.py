"""Unit tests of the cleaning rules: the pipeline's `test` step runs these before any data."""

from __future__ import annotations

import unittest

from clean import clean, problem
from generate import generate


def row(**over: str) -> dict[str, str]:
    base = {
        "order_id": "A00001",
        "region": " north ",
        "product": "Widget",
        "quantity": "3",
        "unit_price": "2.50",
    }
    return {**base, **over}


class ProblemTest(unittest.TestCase):
    def test_a_good_row_has_no_problem(self) -> None:
        self.assertIsNone(problem(row()))

    def test_each_kind_of_mess_is_named(self) -> None:
        self.assertEqual(problem(row(region="")), "missing region")
        self.assertEqual(problem(row(quantity="n/a")), "bad quantity 'n/a'")
        self.assertEqual(problem(row(quantity="-3")), "bad quantity '-3'")
        self.assertEqual(problem(row(unit_price="7,25")), "bad unit_price '7,25'")
        self.assertEqual(problem(row(unit_price="0")), "bad unit_price '0'")


class CleanTest(unittest.TestCase):
    def test_normalises_and_prices_in_cents(self) -> None:
        kept, rejects, duplicates = clean([row(quantity="3", unit_price="0.1")])
        self.assertEqual(rejects, [])
        self.assertEqual(duplicates, 0)
        self.assertEqual(kept[0]["region"], "North")
        self.assertEqual(kept[0]["product"], "widget")
        self.assertEqual(kept[0]["revenue"], "0.30")

    def test_the_first_order_wins_and_repeats_are_duplicates(self) -> None:
        kept, rejects, duplicates = clean([row(), row(quantity="9")])
        self.assertEqual([r["quantity"] for r in kept], ["3"])
        self.assertEqual(rejects[0]["reason"], "duplicate order_id")
        self.assertEqual(duplicates, 1)

    def test_blank_lines_are_not_records(self) -> None:
        blank = {k: "" for k in row()}
        self.assertEqual(clean([blank]), ([], [], 0))


class GenerateTest(unittest.TestCase):
    def test_the_same_seed_gives_the_same_lines(self) -> None:
        self.assertEqual(generate(50, 7), generate(50, 7))
        self.assertNotEqual(generate(50, 7), generate(50, 8))


if __name__ == "__main__":
    unittest.main()
