"""The C speedups (``flask_uwsgicache/_speedups.c``): what a broken C path would get
wrong. The contract suite and the envelope's tests run on both implementations too;
these are the cases only a second implementation can get wrong."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from flask_uwsgicache import BoundCache, CacheFullError, UWSGICache
from flask_uwsgicache import speedups as speedups_module
from flask_uwsgicache.backends.memory import MemoryBackend

Lines = Callable[[], list[str]]
BOTH = pytest.mark.parametrize("implementation", ["c", "python"], indirect=True)
C_ONLY = pytest.mark.parametrize("implementation", ["c"], indirect=True)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def memory_cache(make_app: Callable[..., Flask], **config: object) -> BoundCache:
    app = make_app(UWSGICACHE_BACKEND="memory", **config)
    UWSGICache(app)
    cache: BoundCache = app.extensions["uwsgicache"]
    return cache


def with_clock(cache: BoundCache, now: float = 1_800_000_000.0) -> Clock:
    clock = Clock(now)
    cache.envelope.clock = clock
    assert isinstance(cache.backend, MemoryBackend)
    cache.backend.clock = clock
    return clock


@C_ONLY
def test_a_cache_and_each_key_space_run_their_own_c_get_and_set(
    implementation: str, make_app: Callable[..., Flask]
) -> None:
    cache = memory_cache(make_app)
    assert cache.describe()["speedups"] is True
    spaces = [cache, cache.responses, cache.internal]
    owners = []
    for space in spaces:
        assert type(space.get).__name__ == "builtin_function_or_method"
        owners.append(getattr(space.get, "__self__"))  # noqa: B009  (not in the stubs)
    assert len({id(owner) for owner in owners}) == 3
    for number, space in enumerate(spaces):
        assert space.set("k", {"space": number}) is True
    assert [space.get("k") for space in spaces] == [{"space": n} for n in range(3)]


def test_uwsgicache_no_speedups_keeps_the_python_methods(
    make_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UWSGICACHE_NO_SPEEDUPS", "1")
    assert speedups_module.load() is None
    monkeypatch.setattr(speedups_module, "built", speedups_module.load())
    cache = memory_cache(make_app)
    assert cache.describe()["speedups"] is False
    assert "get" not in vars(cache) and "set" not in vars(cache)
    assert cache.set("k", [1]) and cache.get("k") == [1]


@pytest.mark.parametrize("sign", [True, False], ids=["signed", "unsigned"])
def test_both_implementations_store_the_same_bytes(
    make_app: Callable[..., Flask],
    monkeypatch: pytest.MonkeyPatch,
    speedups: Any,
    sign: bool,
) -> None:
    values: list[Any] = [
        {"id": 42, "roles": ["admin"]},
        [1, 2.5, None],
        {},
        "text",
        b"raw",
        7,
        3.5,
        ("a", 1),
        {"big": "x" * 5000},
    ]
    timeouts: list[float | None] = [None, 1, 60, 2**31 - 1, 0, 1.5]
    stored = []
    for module in (speedups, None):
        monkeypatch.setattr(speedups_module, "built", module)
        cache = memory_cache(make_app, UWSGICACHE_SIGN=sign)
        assert cache.describe()["speedups"] is (module is not None)
        with_clock(cache)
        entries = []
        for number, value in enumerate(values):
            for timeout in timeouts:
                key = f"key{number}:{timeout}"
                assert cache.set(key, value, timeout) is True
                assert cache.set(key, value, timeout) is True  # a known key now
                assert cache.get(key) == value
                entries.append(cache.backend.get(cache.storage_key(key)))
        stored.append(entries)
    assert stored[0] == stored[1]


@BOTH
def test_an_entry_is_a_miss_from_the_exact_second_it_expires(
    implementation: str, make_app: Callable[..., Flask]
) -> None:
    cache = memory_cache(make_app)
    clock = with_clock(cache, 1000.0)
    assert cache.set("k", {"a": 1}, timeout=10) is True
    clock.now = 1009.999
    assert cache.get("k") == {"a": 1}
    clock.now = 1010.0
    assert cache.get("k", "gone") == "gone"


@BOTH
def test_a_clock_replaced_after_construction_is_the_one_read(
    implementation: str, make_app: Callable[..., Flask]
) -> None:
    cache = memory_cache(make_app)
    assert cache.set("k", [1], timeout=10) is True  # on the real clock
    later = Clock(cache.clock() + 11)
    cache.envelope.clock = later
    assert cache.get("k") is None
    assert cache.set("k", [2], timeout=10) is True  # expires_at from the new clock
    later.now += 9
    assert cache.get("k") == [2]
    later.now += 1
    assert cache.get("k") is None


@BOTH
def test_a_planted_entry_with_a_bad_mac_is_a_logged_miss(
    implementation: str, make_app: Callable[..., Flask], log_lines: Lines
) -> None:
    cache = memory_cache(make_app)
    assert cache.set("k", {"a": 1}) is True
    assert cache.get("k") == {"a": 1}  # verified, and remembered as verified
    storage_key = cache.storage_key("k")
    entry = cache.backend.get(storage_key)
    assert entry is not None
    cache.backend.set(storage_key, entry[:-28] + bytes(16) + entry[-12:], 0)
    assert cache.get("k", "default") == "default"
    assert any("bad signature" in line for line in log_lines())
    cache.envelope.verified.clear()  # cleared in place, as the memo does when full
    cache.backend.set(storage_key, entry, 0)
    assert cache.get("k") == {"a": 1}


@BOTH
def test_short_entries_and_other_formats_are_logged_misses(
    implementation: str, make_app: Callable[..., Flask], log_lines: Lines
) -> None:
    for planted, reason in [
        (b"x", "too short"),
        (b"\x80\x05}\x94." + b"\x03uC\x09" * 3, "not written by flask-uwsgicache"),
        (b"\x80garbage" + bytes(8) + b"\x03uC\x02", "does not load"),
    ]:
        cache = memory_cache(make_app, UWSGICACHE_SIGN=False)  # its own rate limit
        storage_key = cache.storage_key("k")
        cache.backend.set(storage_key, planted, 0)
        assert cache.get("k", "default") == "default"
        assert reason in log_lines()[-1]


@BOTH
def test_a_full_cache_refuses_a_write_with_false_and_a_log_line(
    implementation: str, make_app: Callable[..., Flask], log_lines: Lines
) -> None:
    cache = memory_cache(make_app, UWSGICACHE_MEMORY="items=3")
    assert cache.set("a", {"n": 1}) and cache.set("b", {"n": 2})
    cache.storage_key("c")  # a known key: the C path writes it
    assert cache.set("c", {"n": 3}) is False
    assert "full" in log_lines()[-1]
    assert cache.set("a", {"n": 4}) is True  # an update still goes in
    cache.raise_errors = True
    with pytest.raises(CacheFullError):
        cache.set("c", {"n": 3})


@BOTH
def test_get_and_set_take_the_arguments_of_the_python_methods(
    implementation: str, make_app: Callable[..., Flask], log_lines: Lines
) -> None:
    cache = memory_cache(make_app)
    assert cache.set("k", {"a": 1}, timeout=5) is True
    assert cache.set(key="k2", value=[2]) is True
    assert cache.get("k", default=0) == {"a": 1}
    assert cache.get(key="k2") == [2]
    assert cache.get("nope", default=0) == 0
    for call in (
        lambda: cache.get(),  # type: ignore[call-arg]
        lambda: cache.get("k", 1, 2),  # type: ignore[call-arg]
        lambda: cache.set("k"),  # type: ignore[call-arg]
        lambda: cache.get("k", defualt=1),  # type: ignore[call-arg]
    ):
        with pytest.raises(TypeError, match=re.escape("get()|set()").replace("\\|", "|")):
            call()
    # What the C path hands to Python: other timeouts, values pickle refuses.
    assert cache.set("f", [1], timeout=1.5) is True
    with pytest.raises(TypeError, match="not a number"):
        cache.set("b", [1], timeout=True)
    assert cache.set("bad", {"f": lambda: 1}) is False
    assert "cannot store a dict" in log_lines()[-1]
    assert cache.set(42, [1]) is False  # type: ignore[arg-type]
    assert cache.get(["unhashable"], "default") == "default"  # type: ignore[arg-type]


class UnhashableAtTimes(str):
    """A key whose hashing fails with something other than TypeError."""

    def __hash__(self) -> int:
        raise ValueError("no hash today")


@BOTH
def test_a_key_whose_hash_fails_raises_as_in_python(
    implementation: str, make_app: Callable[..., Flask]
) -> None:
    cache = memory_cache(make_app)
    # Only TypeError (an unhashable key) is caught and makes the call a miss.
    for call in (lambda: cache.get(UnhashableAtTimes("k")),
                 lambda: cache.set(UnhashableAtTimes("k"), 1)):  # fmt: skip
        with pytest.raises(ValueError, match="no hash today"):
            call()
    assert cache.get(["unhashable"]) is None  # type: ignore[arg-type]  # the control


@BOTH
def test_a_set_of_the_backends_own_is_the_one_written_through(
    implementation: str, make_app: Callable[..., Flask]
) -> None:
    cache = memory_cache(make_app)
    writes: list[bytes] = []
    original = cache.backend.set

    def spy(key: bytes, entry: bytes, ttl: float) -> None:
        writes.append(key)
        original(key, entry, ttl)

    cache.backend.set = spy  # type: ignore[method-assign]
    assert cache.set("k", {"a": 1}) is True
    assert writes and cache.get("k") == {"a": 1}


@C_ONLY
def test_a_second_interpreter_runs_the_python_methods(implementation: str) -> None:
    # The C module's state is the process's: apps uWSGI mounts in sub-interpreters
    # must not put their objects there (the first interpreter would call into them).
    subinterpreters = pytest.importorskip("_xxsubinterpreters")
    interpreter = subinterpreters.create()
    try:
        subinterpreters.run_string(
            interpreter,
            "from flask_uwsgicache import speedups\n"
            "assert speedups.built is None, 'configured the C module again'\n",
        )
    finally:
        subinterpreters.destroy(interpreter)
    assert speedups_module.built is not None  # the control: this one still has it
    assert speedups_module.load() is not None  # and may configure it again
