"""One definition of each metric, shared by the speed layer, the batch layer and the checks.

One module per metric: its fields, the pure transform from valid events to its rows (the same function on a
streaming micro-batch and on a batch frame of silver's events) and, where the batch layer needs it, the reader of
its speed view. The speed layer's modules of the same names write the views; the batch layer's marts, publication
and reconciliation import from here, never from ``speed_layer``.
"""
