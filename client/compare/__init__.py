"""Compare a base model and a fine-tuned one on a chat JSONL file's prompts.

Each prompt goes through both models (greedy, a bounded token limit, a few requests at a
time); each answer is scored against the file's reference answer: whether it has the
references' shape (JSON with their keys, when they are JSON), its chrF, and its length. Slack-free:
`finetune compare` and the bot's Compare both call `run_compare` and the renderers.
"""

from client.compare.examples import CompareDataError, CompareExample, read_examples
from client.compare.render import (
    BLOCK_MAX_CHARS,
    render_example,
    render_examples,
    render_side_by_side,
    render_table,
)
from client.compare.results import (
    Answer,
    CompareModel,
    CompareResult,
    ExampleRow,
    ModelSummary,
    ShapeInfo,
)
from client.compare.runner import (
    DEFAULT_CONCURRENCY,
    CompareModelError,
    CompareOptions,
    ProgressCallback,
    run_compare,
)
from client.compare.scoring import corpus_chrf, sentence_chrf
from client.compare.shape import Shape, reference_shape
from client.compare.targets import BASE_LABEL, TUNED_LABEL, TargetError, Targets, find_targets

__all__ = [
    "BASE_LABEL",
    "BLOCK_MAX_CHARS",
    "DEFAULT_CONCURRENCY",
    "TUNED_LABEL",
    "Answer",
    "CompareDataError",
    "CompareExample",
    "CompareModel",
    "CompareModelError",
    "CompareOptions",
    "CompareResult",
    "ExampleRow",
    "ModelSummary",
    "ProgressCallback",
    "Shape",
    "ShapeInfo",
    "TargetError",
    "Targets",
    "corpus_chrf",
    "find_targets",
    "read_examples",
    "reference_shape",
    "render_example",
    "render_examples",
    "render_side_by_side",
    "render_table",
    "run_compare",
    "sentence_chrf",
]
