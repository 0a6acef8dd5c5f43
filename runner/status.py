"""Every status and plan action orch records or prints, each spelled once, and the sets of them
that rules are written against.

They stay plain strings: they are stored in the state database and printed in JSON as they
are, so a user's ``jq '.steps[] | select(.status == "timed_out")'`` keeps working. Modules
name them through ``Status`` and ``Action`` and test membership with the sets below, so a
rule such as "what counts as a failure" exists once.

    Status.SUCCEEDED ... Status.NOT_STARTED   one step's state, in records and results
    Action.RUN, RESTORE, MAY_RUN, SKIP,       what a plan says it will do with a step
      UP_TO_DATE
    TASK_ENDS                                 how a started task can end (the executor's answer)
    FAILED                                    a task ran and did not succeed
    NOT_OK                                    a step did not do its work: the apply is not ok,
                                              ``on: failure`` hooks fire, a project is failing
"""

from __future__ import annotations


class Status:
    """One step's state (the ``status`` of a step record, a step result, ``orch status``)."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"  # Ctrl-C, or its orch died (found by the next one)
    SKIPPED = "skipped"  # its when: condition was false
    BLOCKED = "blocked"  # an upstream step failed
    CIRCUIT_OPEN = "circuit_open"  # held back by an open circuit breaker
    UP_TO_DATE = "up-to-date"  # nothing changed: not run (a result, never a record)
    RESTORED = "restored"  # its outputs came from the result cache (a result; the record
    #                        says succeeded)
    NOT_STARTED = "not-started"  # the apply stopped early (fail-fast, cancel) before it
    RUNNING = "running"
    QUEUED = "queued"


class Action:
    """What a plan says it will do with a step."""

    RUN = "run"
    MAY_RUN = "may-run"  # depends on an upstream step whose outputs may change
    SKIP = "skip"  # its when: is false whatever runs (it reads params only), or a step
    #                it depends on will be skipped: apply records it skipped, runs nothing
    UP_TO_DATE = Status.UP_TO_DATE
    RESTORE = "restore"  # the result cache holds its result: restored, not run


TASK_ENDS = (
    Status.SUCCEEDED,
    Status.FAILED,
    Status.TIMED_OUT,
    Status.CANCELLED,
    Status.INTERRUPTED,
)
CANCELS = (Status.CANCELLED, Status.INTERRUPTED)
FAILED = (Status.FAILED, Status.TIMED_OUT, Status.CANCELLED, Status.INTERRUPTED)
NOT_OK = (*FAILED, Status.BLOCKED, Status.CIRCUIT_OPEN)
LIVE = (Status.RUNNING, Status.QUEUED)  # a task another orch may still be running
GREEN = (Status.SUCCEEDED, Status.SKIPPED)  # a step that is fine as it stands
