"""Executors other than the default local process pool (:mod:`ablate.execution.orchestrator`).

Each lives in its own module and imports its distributed engine only when a sweep starts,
so ``import ablate`` never imports one.
"""
