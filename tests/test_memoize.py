"""``cache.memoize`` and ``cache.delete_memoized``, on every backend."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from flask_uwsgicache import UWSGICache


@pytest.fixture
def ext(app: Flask) -> UWSGICache:
    return UWSGICache()


def test_equivalent_calls_share_one_entry(ext: UWSGICache) -> None:
    runs: list[tuple[int, int]] = []

    @ext.memoize()
    def add(a: int, b: int = 2) -> int:
        runs.append((a, b))
        return a + b

    assert [add(1, b=2), add(1, 2), add(1), add(a=1)] == [3, 3, 3, 3]
    assert add(2) == 4
    assert runs == [(1, 2), (2, 2)]


def test_delete_memoized_one_call_or_all(ext: UWSGICache) -> None:
    runs: list[int] = []

    @ext.memoize()
    def square(x: int) -> int:
        runs.append(x)
        return x * x

    square(2), square(3)
    assert ext.delete_memoized(square, 2) is True
    square(2), square(3)
    assert runs == [2, 3, 2]
    ext.delete_memoized(square)
    square(2), square(3)
    assert runs == [2, 3, 2, 2, 3]
    assert ext.delete_memoized_verhash(square) is True
    square(3)
    assert runs == [2, 3, 2, 2, 3, 3]


class Account:
    def __init__(self, number: int) -> None:
        self.number = number

    def __caching_id__(self) -> str:
        return f"account-{self.number}"

    @property
    def label(self) -> str:
        return f"#{self.number}"


def test_instance_and_class_methods(ext: UWSGICache) -> None:
    runs: list[str] = []

    class Bank(Account):
        @ext.memoize()
        def balance(self, currency: str = "EUR") -> str:
            runs.append(f"balance {self.label}")
            return f"{self.label} {currency}"

        @classmethod
        @ext.memoize()
        def rate(cls, currency: str) -> str:
            runs.append(f"rate {currency}")
            return f"{cls.__name__} {currency}"

    first, second, same_as_first = Bank(1), Bank(2), Bank(1)
    assert first.balance() == first.balance("EUR") == same_as_first.balance() == "#1 EUR"
    assert second.balance() == "#2 EUR"
    assert Bank.rate("USD") == Bank.rate("USD") == "Bank USD"
    assert runs == ["balance #1", "balance #2", "rate USD"]
    assert ext.delete_memoized(first.balance, "EUR") is True
    first.balance()
    assert ext.delete_memoized(Bank.rate, "USD") is True
    Bank.rate("USD")
    assert runs[3:] == ["balance #1", "rate USD"]


def test_args_to_ignore_and_cache_none(ext: UWSGICache) -> None:
    runs: list[Any] = []

    @ext.memoize(args_to_ignore=["log"])
    def lookup(key: str, log: Any = None) -> str:
        runs.append(key)
        return key.upper()

    @ext.memoize(cache_none=True)
    def nothing(key: str) -> None:
        runs.append(None)

    assert lookup("a", log=object()) == lookup("a", log=object()) == "A"
    nothing("x"), nothing("x")
    assert runs == ["a", None]


def test_async_functions_are_memoized(ext: UWSGICache, app: Flask) -> None:
    runs: list[int] = []

    @ext.memoize()
    async def compute(x: int) -> int:
        runs.append(x)
        return x + 1

    run = app.ensure_sync(compute)
    assert run(1) == run(1) == 2
    assert runs == [1]


def test_memoize_outside_an_app_just_calls() -> None:
    ext = UWSGICache()

    @ext.memoize()
    def plain(x: int) -> int:
        return x

    assert plain(5) == 5
