"""Tasks for the canvas and retry properties (chains, groups, chords)."""

from tasks import app  # noqa: F401
