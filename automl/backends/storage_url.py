"""Which study storages ``--storage`` accepts, checked before a sweep folder is written.

An Optuna storage is a journal file (a path ending in ``.journal``, or ``journal://PATH``), a journal
on Redis (``redis://host:6379``), or a database SQLAlchemy opens (``postgresql://``, ``mysql://``,
``sqlite:///file.db``, each with an optional ``+driver``). :func:`check_storage` refuses anything
else, a database whose driver is not installed and a file whose folder does not exist, naming the
value and the accepted forms. It connects to nothing: a server that is down is found when the sweep
opens its study (and the sweep is then marked FAILED with the reason). No Optuna import here.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from automl.errors import SettingError

__all__ = ["ACCEPTED", "check_storage", "journal_path", "shown"]

ACCEPTED = (
    "postgresql://user:password@host/db, mysql://user:password@host/db, sqlite:///path/to/file.db, "
    "redis://host:6379 or a path ending in .journal"
)
_DRIVERS = {"postgresql": "psycopg2-binary", "mysql": "PyMySQL (and mysql+pymysql://)", "mariadb": "PyMySQL"}


def shown(storage: str) -> str:
    """The URL with its password hidden, for messages."""
    return re.sub(r"(://[^:/@]+:)[^@/]*@", r"\1***@", storage)


def journal_path(storage: str | None, sweep_dir: Path) -> Path | None:
    """The journal file of a sweep's study (the default ``<sweep>/optuna.journal``, or a ``.journal``
    storage); None for a database or Redis."""
    if not storage:
        return sweep_dir / "optuna.journal"
    if storage.startswith("redis://"):
        return None
    if storage.endswith(".journal") or storage.startswith("journal://"):
        return Path(storage.removeprefix("journal://"))
    return None


def _refuse(storage: str, why: str) -> SettingError:
    return SettingError(f"--storage: {shown(storage)!r} {why}; use {ACCEPTED}")


def _check_file(storage: str, path: Path, what: str) -> None:
    if path.is_dir():
        raise SettingError(
            f"--storage: {path} is a folder; give the {what} file inside it, e.g. {path}/study.db"
        )
    if not path.parent.is_dir():
        raise SettingError(
            f"--storage: the folder {path.parent} of {what} file {path} does not exist; create it or "
            f"give a path in an existing folder"
        )


def check_storage(storage: str | None) -> None:
    """Refuse a storage this tool cannot open (see the module docstring); None is the default journal."""
    if storage is None:
        return
    if not storage.strip():
        raise _refuse(storage, "is empty")
    path = journal_path(storage, Path("."))
    if path is not None:
        _check_file(storage, path, "the journal")
        return
    scheme = storage.split("://", 1)[0].lower() if "://" in storage else ""
    if not scheme:
        raise _refuse(storage, "is not a storage URL (no scheme://)")
    if scheme == "redis":
        if importlib.util.find_spec("redis") is None:
            raise SettingError(f"--storage: {shown(storage)!r} needs the redis package; pip install redis")
        return
    dialect = scheme.split("+", 1)[0]
    if dialect == "sqlite":
        if not storage.startswith(f"{scheme}:///"):
            raise _refuse(
                storage,
                "is not a SQLite URL: SQLite takes three slashes, sqlite:///relative.db or sqlite:////abs/path.db",
            )
        file = storage.split(":///", 1)[1].split("?", 1)[0]
        if file and file != ":memory:":
            _check_file(storage, Path(file), "the SQLite")
    _check_database_url(storage, dialect)


def _check_database_url(storage: str, dialect: str) -> None:
    """SQLAlchemy knows the dialect and its driver is installed (creating an engine connects to nothing)."""
    import sqlalchemy
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        engine = sqlalchemy.create_engine(storage)
    except NoSuchModuleError:
        raise _refuse(storage, f"is not a storage this tool opens (unknown scheme {dialect!r})") from None
    except ArgumentError as exc:
        raise _refuse(storage, f"is not a valid database URL ({exc})") from None
    except ImportError as exc:
        hint = _DRIVERS.get(dialect, "the database's Python driver")
        raise SettingError(
            f"--storage: {shown(storage)!r} needs a database driver that is not installed ({exc}); "
            f"install {hint}, or use a journal file (a path ending in .journal)"
        ) from None
    engine.dispose()
