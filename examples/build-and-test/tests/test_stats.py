"""Unit tests for calc.stats."""

import unittest

from calc import mean, median, variance


class StatsTest(unittest.TestCase):
    def test_mean_and_median(self) -> None:
        self.assertEqual(mean([1, 2, 3, 4]), 2.5)
        self.assertEqual(median([3, 1, 2]), 2.0)
        self.assertEqual(median([4, 1, 3, 2]), 2.5)

    def test_variance(self) -> None:
        self.assertAlmostEqual(variance([2, 4, 4, 4, 5, 5, 7, 9]), 4.0)

    def test_empty_input_is_rejected(self) -> None:
        for fn in (mean, median, variance):
            with self.subTest(fn=fn.__name__), self.assertRaises(ValueError):
                fn([])


if __name__ == "__main__":
    unittest.main()
