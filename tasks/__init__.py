"""The Celery app under test, as the seed article writes it.

``from tasks import add, multiply, app`` works as in the article's ``client.py``; the app's settings come
from ``tasks/celery_config.py`` through ``app.config_from_object``. ``celery -A tasks worker --pool=solo
-l info`` starts a worker for it.
"""

import time

from celery import Celery

app = Celery("demo")  # Celery实例的名称
app.config_from_object("tasks.celery_config")


def _work(seconds: float | None) -> None:
    """Simulate the seed's slow computation (``time.sleep(2)``) when asked."""
    delay = app.conf.tasks_work_seconds if seconds is None else seconds
    if delay:
        time.sleep(delay)  # 模拟耗时操作


@app.task
def add(x, y, work=None):
    _work(work)
    return x + y


@app.task
def multiply(x, y, work=None):
    _work(work)
    return x * y


@app.task
def routed_add(x, y):
    """``add`` under a name that ``task_routes`` sends to ``add_queue``."""
    return x + y


# Register the behaviour tasks on ``app`` (each module names its tasks ``tasks.<module>.<name>``).
from tasks import behaviour, canvas, load, reliability  # noqa: E402

__all__ = ["app", "add", "multiply", "routed_add", "behaviour", "canvas", "load", "reliability"]
