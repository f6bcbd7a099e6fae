"""What the doctor says: a section per cache and one for the instance, each with
facts and problems, rendered as text with an exit code."""

from __future__ import annotations

import dataclasses

ERROR, WARNING = "error", "warning"
# What uWSGI does with a cache2 line (Section.outcome), as tests/test_doctor_truth.py
# checks against the uWSGI binary.
WILL_NOT_START = "will not start"
STORES_NOTHING = "starts, but this package can store nothing in the cache"
STARTS = "starts"


@dataclasses.dataclass
class Section:
    """What the doctor says about one cache, or about the whole instance."""

    title: str
    facts: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    problems: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    outcome: str = ""  # for a cache: WILL_NOT_START, STORES_NOTHING or STARTS

    def fact(self, label: str, text: str) -> None:
        self.facts.append((label, text))

    def problem(self, level: str, text: str) -> None:
        self.problems.append((level, text))


@dataclasses.dataclass
class Report:
    """Every section; ``exit_code`` is 1 when there is an error, else 0."""

    sections: list[Section]

    def count(self, level: str) -> int:
        return sum(
            1 for s in self.sections for found, _text in s.problems if found == level
        )

    @property
    def exit_code(self) -> int:
        return 1 if self.count(ERROR) else 0

    def render(self) -> str:
        lines: list[str] = []
        for section in self.sections:
            lines.append(section.title)
            lines += [f"  {label:<14} {text}" for label, text in section.facts]
            lines += [f"  {level.upper()}: {text}" for level, text in section.problems]
            lines.append("")
        lines.append(f"{self.count(ERROR)} error(s), {self.count(WARNING)} warning(s)")
        return "\n".join(lines) + "\n"
