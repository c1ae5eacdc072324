"""hypothesis settings profiles (ci, dev, thorough), registered before pytest loads one.

The repository's ``conftest.py`` loads this module as a pytest plugin and sets ``HYPOTHESIS_PROFILE``
to ``ci`` when ``CI`` is set and to ``dev`` otherwise (unless the user set it). This plugin loads the
profile that variable names; hypothesis's own ``--hypothesis-profile NAME`` option, applied after it,
wins when given.

Every property talks to a real worker, so an example costs tens of milliseconds to seconds and its
duration depends on the machine's load: ``deadline=None`` everywhere. Properties that cost more per
example (retries with countdowns, exponential backoff) take a fraction of the profile's examples
through :func:`examples`.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

PROFILE_ENV = "HYPOTHESIS_PROFILE"
"""Environment variable naming the profile to load."""

PROFILES = ("ci", "dev", "thorough")
"""The profiles this module registers."""

FIXTURES_OK = (HealthCheck.function_scoped_fixture,)
"""Health checks the properties suppress: ``app`` / ``worker`` are function-scoped wrappers around
session-scoped workers, the same objects for every example, so reusing them across examples is safe;
per-example keys are made inside each test body."""

settings.register_profile(
    "ci",
    max_examples=20,
    derandomize=True,  # the same examples on every run: a CI failure reproduces locally
    database=None,  # nothing saved or replayed between runs
    deadline=None,
    print_blob=True,
)
settings.register_profile("dev", max_examples=40, deadline=None, print_blob=True)
settings.register_profile("thorough", max_examples=300, deadline=None, print_blob=True)


def load(name: str) -> None:
    """Load profile ``name``; a clear one-line error for an unknown name."""
    if name not in PROFILES:
        raise pytest.UsageError(
            f"{PROFILE_ENV}={name!r} is not a hypothesis profile of this suite; use one of "
            f"{', '.join(PROFILES)} (or unset it)"
        )
    settings.load_profile(name)


def examples(fraction: float) -> int:
    """``fraction`` of the current profile's ``max_examples`` (at least 1), for costly properties."""
    return max(1, round(settings().max_examples * fraction))  # settings(): the loaded profile's


# Loaded at import, so test modules collected later see the profile in ``settings.default``.
load(os.environ.get(PROFILE_ENV, "dev") or "dev")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    # Runs before hypothesis's plugin applies ``--hypothesis-profile`` (which then wins).
    load(os.environ.get(PROFILE_ENV, "dev") or "dev")


def pytest_report_header(config: pytest.Config) -> str:
    source = "--hypothesis-profile" if config.getoption("hypothesis_profile", None) else PROFILE_ENV
    return f"properties: hypothesis profile {settings.get_current_profile_name()!r} (from {source})"
