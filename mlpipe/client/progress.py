"""An execution's progress per state, built from its history events (GetExecutionHistory).

Pure: no AWS calls. `ExecutionProgress.add(event)` takes events in id order; a display reads `states`
(in order of first entry), and `failure()` names the state that failed with the execution's error.
A failure that the state retries (a new attempt follows it) is not counted as the state's failure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

RUNNING, SUCCEEDED, FAILED, STOPPED = "running", "succeeded", "failed", "stopped"


@dataclass
class StateProgress:
    name: str
    entered: int = 0
    succeeded: int = 0
    failed: int = 0
    stopped: int = 0
    first_entered: datetime | None = None
    last_change: datetime | None = None

    @property
    def running(self) -> int:
        return max(self.entered - self.succeeded - self.failed - self.stopped, 0)

    @property
    def status(self) -> str:
        """The state's status: running while any entry is open, else failed, stopped or succeeded."""
        if self.running:
            return RUNNING
        if self.failed:
            return FAILED
        return STOPPED if self.stopped else SUCCEEDED

    def describe(self) -> str:
        """`running`, `succeeded`... or counts, for a state entered more than once (Map iterations)."""
        if self.entered <= 1:
            return self.status
        counts = ((self.running, RUNNING), (self.succeeded, SUCCEEDED), (self.failed, FAILED))
        return ", ".join(f"{n} {label}" for n, label in (*counts, (self.stopped, STOPPED)) if n)


@dataclass(frozen=True)
class Failure:
    state: str | None
    error: str | None
    cause: str | None


@dataclass
class ExecutionProgress:
    states: dict[str, StateProgress] = field(default_factory=dict)
    last_event_id: int = 0
    _events: dict[int, dict[str, Any]] = field(default_factory=dict)
    _failures: list[dict[str, Any]] = field(default_factory=list)
    _failed_entries: set[int] = field(default_factory=set)
    """Entries (their StateEntered event ids) with a failure not (yet) followed by a retry."""

    def add(self, event: dict[str, Any]) -> StateProgress | None:
        """Record one history event; return the state whose progress it changed, if any."""
        event_id = int(event["id"])
        if event_id <= self.last_event_id:
            return None
        self.last_event_id = event_id
        self._events[event_id] = event
        when = event.get("timestamp")
        if "stateEnteredEventDetails" in event:
            state = self._state(event["stateEnteredEventDetails"]["name"])
            state.entered += 1
            state.first_entered = state.first_entered or when
        elif "stateExitedEventDetails" in event:
            state = self._state(event["stateExitedEventDetails"]["name"])
            entry = self._entry(self._events.get(int(event.get("previousEventId") or 0)), kind=None)
            if entry is not None and int(entry["id"]) in self._failed_entries:  # failed, and caught
                self._failed_entries.discard(int(entry["id"]))
                state.failed += 1
            else:
                state.succeeded += 1
        elif event["type"].startswith("Execution"):
            return None
        else:
            entry = self._entry(event, kind=event["type"])
            if entry is None:
                return None
            state = self._state(entry["stateEnteredEventDetails"]["name"])
            if _is_failure(event):
                self._failures.append(event)
                self._failed_entries.add(int(entry["id"]))
            elif int(entry["id"]) in self._failed_entries and event["type"].endswith("Scheduled"):
                self._failed_entries.discard(int(entry["id"]))  # retried: a new attempt
            else:
                return None
        state.last_change = when
        return state

    def finish(self, status: str) -> None:
        """The execution ended with `status`: open states failed (FAILED) or were stopped."""
        for state in self.states.values():
            open_entries = state.running
            if not open_entries:
                continue
            if status == "FAILED":
                state.failed += open_entries
            else:
                state.stopped += open_entries

    def failure(self, error: str | None, cause: str | None) -> Failure:
        """The state that failed with the execution's `error` (the last such failure), else the last failure,
        else the last state entered (a Fail state)."""
        chosen = None
        for event in reversed(self._failures):
            details = _failure_details(event) or {}
            if chosen is None:
                chosen = event
            if error is not None and details.get("error") == error:
                chosen = event
                break
        if chosen is not None:
            return Failure(self._owner(chosen), error, cause)
        entered = [e for e in self._events.values() if "stateEnteredEventDetails" in e]
        state = entered[-1]["stateEnteredEventDetails"]["name"] if entered else None
        return Failure(state, error, cause)

    def _state(self, name: str) -> StateProgress:
        if name not in self.states:
            self.states[name] = StateProgress(name)
        return self.states[name]

    def _owner(self, event: dict[str, Any]) -> str | None:
        entry = self._entry(event, kind=event["type"])
        return None if entry is None else str(entry["stateEnteredEventDetails"]["name"])

    def _entry(self, event: dict[str, Any] | None, *, kind: str | None) -> dict[str, Any] | None:
        """The StateEntered event an event follows along previousEventId (exact when branches interleave);
        for a Parallel or Map state's own event (`kind` ParallelStateFailed), that state's entry."""
        wanted = None
        if kind is not None and kind.startswith(_CONTAINERS):
            wanted = kind[: kind.index("State") + len("State")] + "Entered"
        current = event
        for _ in range(100_000):
            if current is None:
                return None
            if "stateEnteredEventDetails" in current and wanted in (None, current["type"]):
                return current
            previous = current.get("previousEventId")
            current = self._events.get(int(previous)) if previous else None
        return None


_CONTAINERS = ("ParallelState", "MapState")


def _is_failure(event: dict[str, Any]) -> bool:
    return event["type"].endswith(("Failed", "TimedOut", "Aborted")) or _failure_details(event) is not None


def _failure_details(event: dict[str, Any]) -> dict[str, Any] | None:
    for key, value in event.items():
        if key.endswith(("FailedEventDetails", "TimedOutEventDetails", "AbortedEventDetails")):
            return value if isinstance(value, dict) else {}
    return None
