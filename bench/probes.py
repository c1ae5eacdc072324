"""The harness's probe tasks, for any app's worker: ``celery -A yourapp worker --include bench.probes``.

They register with ``shared_task``, so they join whatever app the worker runs, and every worker the
harness starts includes this module (``bench.config.PROBES_MODULE``). The harness sends them by name:

``bench.probes.noop``   does nothing (the drain rate and the enqueue figures);
``bench.probes.stamp``  returns the ``time.time()`` at which it started (open-loop end-to-end latency).

Both store their result whatever the app's ``task_ignore_result`` says: the harness reads it from the
result backend it points the worker at. Importing this module in the harness process is harmless; the
harness itself never calls these functions (it only names them).
"""

from __future__ import annotations

import time
from typing import Any

from celery import shared_task


@shared_task(name="bench.probes.noop", ignore_result=False)
def noop(*args: Any, **kwargs: Any) -> None:
    """Do nothing: what is left is Celery's own cost per task (receive, execute, store the result)."""
    return None


@shared_task(name="bench.probes.stamp", ignore_result=False)
def stamp(*args: Any, **kwargs: Any) -> float:
    """The wall-clock time at which the body started on the worker (same host as the producer)."""
    return time.time()
