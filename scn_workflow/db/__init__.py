"""Persistence: tables, the mapping onto the domain, the engine and the unit of work."""
