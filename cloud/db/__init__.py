"""The relational store: ORM models, engines, migrations and the register of schools."""
