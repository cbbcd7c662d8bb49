"""Exact decimal arithmetic at any magnitude: each operation runs in a context wide enough for its
operands, so a wei balance (30 integer digits and 18 decimals) or 1e400 is never rounded.

Python's default context keeps 28 significant digits and rounds silently (or raises in `quantize`);
scores are exact values from the source of truth and every difference shown must be exact too.
"""

from __future__ import annotations

from decimal import MAX_EMAX, MIN_EMIN, ROUND_HALF_UP, Context, Decimal, localcontext

_DEFAULT_PRECISION = 28


def _context(*values: Decimal, extra_places: int = 0) -> Context:
    """A context whose precision holds every digit from the largest operand's top to the smallest's bottom."""
    top = max(v.adjusted() for v in values)
    bottom = min(int(v.as_tuple().exponent) for v in values)  # finite values only (scores are finite)
    digits = top - min(bottom, -extra_places) + 3  # a carry, and the digit a rounding looks at
    return Context(prec=max(digits, _DEFAULT_PRECISION), Emax=MAX_EMAX, Emin=MIN_EMIN, rounding=ROUND_HALF_UP)


def add(a: Decimal, b: Decimal) -> Decimal:
    with localcontext(_context(a, b)):
        return a + b


def subtract(a: Decimal, b: Decimal) -> Decimal:
    with localcontext(_context(a, b)):
        return a - b


def scale_down(value: Decimal, powers_of_ten: int) -> Decimal:
    """value / 10**powers_of_ten, exactly."""
    return value.scaleb(-powers_of_ten, _context(value, extra_places=powers_of_ten))


def round_half_up(value: Decimal, places: int) -> Decimal:
    """`value` to `places` decimals, halves away from zero, computed on the exact value."""
    return value.quantize(Decimal(1).scaleb(-places), context=_context(value, extra_places=places))
