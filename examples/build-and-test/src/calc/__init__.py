"""calc: a tiny arithmetic and statistics library, the thing the example builds and tests."""

from calc.arith import add, clamp, divide, multiply, subtract
from calc.rpn import evaluate
from calc.stats import mean, median, variance

__all__ = [
    "add",
    "clamp",
    "divide",
    "evaluate",
    "mean",
    "median",
    "multiply",
    "subtract",
    "variance",
]
__version__ = "0.1.0"
