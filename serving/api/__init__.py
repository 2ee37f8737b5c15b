"""The serving API: merged batch and speed views over HTTP (``/v1``), API keys, "may this stream play?"."""
