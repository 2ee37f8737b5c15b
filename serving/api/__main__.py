"""``python -m serving.api``: run the serving API with the settings of the environment."""

from serving.api.service import API
from serving.http_service import main

if __name__ == "__main__":
    main(API, __doc__)
