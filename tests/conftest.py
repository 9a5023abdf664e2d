"""Shared fixtures. Every database test runs on SQLite and on PostgreSQL.

Which databases: ``TEST_DATABASES`` (default ``sqlite,postgresql``). PostgreSQL is found at
``TEST_POSTGRES_URL`` (default the local server, database ``test``); each test run works in a
schema of its own, created here and dropped afterwards; schemas that interrupted runs left
behind (named with their creation time) are dropped at the start of a later run once they are
six hours old. If PostgreSQL is wanted and unreachable the run stops with an error: it never
silently skips.
"""
from __future__ import annotations

import os
import time
import uuid
from datetime import datetime, timezone
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine, text

from engine.core.clock import FrozenClock
from engine.core.config import Settings
from engine.core.db import Base, make_engine, make_session_factory
from engine.core.migrate import upgrade_to_head
import attribution.models  # noqa: F401  (complete metadata for truncation)
import billing.models  # noqa: F401
import billing.rollup  # noqa: F401  (the dashboard's read models)
import engine.models  # noqa: F401
import recommend.models  # noqa: F401

DATABASES = [d.strip() for d in os.environ.get("TEST_DATABASES", "sqlite,postgresql").split(",") if d.strip()]
PG_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def pytest_sessionstart(session):
    unknown = set(DATABASES) - {"sqlite", "postgresql"}
    if unknown:
        pytest.exit(f"TEST_DATABASES names unknown database(s): {', '.join(sorted(unknown))}", returncode=4)
    if "postgresql" in DATABASES:
        try:
            probe = create_engine(PG_URL, connect_args={"connect_timeout": 5})
            with probe.connect() as conn:
                conn.execute(text("select 1"))
                if "PYTEST_XDIST_WORKER" not in os.environ:     # once per run, not per worker
                    _drop_stale_schemas(conn)
                    conn.commit()
            probe.dispose()
        except Exception as exc:  # noqa: BLE001 - any failure to connect ends the run
            pytest.exit(f"PostgreSQL is unreachable at {PG_URL}: {exc}. Start it, or run with "
                        "TEST_DATABASES=sqlite to test SQLite only.", returncode=3)


STALE_SCHEMA_SECONDS = 6 * 3600


def _drop_stale_schemas(conn) -> None:
    """Schemas ``t_<worker>_<epoch>_<hex>`` older than six hours: a run killed before its end
    never dropped them (a run still going is never that old)."""
    now = int(time.time())
    for (name,) in conn.execute(text(r"SELECT nspname FROM pg_namespace WHERE nspname LIKE 't\_%'")):
        parts = name.split("_")
        if len(parts) == 4 and parts[2].isdigit() and now - int(parts[2]) > STALE_SCHEMA_SECONDS:
            conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


class DatabaseUnderTest:
    """One migrated database for the whole run; emptied after each test that used it."""

    def __init__(self, kind: str, tmp_path_factory):
        self.kind = kind
        if kind == "sqlite":
            path = tmp_path_factory.mktemp(f"sqlite-{_worker()}") / "engine.db"
            self.url = f"sqlite:///{path}"
            self.schema = None
        else:
            self.schema = f"t_{_worker()}_{int(time.time())}_{uuid.uuid4().hex[:8]}"
            admin = create_engine(PG_URL)
            with admin.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA "{self.schema}"'))
            admin.dispose()
            sep = "&" if "?" in PG_URL else "?"
            self.url = f"{PG_URL}{sep}options={quote(f'-csearch_path={self.schema}')}"
        self.engine = make_engine(self.url)
        upgrade_to_head(self.engine)
        self.sessions = make_session_factory(self.engine)

    def empty(self) -> None:
        tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
        with self.engine.begin() as conn:
            if self.kind == "postgresql":
                conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"))
            else:
                for t in tables:
                    conn.execute(text(f'DELETE FROM "{t}"'))

    def close(self) -> None:
        self.engine.dispose()
        if self.schema:
            admin = create_engine(PG_URL)
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{self.schema}" CASCADE'))
            admin.dispose()


_dbs: dict[str, DatabaseUnderTest] = {}


@pytest.fixture(scope="session")
def _database_registry(tmp_path_factory):
    def database(kind: str) -> DatabaseUnderTest:
        # Not dict.setdefault: that would build (create and migrate) a new database on every
        # call and drop it on the floor, a leaked schema per test.
        if kind not in _dbs:
            _dbs[kind] = DatabaseUnderTest(kind, tmp_path_factory)
        return _dbs[kind]

    yield database
    for db in _dbs.values():
        db.close()
    _dbs.clear()


@pytest.fixture(params=DATABASES)
def db(request, _database_registry) -> DatabaseUnderTest:
    """A migrated, empty database: SQLite in one run of the test, PostgreSQL in the other."""
    database = _database_registry(request.param)
    database.empty()
    yield database
    database.empty()


@pytest.fixture
def sessions(db):
    return db.sessions


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 11, 2, 12, 0, tzinfo=timezone.utc))


@pytest.fixture
def settings(db) -> Settings:
    return Settings(database_url=db.url, environment="test", secret_key="test-secret")


@pytest.fixture
def app(settings, clock):
    from app import create_app

    application = create_app(settings, clock=clock)
    application.config["TESTING"] = True
    yield application
    application.extensions["engine_runtime"].engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()
