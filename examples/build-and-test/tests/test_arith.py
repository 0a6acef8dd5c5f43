"""Unit tests for calc.arith."""

import unittest

from calc import add, clamp, divide, multiply, subtract


class ArithTest(unittest.TestCase):
    def test_basic_operations(self) -> None:
        self.assertEqual(add(2, 3), 5)
        self.assertEqual(subtract(2, 3), -1)
        self.assertEqual(multiply(4, 2.5), 10.0)
        self.assertEqual(divide(7, 2), 3.5)

    def test_divide_by_zero_is_a_value_error(self) -> None:
        with self.assertRaisesRegex(ValueError, "by zero"):
            divide(1, 0)

    def test_clamp(self) -> None:
        self.assertEqual(clamp(5, 0, 3), 3)
        self.assertEqual(clamp(-1, 0, 3), 0)
        self.assertEqual(clamp(2, 0, 3), 2)
        with self.assertRaises(ValueError):
            clamp(1, 3, 0)


if __name__ == "__main__":
    unittest.main()
