"""A reverse-Polish-notation evaluator built on calc.arith (so the modules depend on each other)."""

from __future__ import annotations

from calc.arith import add, divide, multiply, subtract

OPERATORS = {"+": add, "-": subtract, "*": multiply, "/": divide}


def evaluate(expression: str) -> float:
    """Evaluate ``"3 4 + 2 *"``; errors name the token so a user can find it."""
    stack: list[float] = []
    for token in expression.split():
        if token in OPERATORS:
            if len(stack) < 2:
                raise ValueError(f"operator {token!r} needs two operands")
            right = stack.pop()
            left = stack.pop()
            stack.append(OPERATORS[token](left, right))
        else:
            try:
                stack.append(float(token))
            except ValueError:
                raise ValueError(f"not a number or operator: {token!r}") from None
    if len(stack) != 1:
        raise ValueError(f"expression leaves {len(stack)} values, expected 1")
    return stack[0]
