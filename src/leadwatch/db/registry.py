"""Imports every table module so that Base.metadata is complete (Alembic, tests)."""

from leadwatch.auth import models as auth_models
from leadwatch.db.base import Base
from leadwatch.leads import models as lead_models

__all__ = ["Base", "auth_models", "lead_models"]
