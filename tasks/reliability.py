"""Tasks for the fault scenarios: each execution records itself in the ledger."""

from tasks import app  # noqa: F401
