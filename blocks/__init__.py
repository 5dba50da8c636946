"""blocks of the thrifty Prefect project."""
