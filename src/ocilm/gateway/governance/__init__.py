"""Virtual keys, teams, budgets and spend for ``ocilm serve`` (issue #14): policy without I/O in
``_policy``, the SQL store in ``_store``, migrations in ``migrations``."""
