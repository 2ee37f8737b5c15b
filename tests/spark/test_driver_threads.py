"""The driver JVM's threads have the stack Spark needs to stop a streaming query in the middle of a micro-batch.

Stopping a query while its ``foreachBatch`` runs a Spark job makes the Python function fail with py4j's error, whose
text holds a whole Java stack trace; Spark then matches that text with ``PROXY_ERROR`` (``StreamExecution.
isInterruptionException``), a regex that recurses once per character. With the JVM's default thread stack the
stream thread died of a ``StackOverflowError`` on such a text and printed a thousand-frame stack. The session's
driver options give every thread 16 MB (``infra.spark``); this runs Spark's regex on the same kind of text on one
of the JVM's threads.
"""

from __future__ import annotations

PROXY_ERROR = "py4j.protocol.Py4JJavaError: An error occurred while calling((.|\r\n|\r|\n)*)"
"""Spark's pattern (``StreamExecution.PROXY_ERROR``, Spark 4.x)."""


def _error_text(lines: int) -> str:
    """py4j's error text for a job cancelled under a ``toArrow`` call: a header and a Java stack trace."""
    frame = "\tat org.apache.spark.scheduler.DAGScheduler.handleJobCancellation(DAGScheduler.scala:1234)\n"
    return "py4j.protocol.Py4JJavaError: An error occurred while calling o812.toArrow.\n" + frame * lines


def test_spark_matches_a_long_interruption_text_without_running_out_of_stack(spark) -> None:
    pattern = spark._jvm.java.util.regex.Pattern.compile(PROXY_ERROR)
    # 300 frames, about 27,000 characters (on the JVM's default stack this pattern overflowed at 2,000).
    assert pattern.matcher(_error_text(300)).matches()
