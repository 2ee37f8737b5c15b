"""Publish assets: batch views to Redis as of W, and the speed-vs-batch reconciliation with its drift check."""
