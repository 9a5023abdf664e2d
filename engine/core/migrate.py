"""Run Alembic programmatically: the app, the demo and the tests all migrate the same way."""
from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine

from engine.core.config import PROJECT_ROOT


def alembic_config(engine: Engine | None = None) -> Config:
    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    cfg.attributes["configure_logger"] = False
    if engine is not None:
        cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


def upgrade_to_head(engine: Engine) -> None:
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        # "heads": packages may add migrations on branches of their own (merged later); upgrading
        # to every head keeps them all applied.
        command.upgrade(cfg, "heads")
