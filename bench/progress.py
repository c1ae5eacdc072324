"""Progress of the main job: the planned steps, an estimate of the time left, and two renderers.

The library reports events to a :class:`Listener` and never prints (``bench.scenarios.run(...,
progress=listener)``): ``started(plan)`` once with every planned step and its expected weight, then
``step(message)`` as each planned step begins and ``note(message)`` for a line inside the current step.
:class:`Estimate` turns the plan and a clock into the fraction done and the seconds left (pure: the clock
is injected, and the unit tests drive it by hand). The command line chooses the renderer:
:class:`PlainLines` (one line per event, for logs and CI) or :class:`RichBar` (a live bar on a terminal).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import IO, Protocol

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.progress_bar import ProgressBar
from rich.table import Table

Clock = Callable[[], float]

PRIOR_SECONDS = 10.0
"""Seconds of work assumed to have gone exactly as planned before the first step: the observed pace is
shrunk towards the plan's by this much, so that one short step that ran slow does not swing the
estimate of the whole run."""


@dataclass(frozen=True)
class PlannedStep:
    """One step of the main job, in run order, with the seconds it is expected to take."""

    label: str
    weight: float
    """Expected seconds on the reference machine (2 cores); only the ratios between steps matter."""


class Listener(Protocol):
    """What ``bench.scenarios.run`` reports to (any object with these three methods)."""

    def started(self, plan: Sequence[PlannedStep]) -> None: ...

    def step(self, message: str) -> None: ...

    def note(self, message: str) -> None: ...


class Silent:
    """A listener that ignores every event (the library's default)."""

    def started(self, plan: Sequence[PlannedStep]) -> None:
        pass

    def step(self, message: str) -> None:
        pass

    def note(self, message: str) -> None:
        pass


class Estimate:
    """Where a run stands against its plan, by the clock: steps begun, fraction done, seconds left.

    The pace (seconds per planned second) is measured on the steps that finished, shrunk towards 1 by
    ``PRIOR_SECONDS``; a step running past its expected length counts as evidence of a slower pace. The
    time left is the rest of the current step plus the planned weight of the steps after it, both at
    that pace.
    """

    def __init__(self, plan: Sequence[PlannedStep], *, clock: Clock = time.monotonic) -> None:
        if not plan:
            raise ValueError("a progress plan needs at least one step")
        if any(s.weight < 0 for s in plan):
            raise ValueError(f"step weights must be >= 0: {[s.weight for s in plan]}")
        self.plan = tuple(plan)
        self.clock = clock
        self.started = clock()
        self.begun = 0
        """Steps begun (the current one is ``plan[begun - 1]``); 0 before the first."""
        self.step_started = self.started

    @property
    def total(self) -> int:
        return len(self.plan)

    def begin_next(self) -> None:
        """The next planned step begins now (the previous one, if any, has finished)."""
        self.begun += 1
        self.step_started = self.clock()

    def elapsed(self) -> float:
        return self.clock() - self.started

    def _done_weight(self) -> float:
        return sum(s.weight for s in self.plan[: max(self.begun - 1, 0)])

    def _current_weight(self) -> float:
        return self.plan[self.begun - 1].weight if 0 < self.begun <= self.total else 0.0

    def pace(self) -> float:
        """Seconds taken per planned second so far (1.0 = as planned)."""
        done_s = self.step_started - self.started
        pace = (done_s + PRIOR_SECONDS) / (self._done_weight() + PRIOR_SECONDS)
        in_step = self.clock() - self.step_started
        current = self._current_weight()
        if in_step > current * pace:  # the current step is overrunning: it already says the pace is slower
            pace = max(
                pace, (done_s + in_step + PRIOR_SECONDS) / (self._done_weight() + current + PRIOR_SECONDS)
            )
        return pace

    def remaining(self) -> float:
        """Estimated seconds until the last planned step has finished."""
        pace = self.pace()
        in_step = self.clock() - self.step_started
        current_left = max(self._current_weight() * pace - in_step, 0.0)
        later = sum(s.weight for s in self.plan[max(self.begun, 0) :])
        return current_left + later * pace

    def fraction(self) -> float:
        """Fraction of the planned weight done, counting the current step by its elapsed time."""
        total = sum(s.weight for s in self.plan)
        if total <= 0:
            return self.begun / self.total
        in_step = (self.clock() - self.step_started) / self.pace()
        return min((self._done_weight() + min(in_step, self._current_weight())) / total, 1.0)


# -- renderers ---------------------------------------------------------------------------------------
def clock_text(seconds: float) -> str:
    seconds = max(int(round(seconds)), 0)
    return f"{seconds // 60}:{seconds % 60:02d}"


class PlainLines:
    """One line per event, for logs and CI: ``[ 7/16] + 11.4s  solo x1: starting a worker``."""

    def __init__(self, emit: Callable[[str], None], *, clock: Clock = time.monotonic) -> None:
        self.emit = emit
        self.clock = clock
        self.estimate: Estimate | None = None

    def started(self, plan: Sequence[PlannedStep]) -> None:
        self.estimate = Estimate(plan, clock=self.clock)

    def _estimate(self) -> Estimate:
        if self.estimate is None:
            raise RuntimeError("progress: step() or note() before started(plan)")
        return self.estimate

    def step(self, message: str) -> None:
        e = self._estimate()
        e.begin_next()
        self.emit(f"[{e.begun:>2}/{e.total}] +{e.elapsed():5.1f}s  {message}")

    def note(self, message: str) -> None:
        self.emit(f"        +{self._estimate().elapsed():5.1f}s  {message}")


class RichBar:
    """A live bar on a terminal: step k/N, the bar, elapsed, the estimate left, and the current step.

    Finished steps and notes scroll above the bar with their times, so the terminal keeps the history.
    Use as a context manager around the run: the bar stops (and the cursor is restored) on any exit.
    """

    def __init__(
        self, stream: IO[str], *, clock: Clock = time.monotonic, refresh_per_second: float = 4
    ) -> None:
        self.console = Console(file=stream)
        self.clock = clock
        self.estimate: Estimate | None = None
        self.message = ""
        self.live = Live(
            console=self.console,
            get_renderable=self.view,
            refresh_per_second=refresh_per_second,
            transient=True,
        )

    def __enter__(self) -> RichBar:
        self.live.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._finish_step(failed=kind is not None)
        self.live.stop()

    def started(self, plan: Sequence[PlannedStep]) -> None:
        self.estimate = Estimate(plan, clock=self.clock)

    def _finish_step(self, *, failed: bool = False) -> None:
        e = self.estimate
        if e is None or e.begun == 0 or not self.message:
            return
        took = self.clock() - e.step_started
        mark, after = ("[red]✗[/]", " (stopped)") if failed else ("[green]✓[/]", "")
        self.console.print(
            f"{mark} [dim]\\[{e.begun:>2}/{e.total}][/] {escape(self.message)} [dim]{took:.1f}s{after}[/]",
            highlight=False,
        )

    def step(self, message: str) -> None:
        if self.estimate is None:
            raise RuntimeError("progress: step() before started(plan)")
        self._finish_step()
        self.estimate.begin_next()
        self.message = message
        self.live.refresh()

    def note(self, message: str) -> None:
        elapsed = self.estimate.elapsed() if self.estimate else 0.0
        self.console.print(f"  [dim]+{elapsed:5.1f}s[/]  {escape(message)}", highlight=False)

    def view(self) -> Table:
        """What the bar shows now (rich renderable): step k/N, bar, percent, elapsed, left, message."""
        e = self.estimate
        grid = Table.grid(padding=(0, 1))
        if e is None:
            grid.add_row("starting ...")
            return grid
        grid.add_row(
            f"[bold]\\[{e.begun:>2}/{e.total}][/]",
            ProgressBar(total=1000, completed=round(e.fraction() * 1000), width=40),
            f"{e.fraction():4.0%}",
            f"elapsed [cyan]{clock_text(e.elapsed())}[/]",
            f"left ~[cyan]{clock_text(e.remaining())}[/]",
        )
        view = Table.grid()
        view.add_row(grid)
        view.add_row(f"[yellow]›[/] {escape(self.message)}")
        return view
