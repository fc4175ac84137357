"""Deployments in the store: one per checkpoint however often it is clicked, again only after
an error or a delete, and the unsettled ones of a process gone followed on by another; in
SQLite and in PostgreSQL alike."""

from __future__ import annotations

from bot.store import Store
from tests.bot.store.conftest import OpenStore

FULL_NAME = "meta-llama/Meta-Llama-3.1-8B-Instruct-LoRa:ft-1-step20-AbCd"


async def claim(store: Store, checkpoint: str = "cp-2", user: str = "U1") -> object:
    return await store.claim_deployment(
        "ftjob-1", checkpoint, channel="C1", thread_ts="1.1", user_id=user, step=20
    )


async def test_a_checkpoint_is_claimed_for_deploying_once(store: Store) -> None:
    assert await claim(store) is None
    # A double click, a redelivery, another process: the deployment that stands.
    standing = await claim(store, user="U2")
    assert standing is not None
    assert (standing.state, standing.user_id, standing.step) == ("deploying", "U1", 20)
    # Another checkpoint of the same job is a deployment of its own.
    assert await claim(store, "cp-1") is None


async def test_the_answered_full_name_is_kept_and_found(store: Store) -> None:
    await claim(store)
    await store.update_deployment(
        "ftjob-1",
        "cp-2",
        name=FULL_NAME,
        requested_name="ft-1-step20",
        base_model="meta-llama/Meta-Llama-3.1-8B-Instruct",
        state="validating",
        progress_ts="1.5",
    )
    await store.update_deployment("ftjob-1", "cp-2", system_prompt="You enhance prompts.")
    found = await store.deployment_named(FULL_NAME)
    assert found is not None
    assert (found.job_id, found.checkpoint_id, found.source) == ("ftjob-1", "cp-2", "ftjob-1:cp-2")
    assert (found.state, found.progress_ts, found.requested_name) == (
        "validating",
        "1.5",
        "ft-1-step20",
    )
    assert found.system_prompt == "You enhance prompts."
    assert [d.name for d in await store.job_deployments("ftjob-1")] == [FULL_NAME]
    assert await store.deployment_named("nothing-LoRa:x") is None


async def test_an_error_or_a_delete_lets_it_be_deployed_again(store: Store) -> None:
    await claim(store)
    await store.update_deployment("ftjob-1", "cp-2", name=FULL_NAME, state="active")
    assert await claim(store) is not None  # active: it stands
    await store.update_deployment("ftjob-1", "cp-2", state="error", reason="bad base model")
    assert await claim(store, user="U3") is None
    again = await store.deployment("ftjob-1", "cp-2")
    assert again is not None
    # A fresh start: nothing of the failed one is left to mislead.
    assert (again.state, again.name, again.reason, again.user_id) == ("deploying", None, None, "U3")
    await store.update_deployment("ftjob-1", "cp-2", name=FULL_NAME, state="deleted")
    assert await store.deployments() == []
    assert len(await store.deployments(include_deleted=True)) == 1
    assert await claim(store) is None


async def test_unsettled_deployments_of_a_process_gone_are_taken_once(
    open_store: OpenStore,
) -> None:
    first = await open_store()
    await claim(first)
    await claim(first, "cp-1")
    await first.update_deployment("ftjob-1", "cp-1", name=FULL_NAME, state="active")
    # The live process's own are not taken from it.
    assert await first.unfinished_deployments() == []
    await first.close()

    second = await open_store()
    (taken,) = await second.unfinished_deployments()
    assert (taken.checkpoint_id, taken.state) == ("cp-2", "deploying")
    assert await second.unfinished_deployments() == []  # it holds them now


async def test_a_jobs_training_file_leads_back_to_its_upload_report(store: Store) -> None:
    await store.claim_upload("F1", "C1", "1.1", "train.jsonl", "U1")
    report = {"role": "training", "stats": {"tokens": {"total": 1234}}}
    await store.finish_upload("F1", sha256="abc", valid=True, fmt="chat", report=report)
    await store.remember_nebius_file("abc", "file-9", "train.jsonl", 10)
    upload = await store.upload_of_nebius_file("file-9")
    assert upload is not None and upload.slack_file_id == "F1" and upload.report == report
    assert await store.upload_of_nebius_file("file-other") is None
