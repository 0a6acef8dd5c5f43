"""What an apply did, step by step: plain data for the CLI, JSON, JUnit and MCP.

Kept apart from ``reconcile`` so a no-op answered by ``runner.noop`` need not import it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

FAILED = ("failed", "timed_out", "cancelled", "interrupted")


@dataclass
class StepResult:
    workflow: str
    step: str
    status: str  # succeeded, failed, timed_out, cancelled, interrupted, skipped, blocked, up-to-date, circuit_open
    reasons: list[str] = field(default_factory=list)
    duration: float = 0.0
    exit_code: int | None = None
    attempts: int = 0
    log_path: str | None = None
    message: str = ""
    log_tail: list[str] = field(default_factory=list)
    task_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "workflow": self.workflow,
            "step": self.step,
            "status": self.status,
            "reasons": self.reasons,
            "duration": round(self.duration, 4),
            "exit_code": self.exit_code,
            "attempts": self.attempts,
            "log": self.log_path,
            "message": self.message,
        }


@dataclass
class ApplyResult:
    run_id: int | None
    results: list[StepResult]
    duration: float

    @property
    def ok(self) -> bool:
        # a step held back by an open breaker did not do its work: that is not success,
        # whether or not anything depends on it
        return not any(r.status in (*FAILED, "blocked", "circuit_open") for r in self.results)

    def counts(self) -> dict[str, int]:
        c: dict[str, int] = {}
        for r in self.results:
            c[r.status] = c.get(r.status, 0) + 1
        return c
