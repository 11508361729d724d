"""The exception hierarchy. Every user-facing failure is an `AblateError`.

The CLI prints an `AblateError` as one line; the traceback appears only with
``ABLATE_DEBUG=1``. Jupyter shows the same line (``_render_traceback_``), not a traceback page.
"""

import os


class _OneLine:
    @property
    def _render_traceback_(self):
        # IPython and Jupyter show what this returns instead of a traceback page: the CLI's one
        # line. With ABLATE_DEBUG=1 the attribute is absent, so they show the whole traceback.
        if os.environ.get("ABLATE_DEBUG") == "1":
            raise AttributeError("_render_traceback_")
        return lambda: [f"{type(self).__name__}: {self}"]


class AblateError(_OneLine, Exception):
    """A failure caused by the user's input or environment, printable as one line."""


class Interrupted(_OneLine, KeyboardInterrupt):
    """``ablate.run`` stopped by Ctrl-C or a kernel's interrupt: its workers ended, its stored runs kept."""


class ConfigError(AblateError):
    """A grid file or command-line option is invalid."""


class ArgumentError(ConfigError):
    """A bad argument of the Python API, named as the argument (``workers``); the command line
    names it as its flag (``--workers``) through :meth:`spelled`. ``reason`` may mention other
    arguments as ``{name}`` placeholders listed in ``mentions``."""

    def __init__(self, argument: str, reason: str, *, mentions: tuple[str, ...] = ()):
        self.argument, self.reason, self.mentions = argument, reason, tuple(mentions)
        super().__init__(self.spelled(lambda name: name))

    def spelled(self, name) -> str:
        """The message with every argument written as ``name(argument)``."""
        reason = self.reason
        for other in self.mentions:
            reason = reason.replace("{" + other + "}", name(other))
        return f"{name(self.argument)}: {reason}"


def as_flag(argument: str) -> str:
    """The command-line flag of an API argument: ``per_gpu`` -> ``--per-gpu``."""
    return "--" + argument.replace("_", "-")


class DatasetError(AblateError):
    """A dataset is unknown, missing or malformed."""


class BackendError(AblateError):
    """A backend is unknown or its framework is not installed."""


class StoreError(AblateError):
    """The results folder or a stored record cannot be read or written."""


class InputError(AblateError, ValueError):
    """A table or array handed to an analysis function is malformed."""


class DivergedError(RuntimeError):
    """Training produced a non-finite loss; the run is stored as `diverged`."""


class TrackerError(AblateError):
    """An experiment tracker (MLflow) cannot be reached, read or written, or refuses a name."""
