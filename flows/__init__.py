"""flows of the thrifty Prefect project."""
