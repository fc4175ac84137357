"""Choosing a checkpoint: by id, by step, or the best one (lowest validation loss; the last
when there is none), whatever order Nebius lists them in."""

from __future__ import annotations

import pytest

from client.checkpoints import CheckpointNotFound, best_checkpoint, choose_checkpoint
from client.models import Checkpoint


def checkpoint(cid: str, step: int, **metrics: object) -> Checkpoint:
    return Checkpoint.model_validate({"id": cid, "step_number": step, "metrics": metrics})


# Newest first, as Nebius may list them; the lowest validation loss is not at the end.
THREE = [
    checkpoint("c3", 60, train_loss=0.7, valid_loss=1.40),
    checkpoint("c1", 20, train_loss=1.5, valid_loss=1.45),
    checkpoint("c2", 40, train_loss=1.0, valid_loss=1.318),
]


def test_the_default_is_the_lowest_validation_loss_and_says_so() -> None:
    chosen = choose_checkpoint(THREE)
    assert (chosen.id, chosen.step, chosen.chosen_by) == ("c2", 40, "valid_loss")
    assert chosen.describe().startswith("best checkpoint: step 40, valid loss 1.318")


def test_without_validation_loss_the_last_one_is_taken_and_that_is_said() -> None:
    chosen = choose_checkpoint([checkpoint("b", 20, train_loss=1.0), checkpoint("a", 10)])
    assert (chosen.id, chosen.chosen_by) == ("b", "last")
    assert "last checkpoint: step 20" in chosen.describe()
    assert "no validation loss" in chosen.describe()


def test_nebius_s_null_metrics_and_the_full_validation_loss() -> None:
    nulls = [checkpoint("a", 10, valid_loss=None, full_valid_loss=0.9), checkpoint("b", 20)]
    assert choose_checkpoint(nulls).id == "a"
    ties = [checkpoint("late", 20, valid_loss=1.0), checkpoint("early", 10, valid_loss=1.0)]
    assert choose_checkpoint(ties).id == "early"  # the earliest of equals


def test_a_checkpoint_by_id_or_by_step() -> None:
    assert choose_checkpoint(THREE, "c3").chosen_by == "id"
    by_step = choose_checkpoint(THREE, "20")
    assert (by_step.id, by_step.chosen_by) == ("c1", "step")
    assert by_step.describe() == "checkpoint c1: step 20, valid loss 1.45"
    assert choose_checkpoint(THREE, " ").id == "c2"  # blank: the default


def test_an_unknown_checkpoint_lists_the_ones_there_are() -> None:
    with pytest.raises(CheckpointNotFound) as caught:
        choose_checkpoint(THREE, "c9")
    assert str(caught.value) == (
        "no checkpoint 'c9'; this job has: c1 (step 20), c2 (step 40), c3 (step 60)"
    )
    with pytest.raises(CheckpointNotFound, match="no checkpoints yet"):
        choose_checkpoint([])
    assert best_checkpoint([]) is None
