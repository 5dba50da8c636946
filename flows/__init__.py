"""flows of the thrifty Prefect project.

Importing a flow from Python starts Prefect's temporary server when no ``PREFECT_API_URL`` is set;
its analytics would then try to reach an outside host. thrifty sends nothing outside unasked, so the
default here is off (as ``make`` and ``make server`` set it); an explicit setting still wins.
"""

import os

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
