"""``python -m serving.collector``: run the collector with the settings of the environment."""

from serving.collector.service import COLLECTOR
from serving.http_service import main

if __name__ == "__main__":
    main(COLLECTOR, __doc__)
