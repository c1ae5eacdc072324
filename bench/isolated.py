"""One ``bench.scenarios.run`` in a child interpreter with an environment of its own.

redis-py chooses its reply parser when it is imported (hiredis's if ``import hiredis`` works), so a
process that has imported it cannot turn hiredis off. A sweep cell without hiredis (``Config.hiredis``
``False``) therefore runs its measurements in a child Python whose ``PYTHONPATH`` starts with a
directory holding a ``hiredis.py`` that raises ``ImportError`` (:func:`without_hiredis`); the workers
the child starts inherit that path (``bench.worker.child_env`` keeps an extra ``PYTHONPATH`` first).
The parent passes the run's options and reads its records back as pickles in a temporary directory,
and owns the child (``bench.procs.ManagedProcess``): reaped on success, failure, timeout and Ctrl-C.
The child also reports which parser its own redis-py connections use (the producers' side).
"""

from __future__ import annotations

import importlib.util
import pickle
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from bench import defaults, parsers, scenarios
from bench.procs import ManagedProcess, make_tempdir, remove_tempdir, wait_for
from bench.worker import PROJECT_ROOT, child_env

HIREDIS_BLOCKER = 'raise ImportError("hiredis is hidden by the harness: a sweep cell without hiredis")\n'
"""The whole of the ``hiredis.py`` that hides the real one."""

CHILD = "import sys; from bench import isolated; isolated.child(sys.argv[1], sys.argv[2])"


def hiredis_installed() -> bool:
    """Whether this interpreter can import hiredis (and redis-py accepts its version)."""
    from redis.utils import HIREDIS_AVAILABLE

    return importlib.util.find_spec("hiredis") is not None and bool(HIREDIS_AVAILABLE)


@contextmanager
def without_hiredis() -> Iterator[dict[str, str]]:
    """The extra environment of a child in which ``import hiredis`` raises ``ImportError``."""
    path = make_tempdir("nohiredis")
    try:
        (path / "hiredis.py").write_text(HIREDIS_BLOCKER)
        yield {"PYTHONPATH": str(path)}
    finally:
        remove_tempdir(path)


def run(
    options: scenarios.Options, *, env: Mapping[str, str], timeout: float = defaults.ISOLATED_CELL_TIMEOUT
) -> tuple[scenarios.Run, str]:
    """``scenarios.run(options)`` in a child with ``env`` added; its records and its redis-py parser."""
    assert options.broker_url is not None, "an isolated run uses the sweep's broker"
    tmp = make_tempdir("cell")
    inbox, outbox = tmp / "options.pickle", tmp / "run.pickle"
    inbox.write_bytes(pickle.dumps(options))
    process = ManagedProcess(
        [sys.executable, "-c", CHILD, str(inbox), str(outbox)], name="sweep-cell", log_path=tmp / "cell.log",
        env=child_env(options.broker_url, extra=env), cwd=PROJECT_ROOT,
    )  # fmt: skip
    try:
        process.start()
        wait_for(lambda: not process.alive(), timeout=timeout, what="an isolated sweep cell to finish")
        if process.returncode() != 0 or not outbox.exists():
            tail = "\n".join(process.log_text().splitlines()[-20:])
            raise RuntimeError(f"isolated sweep cell exited with {process.returncode()}:\n{tail}")
        found: tuple[scenarios.Run, str] = pickle.loads(outbox.read_bytes())  # noqa: S301 - our own child
        return found
    finally:
        process.stop()
        remove_tempdir(tmp)


def child(inbox: str, outbox: str) -> None:
    """The child's side: run the options, write the records and this process's parser."""
    options: scenarios.Options = pickle.loads(Path(inbox).read_bytes())  # noqa: S301 - our parent's
    assert options.broker_url is not None
    result = scenarios.run(options)
    Path(outbox).write_bytes(pickle.dumps((result, parsers.of_url(options.broker_url))))
