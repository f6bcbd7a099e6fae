"""Read a uWSGI ini file the way uWSGI does, repeated options included.

``configparser`` keeps one value per key, but uWSGI options repeat (two ``cache2`` lines
make two caches), so this reads the ``[uwsgi]`` section line by line: ``key = value``,
comments on lines starting with ``;`` or ``#``, ``ini = other.ini`` includes (with
``%d``, the directory of the including file, and ``%n``, its name). Lines inside
``if-env``/``if-not-env`` blocks are kept: which branch runs depends on the environment
of the server, not of this process.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from . import cache2


@dataclasses.dataclass
class IniOption:
    """One ``key = value`` line, and where it came from."""

    key: str
    value: str
    path: Path
    line: int

    @property
    def where(self) -> str:
        """``file:line``, for messages."""
        return f"{self.path}:{self.line}"


def _expand(value: str, path: Path) -> str:
    """uWSGI's magic variables that locate files: ``%d`` (with a trailing slash), ``%n``."""
    return (
        value.replace("%%", "\0")
        .replace("%d", f"{path.parent.resolve()}/")
        .replace("%n", path.stem)
        .replace("\0", "%")
    )


def read_ini(
    path: str | Path, section: str = "uwsgi", _seen: tuple[Path, ...] = ()
) -> list[IniOption]:
    """Every option of ``section`` in ``path`` and the files it includes, in order.

    Raises ``OSError`` for a file that cannot be read, ``ValueError`` for an include
    loop.
    """
    path = Path(path)
    if path.resolve() in _seen:
        raise ValueError(f"{path} includes itself (through {' -> '.join(map(str, _seen))})")
    options: list[IniOption] = []
    current = None
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        text = raw.strip()
        if not text or text[0] in ";#":
            continue
        if text.startswith("[") and text.endswith("]"):
            current = text[1:-1].strip()
            continue
        if current != section:
            continue
        key, sep, value = text.partition("=")
        key, value = key.strip(), value.strip() if sep else "true"
        if key == "ini":
            options += read_ini(_expand(value, path), section, (*_seen, path.resolve()))
            continue
        options.append(IniOption(key, value, path, number))
    return options


def values(options: list[IniOption], key: str) -> list[str]:
    """Every value of ``key``, in order."""
    return [option.value for option in options if option.key == key]


def last(options: list[IniOption], key: str, default: str | None = None) -> str | None:
    """The value uWSGI uses for a single-valued option: the last one."""
    found = values(options, key)
    return found[-1] if found else default


_OFF = ("0", "false", "no", "off")


def flag(options: list[IniOption], key: str) -> bool:
    """True if the flag ``key`` is set to something other than 0, false, no or off."""
    value = last(options, key)
    return value is not None and value.lower() not in _OFF


def number(options: list[IniOption], *keys: str) -> int:
    """A number option, at least 1; the first of ``keys`` that is set (aliases)."""
    for key in keys:
        value = last(options, key)
        if value is not None:
            return max(cache2.loose_number(value), 1)
    return 1
