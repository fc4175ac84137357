"""Statistics and best-practice warnings: what people want before they pay for a job."""

import json
from pathlib import Path

from client.validation import ValidationReport, as_validation_file, render_report, validate_file

from .helpers import chat, many, write_lines


def test_counts_roles_messages_and_estimates_tokens(tmp_path: Path) -> None:
    rows = [
        {
            "messages": [
                {"role": "user", "content": "u" * 40},
                {"role": "assistant", "content": "a" * 80},
            ]
        },
        chat("u" * 8, "a" * 4),
    ]
    stats = validate_file(write_lines(tmp_path / "s.jsonl", rows)).stats
    assert stats.examples == 2
    assert stats.messages == 5
    assert (stats.messages_per_example_min, stats.messages_per_example_max) == (2, 3)
    assert stats.role_counts == {"assistant": 2, "system": 1, "user": 2}
    # ~4 characters per token, plus 4 per message for the chat template.
    first = 120 // 4 + 2 * 4
    second = (len("Enhance image prompts.") + 8 + 4 + 3) // 4 + 3 * 4
    assert stats.tokens.total == first + second
    assert stats.tokens.assistant == 80 // 4 + 1
    assert stats.tokens.per_example_max == max(first, second)
    assert stats.tokens.estimated is True


def test_percentiles_are_exact(tmp_path: Path) -> None:
    rows = [{"text": "x" * (4 * n)} for n in range(1, 101)]  # n tokens + 4 for the message
    tokens = validate_file(write_lines(tmp_path / "p.jsonl", rows)).stats.tokens
    assert (tokens.per_example_p50, tokens.per_example_p90, tokens.per_example_max) == (54, 94, 104)


def test_examples_over_the_context_length_are_counted_and_warned(tmp_path: Path) -> None:
    rows = [chat(answer="word " * 200), chat("short", "short")]
    report = validate_file(write_lines(tmp_path / "c.jsonl", rows), context_length=100)
    assert report.stats.over_context_length == 1
    assert report.warning_counts["too_long"] == 1
    assert report.warnings[[w.code for w in report.warnings].index("too_long")].line == 1
    assert report.valid


def test_duplicates_are_counted_and_point_to_the_first_copy(tmp_path: Path) -> None:
    rows = [chat("a"), chat("b"), chat("a"), chat("a")]
    report = validate_file(write_lines(tmp_path / "d.jsonl", rows))
    assert report.stats.duplicates == 2
    duplicates = [w for w in report.warnings if w.code == "duplicate"]
    assert [(w.line, w.message) for w in duplicates] == [
        (3, "repeats the example on line 1"),
        (4, "repeats the example on line 1"),
    ]
    assert report.valid


def test_few_examples_and_no_validation_file_are_warned(tmp_path: Path) -> None:
    report = validate_file(write_lines(tmp_path / "few.jsonl", many(10)))
    assert set(report.warning_counts) == {"few_examples", "no_validation_file"}
    assert report.valid


def test_fifty_examples_with_a_validation_file_have_no_warnings(tmp_path: Path) -> None:
    train = write_lines(tmp_path / "train.jsonl", many(50))
    val = write_lines(tmp_path / "val.jsonl", [chat("held out", "answer")])
    report = validate_file(train, validation_file=val)
    assert report.warning_counts == {}
    assert report.validation is not None and report.validation.warning_counts == {}


def test_overlap_between_training_and_validation(tmp_path: Path) -> None:
    train = write_lines(tmp_path / "train.jsonl", many(5))
    val = write_lines(tmp_path / "val.jsonl", [many(5)[3], chat("new", "new")])
    report = validate_file(train, validation_file=val)
    assert report.stats.validation_overlap == 1
    assert report.validation is not None
    overlap = [w for w in report.validation.warnings if w.code == "validation_overlap"]
    assert [(w.line, w.message) for w in overlap] == [(1, "also in the training file (line 4)")]


def test_an_invalid_validation_file_makes_the_pair_invalid(tmp_path: Path) -> None:
    train = write_lines(tmp_path / "train.jsonl", many(5))
    val = write_lines(tmp_path / "val.jsonl", ["{oops"])
    report = validate_file(train, validation_file=val)
    assert not report.error_counts
    assert not report.valid


def test_errors_are_capped_in_memory_but_all_counted(tmp_path: Path) -> None:
    report = validate_file(write_lines(tmp_path / "bad.jsonl", [chat()] + ["nope"] * 1000))
    assert report.error_counts == {"invalid_json": 1000}
    assert len(report.errors) == 5
    assert [f.line for f in report.errors] == [2, 3, 4, 5, 6]


def test_the_report_round_trips_as_json(tmp_path: Path) -> None:
    report = validate_file(write_lines(tmp_path / "r.jsonl", [chat(), "oops"]))
    data = json.loads(json.dumps(report.to_dict()))
    assert data["valid"] is False
    assert data["format"] == "chat"
    assert data["error_counts"] == {"invalid_json": 1}
    assert data["errors"][0]["line"] == 2
    assert ValidationReport.model_validate(data).error_counts == {"invalid_json": 1}


def test_the_readable_report_groups_errors_with_lines_and_counts(tmp_path: Path) -> None:
    rows = [chat()] + ["nope"] * 8 + [{"messages": [{"role": "bot", "content": "x"}]}]
    text = render_report(validate_file(write_lines(tmp_path / "r.jsonl", rows)))
    assert "INVALID" in text
    assert "invalid_json (8)" in text
    assert "line 2: invalid JSON" in text
    assert "... and 3 more" in text
    assert "line 10, messages[0].role: role 'bot'" in text
    assert "estimate" in text
    assert "Traceback" not in text


def test_a_training_report_turned_into_a_validation_report_equals_checking_it_as_one(
    samples_dir: Path,
) -> None:
    # The sample has 10 examples and comes alone: as training data it gets both warnings.
    path = samples_dir / "sample_training_data.jsonl"
    as_training = validate_file(path)
    assert {"few_examples", "no_validation_file"} <= as_training.warning_counts.keys()

    derived = as_validation_file(as_training)

    assert derived == validate_file(path, role="validation")
    assert derived.role == "validation" and derived.valid


def test_the_fast_and_the_careful_path_estimate_tokens_alike(tmp_path: Path) -> None:
    plain = {
        "messages": [
            {"role": "user", "content": "u" * 5},
            {"role": "assistant", "content": "a" * 9},
        ]
    }
    # Content parts are valid but the fast path leaves them to the careful checks.
    parts = {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "u" * 5}]},
            {"role": "assistant", "content": [{"type": "text", "text": "a" * 9}]},
        ]
    }
    fast = validate_file(write_lines(tmp_path / "fast.jsonl", [plain])).stats.tokens
    careful = validate_file(write_lines(tmp_path / "careful.jsonl", [parts])).stats.tokens
    # 14 characters: 4 tokens, rounded up, plus 4 per message; 9 assistant characters: 3.
    assert (fast.total, fast.assistant) == (careful.total, careful.assistant) == (4 + 8, 3)
