package reelytics.speed;

import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicInteger;

import org.apache.spark.sql.streaming.StreamingQueryListener;

/**
 * A {@code StreamingQueryListener} that keeps each query event as one JSON line (Spark's progress JSON is compact,
 * and the strings this class writes are escaped) until Python takes them all with {@link #drain()}: one call into
 * the JVM per poll, whatever the number of queries and batches.
 *
 * <p>A listener written in Python gets each event converted field by field through the JVM gateway (tens of
 * calls per progress, each looking names up on the class path); on two cores that cost about a tenth of a core
 * per query at a 1 s trigger. The progress' own JSON is what {@code speed_layer.progress} reads anyway.
 *
 * <p>Lines: {@code {"kind":"progress","progress":{...}}}, {@code {"kind":"started","name":...,"id":...}},
 * {@code {"kind":"terminated","id":...,"exception":...}}.
 */
public final class ProgressBuffer extends StreamingQueryListener {

    /** Events kept when nobody drains (a stopped poller): the oldest are dropped beyond this. */
    private static final int MAX_KEPT = 10_000;

    private final ConcurrentLinkedQueue<String> events = new ConcurrentLinkedQueue<>();
    private final AtomicInteger kept = new AtomicInteger();

    @Override
    public void onQueryStarted(QueryStartedEvent event) {
        add("{\"kind\":\"started\",\"name\":" + quote(event.name()) + ",\"id\":" + quote(event.id().toString())
            + "}");
    }

    @Override
    public void onQueryProgress(QueryProgressEvent event) {
        add("{\"kind\":\"progress\",\"progress\":" + event.progress().json() + "}");
    }

    @Override
    public void onQueryIdle(QueryIdleEvent event) {
        // Nothing to keep: an idle trigger has no progress.
    }

    @Override
    public void onQueryTerminated(QueryTerminatedEvent event) {
        String exception = event.exception().isDefined() ? quote(event.exception().get()) : "null";
        add("{\"kind\":\"terminated\",\"id\":" + quote(event.id().toString()) + ",\"exception\":" + exception + "}");
    }

    /** Every event kept since the last call, oldest first, one JSON object per line. */
    public String drain() {
        StringBuilder out = new StringBuilder();
        String line;
        while ((line = events.poll()) != null) {
            kept.decrementAndGet();
            out.append(line).append('\n');
        }
        return out.toString();
    }

    private void add(String line) {
        events.add(line);
        if (kept.incrementAndGet() > MAX_KEPT && events.poll() != null) {
            kept.decrementAndGet();
        }
    }

    static String quote(String value) {
        if (value == null) {
            return "null";
        }
        StringBuilder out = new StringBuilder("\"");
        for (int i = 0; i < value.length(); i++) {
            char c = value.charAt(i);
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\t' -> out.append("\\t");
                default -> {
                    if (c < 0x20) {
                        out.append(String.format("\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
                }
            }
        }
        return out.append('"').toString();
    }
}
