"""Batch views published to Redis as of a watermark W: one module per view, one for the versioned write."""
