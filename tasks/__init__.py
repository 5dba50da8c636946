"""tasks of the thrifty Prefect project."""
