"""Run the serving API: in this process (uvicorn) or as a background process remembered by a PID file."""

from __future__ import annotations

from serving.http_service import HttpService

API = HttpService(name="api", module="serving.api", app_factory="serving.api.app:app_from_environment",
                  address=lambda s: (s.serving_host, s.serving_port), port_setting="REELYTICS_SERVING_PORT")
