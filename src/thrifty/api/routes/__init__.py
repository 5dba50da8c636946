"""The API's routers, one module per area; ``ROUTERS`` is what the app includes."""
