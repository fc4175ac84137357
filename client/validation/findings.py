"""Findings (errors and warnings) and the capped log that keeps them.

A file with a million bad lines must not hold a million findings: the log keeps the
first few of each code and counts the rest.
"""

from pydantic import BaseModel

EXAMPLES_PER_CODE = 5


class Finding(BaseModel):
    code: str
    message: str
    line: int | None = None
    field: str | None = None


class FindingLog:
    """Keeps up to `per_code` findings of each code, and the count of all of them."""

    def __init__(self, per_code: int = EXAMPLES_PER_CODE) -> None:
        self.per_code = per_code
        self.kept: list[Finding] = []
        self.counts: dict[str, int] = {}

    def add(
        self, code: str, message: str, line: int | None = None, field: str | None = None
    ) -> None:
        seen = self.counts.get(code, 0)
        self.counts[code] = seen + 1
        if seen < self.per_code:
            self.kept.append(Finding(code=code, message=message, line=line, field=field))

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def __bool__(self) -> bool:
        return bool(self.counts)

    def merge(self, other: "FindingLog") -> None:
        """Adds another log's findings after this one's (a later part of the same file)."""
        for finding in other.kept:
            if sum(1 for kept in self.kept if kept.code == finding.code) < self.per_code:
                self.kept.append(finding)
        for code, count in other.counts.items():
            self.counts[code] = self.counts.get(code, 0) + count
