"""Tasks for the benchmarks: no-op and timestamping tasks."""

from tasks import app  # noqa: F401
