"""One MLflow session for ablate's commands: a client that fails fast and in one line.

MLflow's defaults suit a training job that must not lose a metric: an unreachable server is
retried for minutes (``http://127.0.0.1:9``: 4 min 9 s before a traceback), and a SQLite file
that cannot be opened is retried ten times with a growing sleep (1 min 45 s). An ablate command
either reads or writes a tracker once, so :func:`session` sets, for the call only, no HTTP retries
and a short timeout, checks a SQLite or file-store location before MLflow touches it, and turns
every MLflow, network and database failure into one :class:`~ablate.errors.TrackerError` line.

:func:`check_names` refuses keys and values over MLflow's length limits before anything is
logged, and :func:`failed_on_error` ends a run FAILED when a later step fails, so that no run is
left RUNNING.

mlflow is an optional dependency, imported only when a session starts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import urlparse

from ablate.errors import AblateError, TrackerError

INSTALL_HINT = "mlflow is not installed; install it with: pip install 'ablate[mlflow]' (or pip install mlflow)"
# Seconds MLflow waits for one HTTP answer: a server that does not answer is reported within 10 s.
HTTP_TIMEOUT_S = 5
# MLflow's limits (mlflow.utils.validation); kept here so a check needs no import of mlflow.
MAX_KEY_LENGTH = 250
MAX_PARAM_VALUE_LENGTH = 6000
MAX_TAG_VALUE_LENGTH = 8000


def _env(uri: str) -> dict[str, str]:
    env = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": str(HTTP_TIMEOUT_S)}
    if _is_file_store(uri):
        env["MLFLOW_ALLOW_FILE_STORE"] = "true"  # MLflow 3 refuses a file store unless told it is wanted
    return env


def _is_file_store(uri: str) -> bool:
    scheme = urlparse(uri).scheme
    return scheme in ("", "file") or (len(scheme) == 1 and os.name == "nt")  # a Windows drive letter


def _local_path(uri: str) -> Path:
    return Path(urlparse(uri).path if uri.startswith("file:") else uri)


def check_reachable(uri: str, *, flag: str) -> None:
    """An http(s) tracking server must take a TCP connection: refused or silent is one line at once.

    Done before MLflow is imported (seconds on a loaded machine), so the answer comes first.
    """
    parsed = urlparse(uri)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname or "", port), timeout=HTTP_TIMEOUT_S):
            pass
    except socket.timeout:
        raise TrackerError(f"{flag} {uri}: no answer within {HTTP_TIMEOUT_S} s") from None
    except OSError as exc:
        reason = "connection refused" if isinstance(exc, ConnectionRefusedError) else (exc.strerror or str(exc))
        raise TrackerError(f"{flag} {uri}: {reason}") from None


def check_location(uri: str, *, flag: str, read: bool, write: bool) -> None:
    """A server must answer; a SQLite database or a file store must exist to be read, and take writes to write."""
    if urlparse(uri).scheme in ("http", "https"):
        check_reachable(uri, flag=flag)
    elif uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///"))
        if str(path) in ("", ":memory:"):
            return
        if read and not path.is_file():
            raise TrackerError(f"{flag}: no MLflow database at {path} (expected an existing sqlite:/// file)")
        if write:
            if path.is_file() and not os.access(path, os.W_OK):
                raise TrackerError(f"{flag}: the SQLite database {path} is read-only; choose a writable place")
            _check_writable(path.parent, flag=flag, what="SQLite database's folder")
    elif _is_file_store(uri):
        path = _local_path(uri)
        if read and not (path.is_dir() and any(path.glob("*/meta.yaml"))):
            what = "no folder" if not path.is_dir() else "a folder without experiments (no */meta.yaml)"
            raise TrackerError(f"{flag}: no MLflow file store at {path}: {what}; expected a file store such as "
                               f"./mlruns, a sqlite:/// file or an http:// server")
        if write:
            _check_writable(path, flag=flag, what="file store")


def _check_writable(path: Path, *, flag: str, what: str) -> None:
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent  # MLflow creates missing folders; the first existing one must take them
    if existing.is_file() and existing != path:
        raise TrackerError(f"{flag}: the {what} location {path} lies under a file, {existing}")
    folder = existing if existing.is_dir() else existing.parent
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise TrackerError(f"{flag}: the {what} location {folder} is not writable ({exc.strerror}); "
                           f"choose a writable place") from None


def describe(exc: BaseException) -> str:
    """An MLflow, network or database failure as one line (MLflow's messages run over many)."""
    text = str(exc).strip() or type(exc).__name__
    if "Failed to establish a new connection" in text or "Connection refused" in text:
        return "connection refused"
    if "timed out" in text.lower() or "Read timed out" in text:
        return f"no answer within {HTTP_TIMEOUT_S} s"
    first = text.splitlines()[0]
    return first if len(first) <= 300 else first[:297] + "..."


@contextlib.contextmanager
def session(uri: str, *, flag: str = "--tracking-uri", read: bool = True, write: bool = False) -> Iterator[object]:
    """An ``MlflowClient`` for ``uri`` that fails in one line, with the settings above for the call.

    read: the store must exist already (a SQLite file, a file-store folder); write: it must take writes.
    """
    check_location(uri, flag=flag, read=read, write=write)
    env = _env(uri)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    patched = None
    try:
        try:
            import requests
            from mlflow import MlflowClient
            from mlflow.exceptions import MlflowException
            from sqlalchemy.exc import SQLAlchemyError
        except ImportError:
            raise AblateError(INSTALL_HINT) from None
        logging.getLogger("mlflow").setLevel(logging.ERROR)  # not the retry warnings or migration chatter
        logging.getLogger("alembic").setLevel(logging.WARNING)
        logging.disable(logging.WARNING)  # the file store logs a traceback per odd folder on the root logger
        patched = (None, None)
        if uri.startswith("sqlite:"):
            from mlflow.store.db import utils as db_utils

            patched, db_utils.MAX_RETRY_COUNT = (db_utils, db_utils.MAX_RETRY_COUNT), 1  # no sleeping retries
        try:
            yield MlflowClient(tracking_uri=uri)
        except AblateError:
            raise
        except (MlflowException, requests.RequestException, SQLAlchemyError) as exc:
            if os.environ.get("ABLATE_DEBUG") == "1":
                raise
            raise TrackerError(f"{flag} {uri}: {describe(exc)}") from exc
    finally:
        if patched is not None:
            logging.disable(logging.NOTSET)
            if patched[0] is not None:
                patched[0].MAX_RETRY_COUNT = patched[1]
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def check_names(*, metrics: Iterable[str] = (), params: dict[str, str] | None = None,
                tags: dict[str, str] | None = None, what: str = "") -> None:
    """Refuse, before anything is logged, a key or value that MLflow would reject mid-way."""
    where = f" ({what})" if what else ""
    for kind, keys in (("metric", metrics), ("param", (params or {}).keys()), ("tag", (tags or {}).keys())):
        for key in keys:
            if len(key) > MAX_KEY_LENGTH:
                raise TrackerError(f"MLflow {kind} name{where} has {len(key)} characters, at most "
                                   f"{MAX_KEY_LENGTH} allowed (shorten the arm, dataset or model names): "
                                   f"{key[:80]!r}...")
    for key, value in (params or {}).items():
        if len(str(value)) > MAX_PARAM_VALUE_LENGTH:
            raise TrackerError(f"MLflow param {key!r}{where}: value has {len(str(value))} characters, at most "
                               f"{MAX_PARAM_VALUE_LENGTH} allowed")
    for key, value in (tags or {}).items():
        if len(str(value)) > MAX_TAG_VALUE_LENGTH:
            raise TrackerError(f"MLflow tag {key!r}{where}: value has {len(str(value))} characters, at most "
                               f"{MAX_TAG_VALUE_LENGTH} allowed")


def search_runs(client, experiment_id: str, filter_string: str | None = None) -> list:
    """Every active run of an experiment that matches ``filter_string``, page by page."""
    out, token = [], None
    while True:
        page = client.search_runs([experiment_id], filter_string=filter_string or "", max_results=1000,
                                  page_token=token)
        out.extend(page)
        token = page.token
        if not token:
            return out


@contextlib.contextmanager
def failed_on_error(client, run_id: str) -> Iterator[None]:
    """On any error inside, end ``run_id`` FAILED (best effort) and re-raise: no run stays RUNNING."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            client.set_terminated(run_id, status="FAILED")
        raise
