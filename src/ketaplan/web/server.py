"""The ASGI application of ``ketaplan serve`` (configured by $KETAPLAN_DB and $KETAPLAN_SECURE_COOKIES)."""

import os

from ketaplan.web.app import create_app

app = create_app(os.environ.get("KETAPLAN_DB"), secure_cookies=os.environ.get("KETAPLAN_SECURE_COOKIES", "1") == "1")
