"""Work-pool templates and the local Prefect server helper (``make server``)."""
