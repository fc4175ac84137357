"""Response objects accept unknown fields and missing optional ones."""

from client import Checkpoint, FileObject, Job, clean_filename


def test_job_accepts_unknown_and_missing_fields() -> None:
    job = Job.model_validate({"id": "ftjob-1", "status": "running", "organization_id": "org"})
    assert job.model is None and job.result_files == []
    assert job.model_extra == {"organization_id": "org"}
    assert not job.is_terminal


def test_terminal_statuses() -> None:
    for status in ("succeeded", "failed", "cancelled"):
        assert Job(id="j", status=status).is_terminal
    for status in ("validating_files", "queued", "running"):
        assert not Job(id="j", status=status).is_terminal


def test_job_progress_from_steps() -> None:
    assert Job(id="j", trained_steps=25, total_steps=100).progress == 0.25
    assert Job(id="j").progress is None


def test_job_error_object() -> None:
    job = Job.model_validate(
        {"id": "j", "status": "failed", "error": {"code": "bad", "message": "oops", "param": None}}
    )
    assert job.error is not None and job.error.message == "oops"


def test_file_status_readiness() -> None:
    assert FileObject(id="f", status="processed").is_ready
    assert FileObject(id="f").is_ready  # no status given: usable
    assert not FileObject(id="f", status="uploaded").is_ready
    assert FileObject(id="f", status="error").is_failed


def test_clean_filename_strips_path_prefix_and_never_traverses() -> None:
    assert clean_filename("checkpoints/step-10/adapter_model.safetensors") == (
        "adapter_model.safetensors"
    )
    assert clean_filename("a\\b\\c.bin") == "c.bin"
    assert clean_filename("../../etc/passwd") == "passwd"
    assert clean_filename("..", fallback="file-1") == "file-1"
    assert clean_filename(None, fallback="file-1") == "file-1"
    assert FileObject(id="file-9", filename="out/x/model.gguf").clean_filename == "model.gguf"


def test_checkpoint_defaults() -> None:
    cp = Checkpoint.model_validate({"id": "cp", "step_number": 3, "extra": 1})
    assert cp.metrics == {} and cp.result_files == []


def test_hyperparameters_come_from_method_when_the_top_level_is_null() -> None:
    nested = {"n_epochs": 5, "lora": True}
    supervised = {"type": "supervised", "supervised": {"hyperparameters": nested}}
    assert Job(id="j", hyperparameters=None, method=supervised).effective_hyperparameters == nested
    # The top level wins when both are there.
    both = Job(id="j", hyperparameters={"n_epochs": 2}, method=supervised)
    assert both.effective_hyperparameters == {"n_epochs": 2}
    draft = {"type": "spec-draft", "spec_draft": {"hyperparameters": {"num_decoding_heads": 3}}}
    assert Job(id="j", method=draft).effective_hyperparameters == {"num_decoding_heads": 3}


def test_missing_or_odd_method_gives_no_hyperparameters() -> None:
    assert Job(id="j").effective_hyperparameters == {}
    assert Job(id="j", method={"type": "supervised"}).effective_hyperparameters == {}
    assert Job(id="j", method={"type": 3}).effective_hyperparameters == {}
    odd = {"type": "supervised", "supervised": {"hyperparameters": "n/a"}}
    assert Job(id="j", method=odd).effective_hyperparameters == {}


def test_a_nebius_job_has_no_fine_tuned_model_and_keeps_tags() -> None:
    job = Job.model_validate(
        {"id": "ftjob-49b4625687fe42d1a981c9f9bbdfd569", "status": "running", "tags": ["a"]}
    )
    assert job.fine_tuned_model is None and job.tags == ["a"]
