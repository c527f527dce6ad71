"""SIGKILL the CLI at each dangerous point, rerun it, and find every item exactly once.

The CLI runs as a real process against a sandbox in its own process (which survives the kill, as
Webflow would). ``FLOWPORT_CRASH_AT`` makes the CLI kill itself at a named point on its n-th
visit; the random cases kill it from outside after a seeded delay, several times in a row.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.crash.harness import (
    EXIT_ABORTED,
    EXIT_FAILED_ITEMS,
    EXIT_OK,
    KILLED,
    SandboxProcess,
    kill_after,
    make_dataset,
    open_log,
    run_flowport,
    run_until_done,
    sandbox_process,
    summary_of,
    verify_end_state,
    write_job,
)
from tests.state_backends import StateBackend

AUTHORS = 60
POSTS = 540  # 600 items: 7 create batches of up to 100, and as many publish requests when staged


@dataclass(frozen=True)
class KillCase:
    point: str
    count: int
    mode: str = "live"
    slow: bool = False
    bad_share: float = 0.0

    @property
    def crash_at(self) -> str:
        # In flight: the kill lands 0.2 s after the request left, inside a 0.5 s answer.
        return (
            f"{self.point}:{self.count}:0.2"
            if self.point == "in-flight"
            else (f"{self.point}:{self.count}")
        )

    def __str__(self) -> str:
        bad = "-with-bad-rows" if self.bad_share else ""
        return f"{self.point}:{self.count}-{self.mode}{bad}"


CASES = [
    *(KillCase("before-send", n) for n in (1, 2, 5)),
    *(KillCase("in-flight", n, slow=True) for n in (1, 2, 5)),
    *(KillCase("after-answer", n) for n in (1, 2, 5)),
    KillCase("after-answer", 3, mode="staged"),
    KillCase("after-answer", 4, bad_share=0.05),
    *(KillCase("before-publish", n, mode="staged") for n in (1, 2, 5)),
    *(KillCase("after-publish", n, mode="staged") for n in (1, 2, 5)),
]


#: On PostgreSQL, one kill for each state a kill can leave in the log: an intent with no answer
#: (before-send; in-flight leaves the same), an intent whose creates landed (after-answer, with
#: and without bad rows), items published but logged staged (after-publish; before-publish
#: leaves staged items too). The engine's code is the same on both backends; what differs is
#: the log's statements. About 10 s a case.
POSTGRES_CASES = [
    KillCase("before-send", 2),
    KillCase("after-answer", 5),
    KillCase("after-answer", 4, bad_share=0.05),
    KillCase("after-publish", 5, mode="staged"),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_a_kill_at_a_named_point_costs_nothing(tmp_path: Path, case: KillCase) -> None:
    _kill_at_a_point_and_resume(tmp_path, case, state=None)


@pytest.mark.postgres
@pytest.mark.parametrize("case", POSTGRES_CASES, ids=str)
def test_a_kill_at_a_named_point_costs_nothing_with_state_in_postgres(
    tmp_path: Path, case: KillCase, postgres_state: StateBackend
) -> None:
    _kill_at_a_point_and_resume(tmp_path, case, state=postgres_state)


def _kill_at_a_point_and_resume(
    tmp_path: Path, case: KillCase, *, state: StateBackend | None
) -> None:
    slow_rate = 1.0 if case.slow else 0.0
    with sandbox_process(seed=case.count, slow_rate=slow_rate, slow_seconds=0.3) as sandbox:
        data = make_dataset(
            tmp_path, authors=AUTHORS, posts=POSTS, bad_share=case.bad_share, seed=case.count
        )
        job = write_job(tmp_path, sandbox, mode=case.mode, state=state)

        crashed = run_flowport(job, crash_at=case.crash_at, timeout=120)
        assert crashed.returncode == KILLED, (
            f"the run was not killed at {case.crash_at}: exit {crashed.returncode}, "
            f"{summary_of(crashed)}"
        )
        _assert_killed_where_it_hurts(case, sandbox, job)
        if case.slow:
            sandbox.set_faults()  # the rerun needs no slow answers; the kill already landed

        expected = EXIT_FAILED_ITEMS if data.bad["authors"] or data.bad["posts"] else EXIT_OK
        reruns = run_until_done(job, expected_exit=expected)
        assert len(reruns) == 1, f"{len(reruns)} reruns were needed after {case.crash_at}"
        verify_end_state(sandbox, job, data, mode=case.mode)

        if case.count != 5 and not case.bad_share:
            return
        # A run after the finished one has nothing left to do and writes nothing.
        writes = sandbox.stats()["totals"]["writes"]
        again = run_flowport(job, timeout=120)
        assert again.returncode == expected, summary_of(again)
        assert sandbox.stats()["totals"]["writes"] == writes
        verify_end_state(sandbox, job, data, mode=case.mode)


def _assert_killed_where_it_hurts(case: KillCase, sandbox: SandboxProcess, job: Path) -> None:
    """The kill left the state it is meant to test, so the rerun has something to repair."""
    log = open_log(job)
    try:
        counts = log.counts()
    finally:
        log.close()
    states = {
        state: sum(c.get(state, 0) for c in counts.values())
        for state in ("sending", "staged", "done")
    }
    collections = sandbox.state()["collections"]
    in_sandbox = sum(len(c["items"]) for c in collections)
    live = sum(len(c["liveItems"]) for c in collections)
    acknowledged = states["done"] + states["staged"]
    if case.point in ("before-send", "in-flight"):
        assert states["sending"] > 0, states  # intent recorded, no answer recorded
    elif case.point == "after-answer":
        # Created in Webflow, still only an intent in the log: the costly case.
        assert states["sending"] > 0, states
        assert in_sandbox > acknowledged, (states, in_sandbox)
    elif case.point == "before-publish":
        assert states["staged"] > 0, states
    elif case.point == "after-publish":
        # Published in Webflow, still 'staged' in the log.
        assert states["staged"] > 0, states
        assert live > states["done"], (states, live)


@pytest.mark.parametrize("seed", [11, 12])
def test_kills_from_outside_at_random_moments(tmp_path: Path, seed: int) -> None:
    _kill_at_random_and_resume(tmp_path, seed, state=None)


@pytest.mark.postgres
def test_kills_from_outside_at_random_moments_with_state_in_postgres(
    tmp_path: Path, postgres_state: StateBackend
) -> None:
    _kill_at_random_and_resume(tmp_path, 11, state=postgres_state)


def _kill_at_random_and_resume(tmp_path: Path, seed: int, *, state: StateBackend | None) -> None:
    rng = random.Random(seed)
    # Some slow answers stretch the run so the kills land in the middle of it (0.4 s since a
    # first run's schema setup takes two requests instead of a dozen: at 0.2 s seed 11's first
    # run ended before its kill at 1.77 s).
    with sandbox_process(seed=seed, slow_rate=0.3, slow_seconds=0.4) as sandbox:
        data = make_dataset(tmp_path, authors=AUTHORS, posts=POSTS, seed=seed)
        job = write_job(
            tmp_path, sandbox, mode=rng.choice(("live", "staged")), concurrency=2, state=state
        )
        codes = [kill_after(job, rng.uniform(0.3, 2.0)) for _ in range(4)]
        assert set(codes) <= {KILLED, EXIT_OK}, codes
        assert KILLED in codes, f"no kill landed inside a run: {codes}"
        mode = "staged" if "staged" in job.read_text() else "live"
        run_until_done(job, expected_exit=EXIT_OK)
        verify_end_state(sandbox, job, data, mode=mode)


def test_an_aborted_rerun_after_a_kill_changes_nothing(tmp_path: Path) -> None:
    with sandbox_process(seed=5) as sandbox:
        data = make_dataset(tmp_path, authors=AUTHORS, posts=POSTS, seed=5)
        job = write_job(tmp_path, sandbox)
        assert run_flowport(job, crash_at="after-answer:3").returncode == KILLED
        log = open_log(job)
        before = log.counts()
        log.close()
        writes = sandbox.stats()["totals"]["writes"]

        refused = run_flowport(job, env={"CRASH_TEST_WEBFLOW_TOKEN": "not-the-token"})
        assert refused.returncode == EXIT_ABORTED, refused.stderr
        assert "not-the-token" not in refused.stdout + refused.stderr
        assert sandbox.stats()["totals"]["writes"] == writes
        log = open_log(job)
        assert log.counts() == before
        log.close()

        run_until_done(job, expected_exit=EXIT_OK, attempts=1)
        verify_end_state(sandbox, job, data, mode="live")
