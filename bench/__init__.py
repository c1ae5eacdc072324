"""celery-bench: a verification and benchmark harness for Celery (real workers, a real Redis)."""

__version__ = "0.1.0"
