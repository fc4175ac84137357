"""Statistics people want before they pay for a job, gathered in one pass.

Token counts are an estimate made without downloading a tokenizer: about four
characters per token, plus a few tokens per message for the chat template.
"""

from collections import Counter
from math import ceil

from pydantic import BaseModel

CHARS_PER_TOKEN = 4
TEMPLATE_TOKENS_PER_MESSAGE = 4
# Duplicate detection keeps one hash and one line number per distinct example up to
# this many examples (about 100 bytes each), so memory stays bounded on any file;
# later examples are still compared with the ones remembered.
DUPLICATE_TRACKING_LIMIT = 250_000


class TokenStats(BaseModel):
    estimated: bool = True
    method: str = (
        f"about {CHARS_PER_TOKEN} characters per token plus "
        f"{TEMPLATE_TOKENS_PER_MESSAGE} per message; no tokenizer was downloaded"
    )
    total: int = 0
    assistant: int = 0
    per_example_p50: int = 0
    per_example_p90: int = 0
    per_example_max: int = 0


class DatasetStats(BaseModel):
    examples: int = 0
    blank_lines: int = 0
    messages: int = 0
    messages_per_example_min: int = 0
    messages_per_example_mean: float = 0.0
    messages_per_example_max: int = 0
    role_counts: dict[str, int] = {}
    tokens: TokenStats = TokenStats()
    context_length: int = 0
    over_context_length: int = 0
    duplicates: int = 0
    # Filled when a validation file is checked against this one.
    validation_overlap: int | None = None


def text_tokens(chars: int) -> int:
    """Tokens for `chars` characters of text, rounded up (the fast path inlines this)."""
    return -(-chars // CHARS_PER_TOKEN)


def estimate_tokens(chars: int, messages: int) -> int:
    return text_tokens(chars) + TEMPLATE_TOKENS_PER_MESSAGE * messages


def _percentile(histogram: Counter[int], count: int, fraction: float) -> int:
    """Exact percentile (nearest rank) from a histogram of values."""
    if not count:
        return 0
    rank = max(1, ceil(fraction * count))
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= rank:
            return value
    return max(histogram)


class StatsAccumulator:
    """Adds up examples as they stream by; memory grows with distinct sizes, not lines."""

    def __init__(self, context_length: int) -> None:
        self.context_length = context_length
        self.examples = 0
        self.blank_lines = 0
        self.role_counts: Counter[str] = Counter()
        self.messages_hist: Counter[int] = Counter()
        self.tokens_hist: Counter[int] = Counter()
        self.total_tokens = 0
        self.assistant_tokens = 0
        self.over_context = 0
        self.first_line_of: dict[int, int] = {}
        self.duplicate_count = 0

    def add(self, roles: list[str], chars: int, assistant_chars: int) -> int:
        """Adds one example; returns its token estimate."""
        tokens = estimate_tokens(chars, len(roles))
        self.add_batch(roles, [len(roles)], [tokens], text_tokens(assistant_chars))
        return tokens

    def add_batch(
        self,
        roles: list[str],
        messages: list[int],
        tokens: list[int],
        assistant_tokens: int,
        duplicates: int = 0,
    ) -> None:
        """Adds a block of examples at once: the counting runs in C, not per example.

        `duplicates`: how many of them repeat an earlier example (the caller looked them up
        in `first_line_of` itself, inline, since that runs for every line).
        """
        self.examples += len(messages)
        self.duplicate_count += duplicates
        self.role_counts.update(roles)
        self.messages_hist.update(messages)
        self.tokens_hist.update(tokens)
        self.total_tokens += sum(tokens)
        self.assistant_tokens += assistant_tokens
        limit = self.context_length
        self.over_context += sum(1 for count in tokens if count > limit)

    def add_blank_line(self) -> None:
        self.blank_lines += 1

    def see(self, digest: int, line: int) -> int | None:
        """Records an example's hash; returns the line it repeats (a duplicate), if any."""
        first = self.first_line_of.get(digest)
        if first is not None:
            self.duplicate_count += 1
            return first
        if len(self.first_line_of) < DUPLICATE_TRACKING_LIMIT:
            self.first_line_of[digest] = line
        return None

    def merge(self, later: "StatsAccumulator") -> list[tuple[int, int]]:
        """Adds in the statistics of a later part of the same file.

        Returns (line, earlier line) for each example of that part that repeats one seen
        before it; those are counted as duplicates here, for the caller to report.
        """
        self.examples += later.examples
        self.blank_lines += later.blank_lines
        self.role_counts.update(later.role_counts)
        self.messages_hist.update(later.messages_hist)
        self.tokens_hist.update(later.tokens_hist)
        self.total_tokens += later.total_tokens
        self.assistant_tokens += later.assistant_tokens
        self.over_context += later.over_context
        self.duplicate_count += later.duplicate_count
        repeats: list[tuple[int, int]] = []
        for digest, line in later.first_line_of.items():
            first = self.see(digest, line)
            if first is not None:
                repeats.append((line, first))
        return repeats

    def result(self) -> DatasetStats:
        n = self.examples
        messages = sum(k * v for k, v in self.messages_hist.items())
        return DatasetStats(
            examples=n,
            blank_lines=self.blank_lines,
            messages=messages,
            messages_per_example_min=min(self.messages_hist, default=0),
            messages_per_example_mean=round(messages / n, 2) if n else 0.0,
            messages_per_example_max=max(self.messages_hist, default=0),
            role_counts=dict(sorted(self.role_counts.items())),
            tokens=TokenStats(
                total=self.total_tokens,
                assistant=self.assistant_tokens,
                per_example_p50=_percentile(self.tokens_hist, n, 0.5),
                per_example_p90=_percentile(self.tokens_hist, n, 0.9),
                per_example_max=max(self.tokens_hist, default=0),
            ),
            context_length=self.context_length,
            over_context_length=self.over_context,
            duplicates=self.duplicate_count,
        )
