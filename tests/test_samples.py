"""The sample datasets shipped in samples/ are valid and tell different examples apart."""

from pathlib import Path

from client.validation import validate_file


def test_the_samples_are_valid_and_do_not_overlap(samples_dir: Path) -> None:
    report = validate_file(
        samples_dir / "sample_training_data.jsonl",
        validation_file=samples_dir / "sample_validation_data.jsonl",
    )
    assert report.valid, report.errors
    assert report.format == "chat"
    assert report.stats.examples == 10
    assert report.validation is not None and report.validation.stats.examples == 5
    assert report.stats.validation_overlap == 0
    assert report.stats.duplicates == 0


def test_each_sample_answer_is_the_enhancer_json(samples_dir: Path) -> None:
    import json

    for name in ("sample_training_data.jsonl", "sample_validation_data.jsonl"):
        for line in (samples_dir / name).read_text(encoding="utf-8").splitlines():
            messages = json.loads(line)["messages"]
            assert [m["role"] for m in messages] == ["system", "user", "assistant"]
            answer = json.loads(messages[-1]["content"])
            assert set(answer) == {"enhanced_prompt", "negative_prompt", "explanation"}
            assert len(answer["enhanced_prompt"]) > 3 * len(messages[1]["content"])
