"""The validation report: what `--json` prints and what the bot and engine read."""

from typing import Any, Literal

from pydantic import BaseModel

from client.validation.findings import Finding
from client.validation.formats import format_name
from client.validation.stats import CHARS_PER_TOKEN, DatasetStats


class ValidationReport(BaseModel):
    file: str
    filename: str
    role: Literal["training", "validation"] = "training"
    size_bytes: int = 0
    format: str | None = None
    # Errors and warnings hold the first few of each code; the counts hold all.
    errors: list[Finding] = []
    error_counts: dict[str, int] = {}
    warnings: list[Finding] = []
    warning_counts: dict[str, int] = {}
    stats: DatasetStats = DatasetStats()
    validation: "ValidationReport | None" = None

    @property
    def valid(self) -> bool:
        """No errors here, nor in the validation file checked with it."""
        return not self.error_counts and (self.validation is None or self.validation.valid)

    @property
    def error_total(self) -> int:
        return sum(self.error_counts.values())

    def to_dict(self) -> dict[str, Any]:
        data = self.model_dump(mode="json", exclude={"validation"})
        data["valid"] = self.valid
        data["validation"] = self.validation.to_dict() if self.validation else None
        return data


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}" if count == 1 else f"{count:,} {word}s"


def _finding_lines(findings: list[Finding], counts: dict[str, int]) -> list[str]:
    out: list[str] = []
    for code, count in counts.items():
        out.append(f"    {code} ({count:,})")
        shown = [f for f in findings if f.code == code]
        for finding in shown:
            where = []
            if finding.line is not None:
                where.append(f"line {finding.line}")
            if finding.field:
                where.append(finding.field)
            prefix = f"{', '.join(where)}: " if where else ""
            out.append(f"      {prefix}{finding.message}")
        if count > len(shown):
            out.append(f"      ... and {count - len(shown):,} more")
    return out


def render_report(report: ValidationReport) -> str:
    """The readable report, one block per file (the validation file's follows)."""
    stats = report.stats
    fmt = format_name(report.format, with_key=True)
    own_valid = not report.error_counts
    verdict = "valid" if own_valid else f"INVALID ({_plural(report.error_total, 'error')})"
    lines = [f"{report.file} [{report.role}]: {verdict}, format {fmt}"]
    if stats.examples:
        roles = ", ".join(f"{role} {count:,}" for role, count in stats.role_counts.items())
        tokens = stats.tokens
        lines += [
            f"  {_plural(stats.examples, 'example')}, {_plural(stats.messages, 'message')} "
            f"(per example: min {stats.messages_per_example_min}, "
            f"mean {stats.messages_per_example_mean}, max {stats.messages_per_example_max})",
            f"  roles: {roles}",
            f"  tokens (estimate, ~{CHARS_PER_TOKEN} characters per token): "
            f"{tokens.total:,} total, {tokens.assistant:,} in assistant replies; per example "
            f"p50 {tokens.per_example_p50:,}, p90 {tokens.per_example_p90:,}, "
            f"max {tokens.per_example_max:,}",
            f"  over the context length ({stats.context_length:,} tokens): "
            f"{stats.over_context_length:,}; duplicates: {stats.duplicates:,}",
        ]
        if stats.validation_overlap is not None:
            lines.append(
                f"  examples shared by training and validation: {stats.validation_overlap:,}"
            )
    if report.error_counts:
        lines.append(f"  errors: {_plural(report.error_total, 'error')}")
        lines += _finding_lines(report.errors, report.error_counts)
    if report.warning_counts:
        lines.append("  warnings:")
        lines += _finding_lines(report.warnings, report.warning_counts)
    text = "\n".join(lines)
    if report.validation is not None:
        text += "\n" + render_report(report.validation)
    return text
