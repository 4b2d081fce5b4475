"""Showing an execution's progress while `--wait` follows it: a live per-state table (rich) when stderr is
a terminal, plain lines (one per state change) otherwise. Progress goes to stderr; results to stdout."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import IO, Any

from mlpipe.client.executions import Execution, Follow
from mlpipe.client.progress import FAILED, RUNNING, SUCCEEDED, StateProgress
from mlpipe.commands._common import duration, when

STYLES = {RUNNING: "yellow", SUCCEEDED: "green", FAILED: "bold red"}


class ExecutionProgressDisplay:
    """An observer for Executions.follow: `with ExecutionProgressDisplay(name) as show: follow(observer=show)`."""

    def __init__(self, name: str, *, stream: IO[str] | None = None, live: bool | None = None) -> None:
        self.name = name
        self.stream = stream or sys.stderr
        self.live_mode = self.stream.isatty() if live is None else live
        self._live: Any = None
        self._status = ""

    def __enter__(self) -> ExecutionProgressDisplay:
        if self.live_mode:
            from rich.console import Console
            from rich.live import Live

            self._live = Live(console=Console(file=self.stream), refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)

    def __call__(self, update: Follow) -> None:
        if self._live is not None:
            self._live.update(self._table(update))
            return
        execution = update.execution
        if execution.status != self._status:
            self._status = execution.status
            self._line(f"run {execution.name}: {execution.status}")
        for state in update.changed:
            elapsed = duration(state.first_entered, state.last_change) if state.status != RUNNING else ""
            self._line(f"  {state.name:<34} {state.describe():<24} {elapsed}".rstrip())

    def _line(self, text: str) -> None:
        stamp = datetime.now().strftime("%H:%M:%S")
        self.stream.write(f"{stamp} {text}\n")
        self.stream.flush()

    def _table(self, update: Follow) -> Any:
        from rich.table import Table

        execution = update.execution
        table = Table(
            title=f"run {execution.name}: {execution.status} ({duration(execution.start_date, execution.stop_date)})",
            title_justify="left",
        )
        table.add_column("state")
        table.add_column("status")
        table.add_column("entered")
        table.add_column("time", justify="right")
        for state in update.progress.states.values():
            table.add_row(
                state.name,
                f"[{STYLES.get(state.status, '')}]{state.describe()}[/]",
                when(state.first_entered),
                _elapsed(state),
            )
        return table


def _elapsed(state: StateProgress) -> str:
    end = None if state.status == RUNNING else state.last_change
    return duration(state.first_entered, end)


def execution_lines(execution: Execution) -> list[str]:
    """A person's summary of an execution."""
    lines = [
        f"run {execution.name}: {execution.status}",
        f"  execution  {execution.arn}",
        f"  started    {when(execution.start_date)}",
    ]
    if execution.stop_date:
        lines.append(
            f"  ended      {when(execution.stop_date)} ({duration(execution.start_date, execution.stop_date)})"
        )
    if execution.redrive_count:
        lines.append(f"  redriven   {execution.redrive_count} time(s)")
    if execution.current_states and execution.status == "RUNNING":
        lines.append(f"  running    {', '.join(execution.current_states)}")
    if execution.failure is not None and not execution.succeeded:
        lines.append(f"  failed in  {execution.failure.state or '(unknown state)'}")
        lines.append(f"  error      {execution.error or '-'}")
        lines.append(f"  cause      {execution.cause or '-'}")
    return lines
