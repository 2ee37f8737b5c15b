"""Reconciliation: the speed layer's buckets against the batch result, per closed hour and additive view."""
