"""One way to print the benchmarks' rows that have targets."""

from __future__ import annotations

Row = tuple[str, str, float, float, str]  # case, the figure as shown, its value, its limit, unit


def print_rows(rows: list[Row]) -> bool:
    """Print each row with PASS or FAIL; whether all passed."""
    passed = True
    for name, shown, value, limit, unit in rows:
        ok = value <= limit
        passed &= ok
        print(f"{name:44} {shown:>10}  {'PASS' if ok else 'FAIL'}: <= {limit}{unit}")
    return passed
