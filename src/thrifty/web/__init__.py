"""The web dashboard: server-rendered pages (Jinja2 + htmx) over the read layer.

    router      thrifty.web.routes.router, a FastAPI APIRouter the management API mounts at ``/``
    create_app  thrifty.web.app.create_app(), the dashboard alone (tests, ``python -m thrifty.web``)
    charts      inline SVG drawn on the server (no JavaScript build step)
    launch      how the one-click deploy starts deploy-model (Prefect's REST API via thrifty.client)
    playground  one real inference sent through the server to a deployment's endpoint

Pages read only through ``thrifty.read``; writes (deploy, playground) are POST forms with a
double-submit CSRF token. A ThriftyError becomes an error panel with the message and the fix.
"""
