"""Example Celery apps the harness can measure with ``--app`` (each a package of its own)."""
