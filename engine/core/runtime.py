"""What the composition root hands to entry points: settings, sessions, clock."""
from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from engine.core.clock import Clock
from engine.core.config import Settings


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    clock: Clock


def runtime() -> Runtime:
    """The Runtime of the Flask app handling the current request."""
    return current_app.extensions["engine_runtime"]
