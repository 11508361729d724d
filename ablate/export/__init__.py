"""Exports of a study to other tools (``python -m ablate export ...``)."""
