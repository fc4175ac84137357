"""Dataset validation for fine-tuning files (JSONL): checks, statistics, reports.

Pure and Slack-free: the `validate-jsonl` tool, the bot and the local engine all
call `validate_file`.
"""

from client.validation.findings import Finding
from client.validation.formats import format_name
from client.validation.report import ValidationReport, render_report
from client.validation.stats import DatasetStats
from client.validation.validator import (
    DEFAULT_CONTEXT_LENGTH,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_LINE_BYTES,
    DatasetUnreadable,
    as_validation_file,
    validate_file,
)

__all__ = [
    "DEFAULT_CONTEXT_LENGTH",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_LINE_BYTES",
    "DatasetStats",
    "DatasetUnreadable",
    "Finding",
    "ValidationReport",
    "as_validation_file",
    "format_name",
    "render_report",
    "validate_file",
]
