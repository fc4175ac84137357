"""Two bot processes watch on one PostgreSQL database: when one dies, the other resumes its
watches from the database once its lease and the grace after it have passed, and every event
reaches the thread once, in order."""

from __future__ import annotations

from bot.core.watcher import Watcher
from tests.bot.fake_clock import FakeClock
from tests.bot.fake_slack import FakeSlack
from tests.bot.store.conftest import LEASE_S, TwoProcesses
from tests.bot.watching import FakeJobs, event_replies


async def test_a_dead_process_s_watch_is_resumed_by_another_with_nothing_twice(
    two_processes: TwoProcesses,
    world: dict,
    fake_slack: FakeSlack,
    clock: FakeClock,
    nebius_jobs: FakeJobs,
) -> None:
    dying, other, ts = two_processes
    first = Watcher(dying, world["chat"], world["nebius"], clock=clock)
    second = Watcher(other, world["chat"], world["nebius"], clock=clock)

    await first.poll_due()
    await second.poll_due()  # not its watch: it polls nothing
    assert second.polls == 0
    await dying.disconnect()  # kill -9: no goodbye, the lease runs on

    nebius_jobs.emit("job-1", "step 2", "step 3")
    clock.advance(LEASE_S / 2)
    await second.poll_due()
    assert second.polls == 0  # the dead one's lease still runs
    clock.advance(LEASE_S / 2 + 1)
    await second.poll_due()
    assert second.polls == 0  # lapsed, but a post it sent may still be on its way: a grace
    clock.advance(other.takeover_grace_s)
    await second.poll_due()

    assert second.polls == 1
    replies = event_replies(fake_slack, ts)
    assert len(replies) == 2
    assert "step 1" in replies[0] and "step 2" not in replies[0]
    assert replies[1].index("step 2") < replies[1].index("step 3")
    assert "started" not in replies[1]
    assert (await other.watch("job-1")).owner == other.session
