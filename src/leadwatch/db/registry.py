"""Imports every table module so that Base.metadata is complete (Alembic, tests)."""

from leadwatch.auth import models as auth_models
from leadwatch.db.base import Base
from leadwatch.escalations import models as escalation_models
from leadwatch.leads import models as lead_models
from leadwatch.notifications import models as notification_models
from leadwatch.users import models as user_models

__all__ = [
    "Base",
    "auth_models",
    "escalation_models",
    "lead_models",
    "notification_models",
    "user_models",
]
