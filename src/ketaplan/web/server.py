"""The ASGI application of ``ketaplan serve`` (configured by $KETAPLAN_DB, $KETAPLAN_SECURE_COOKIES and
$KETAPLAN_CONFIG, the clinic's settings file)."""

import os

from ketaplan.web.app import create_app
from ketaplan.web.config import load_settings

_secure = os.environ.get("KETAPLAN_SECURE_COOKIES", "1") == "1"
app = create_app(os.environ.get("KETAPLAN_DB"), secure_cookies=_secure,
                 settings=load_settings(os.environ.get("KETAPLAN_CONFIG"), _secure))
