"""``python -m serving.collector``: run the collector with the settings of the environment."""

from __future__ import annotations

import argparse
import logging

from serving.collector.service import serve
from warehouse_models.settings import load_settings


def main() -> None:
    """Parse the few options, configure logging once, and serve."""
    parser = argparse.ArgumentParser(prog="python -m serving.collector", description=__doc__)
    parser.add_argument("--host", default=None, help="bind address (default: REELYTICS_COLLECTOR_HOST)")
    parser.add_argument("--port", type=int, default=None, help="port (default: REELYTICS_COLLECTOR_PORT)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args()
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve(load_settings(), host=args.host, port=args.port, workers=args.workers, log_level=args.log_level)


if __name__ == "__main__":
    main()
