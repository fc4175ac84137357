"""What a comparison gives back: a row per example, a summary per model.

Pydantic models, so that the CLI's `--json` and the bot can keep or send them as they are.
"""

from __future__ import annotations

from statistics import fmean

from pydantic import BaseModel, Field

from client.compare.scoring import corpus_chrf, sentence_chrf
from client.compare.shape import Shape, ShapeKind


class CompareModel(BaseModel):
    """One side of the comparison: a short label for tables and the model id sent."""

    label: str
    model: str


class Answer(BaseModel):
    text: str = ""
    # A failed completion counts as an empty answer; this says why it is empty.
    error: str | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    seconds: float = 0.0
    chrf: float = 0.0
    # None when the shape is not scored.
    has_shape: bool | None = None
    # The answer has the shape once a ``` fence around it is removed (see client.compare.shape).
    fenced: bool = False


class ExampleRow(BaseModel):
    line: int
    question: str
    reference: str
    # label -> answer; a label is missing when the run was cancelled before that answer.
    answers: dict[str, Answer] = Field(default_factory=dict)


class ModelSummary(BaseModel):
    label: str
    model: str
    answered: int  # answers summarised (errors included, as empty answers)
    errors: int
    shape_count: int | None = None
    shape_share: float | None = None  # 0–1; None when the shape is not scored
    fenced_count: int | None = None
    chrf: float | None = None  # corpus chrF, 0–100
    chrf_mean: float | None = None  # mean of the sentence chrF scores
    mean_chars: float | None = None
    # From the API's usage, over the answers that carried it; None when none did.
    mean_tokens: float | None = None


class ShapeInfo(BaseModel):
    kind: ShapeKind
    keys: list[str] = Field(default_factory=list)
    description: str

    @classmethod
    def of(cls, shape: Shape) -> ShapeInfo:
        return cls(kind=shape.kind, keys=list(shape.keys), description=shape.describe())


class CompareResult(BaseModel):
    source: str  # the file's name, for headings
    models: list[CompareModel]
    shape: ShapeInfo
    rows: list[ExampleRow]
    summaries: list[ModelSummary]
    total: int  # examples asked for
    completed: int  # examples every model answered: what the summaries cover
    cancelled: bool = False
    seconds: float = 0.0
    reference_mean_chars: float | None = None

    @property
    def partial(self) -> bool:
        return self.completed < self.total


def score_answer(answer: Answer, reference: str, shape: Shape) -> Answer:
    """The answer with its chrF and shape filled in."""
    return answer.model_copy(
        update={
            "chrf": sentence_chrf(answer.text, reference),
            "has_shape": shape.matches(answer.text) if shape.scored else None,
            "fenced": shape.scored and shape.matches_fenced(answer.text),
        }
    )


def summarize(
    rows: list[ExampleRow], models: list[CompareModel], shape: Shape
) -> tuple[list[ModelSummary], int]:
    """One summary per model over the examples that every model answered (so that a
    cancelled run still compares like with like), and how many those are."""
    complete = [row for row in rows if all(m.label in row.answers for m in models)]
    summaries = []
    for model in models:
        answers = [row.answers[model.label] for row in complete]
        tokens = [a.completion_tokens for a in answers if a.completion_tokens is not None]
        shaped = sum(1 for a in answers if a.has_shape) if shape.scored else None
        summaries.append(
            ModelSummary(
                label=model.label,
                model=model.model,
                answered=len(answers),
                errors=sum(1 for a in answers if a.error),
                shape_count=shaped,
                shape_share=shaped / len(answers) if shaped is not None and answers else None,
                fenced_count=sum(1 for a in answers if a.fenced) if shape.scored else None,
                chrf=corpus_chrf([a.text for a in answers], [row.reference for row in complete]),
                chrf_mean=fmean(a.chrf for a in answers) if answers else None,
                mean_chars=fmean(len(a.text) for a in answers) if answers else None,
                mean_tokens=fmean(tokens) if tokens else None,
            )
        )
    return summaries, len(complete)
