"""Imports every ORM model of the engine so the metadata is complete (Alembic, tests)."""
from engine.core.web import models as web_models  # noqa: F401  (login throttle)
from engine.commerce import history, models as commerce_models  # noqa: F401
from engine.campaigns import models as campaign_models  # noqa: F401
from engine.ingest import models as ingest_models  # noqa: F401
from engine.ops import models as ops_models  # noqa: F401
from engine.tenancy import models as tenancy_models  # noqa: F401
from engine.webhooks import models as webhook_models  # noqa: F401
