"""Persistence: SQLAlchemy Core tables, Alembic migrations, and the group-commit writer."""
