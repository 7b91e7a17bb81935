"""PostgreSQL access: the asyncpg pool and the migrations runner."""

from berth_common.db.migrations import Migration, apply_migrations, load_migrations
from berth_common.db.pool import create_pool, ensure_database

__all__ = ["Migration", "apply_migrations", "create_pool", "ensure_database", "load_migrations"]
