"""Unit tests for calc.rpn."""

import unittest

from calc import evaluate


class RpnTest(unittest.TestCase):
    def test_evaluates_expressions(self) -> None:
        self.assertEqual(evaluate("3 4 + 2 *"), 14.0)
        self.assertEqual(evaluate("10 4 /"), 2.5)
        self.assertEqual(evaluate("5"), 5.0)

    def test_errors_name_the_problem(self) -> None:
        with self.assertRaisesRegex(ValueError, "needs two operands"):
            evaluate("1 +")
        with self.assertRaisesRegex(ValueError, "'x'"):
            evaluate("1 x +")
        with self.assertRaisesRegex(ValueError, "leaves 2 values"):
            evaluate("1 2")


if __name__ == "__main__":
    unittest.main()
