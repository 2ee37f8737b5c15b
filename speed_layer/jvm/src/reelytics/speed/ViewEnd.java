package reelytics.speed;

import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.List;

import org.apache.spark.api.java.function.MapFunction;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.streaming.ExpiredTimerInfo;
import org.apache.spark.sql.streaming.OutputMode;
import org.apache.spark.sql.streaming.StatefulProcessor;
import org.apache.spark.sql.streaming.TTLConfig;
import org.apache.spark.sql.streaming.TimeMode;
import org.apache.spark.sql.streaming.TimerValues;
import org.apache.spark.sql.streaming.ValueState;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;

import scala.jdk.javaapi.CollectionConverters;

/**
 * view_end per session in Spark's own state store: {@code transformWithState} keyed by session id, one value per
 * open session, an event-time timer at its last event plus the heartbeat timeout. The rule is the one
 * {@code speed_layer.view_end} documents (its Python {@code SessionTracker} is the reference the tests hold this
 * class to): a session ends explicitly at once, in the micro-batch where its first play_end or fatal error
 * arrives, and by heartbeat timeout once the watermark passes its last event plus the timeout.
 *
 * <p>Input rows: {@link #INPUT_DDL}. Output rows: {@link #OUTPUT_DDL} (the session's facts; the Python side turns
 * them into the view_end envelope).
 */
public final class ViewEnd {

    /** Columns the processor reads, in this order. */
    public static final String INPUT_DDL =
        "session_id STRING, event_type STRING, event_ms BIGINT, account_id STRING, user_id STRING, "
        + "device_id STRING, device_type STRING, country STRING, content_id STRING, is_live BOOLEAN, "
        + "position_seconds DOUBLE, player_state STRING, error_fatal BOOLEAN, error_code STRING, "
        + "duration_seconds DOUBLE";

    /** Columns of the rows it emits, in this order. */
    public static final String OUTPUT_DDL =
        "session_id STRING, end_reason STRING, event_ms BIGINT, account_id STRING, user_id STRING, "
        + "device_id STRING, device_type STRING, country STRING, content_id STRING, is_live BOOLEAN, "
        + "duration_seconds DOUBLE, position_seconds DOUBLE, playing_heartbeats BIGINT, requested BOOLEAN, "
        + "first_frame_ms BIGINT, fatal_ms BIGINT, fatal_code STRING, play_end_ms BIGINT";

    private static final int SESSION = 0, TYPE = 1, MS = 2, FIRST_IDENTITY = 3, LAST_IDENTITY = 9,
        POSITION = 10, PLAYER_STATE = 11, ERROR_FATAL = 12, ERROR_CODE = 13, DURATION = 14;

    private ViewEnd() {
    }

    /** The view_end rows of a streaming frame of {@link #INPUT_DDL} columns with an event-time watermark. */
    public static Dataset<Row> rows(Dataset<Row> events, long timeoutMs) {
        StructField[] expected = StructType.fromDDL(INPUT_DDL).fields();
        StructField[] given = events.schema().fields();
        for (int i = 0; i < expected.length; i++) {
            if (i >= given.length || !given[i].name().equals(expected[i].name())
                || !given[i].dataType().equals(expected[i].dataType())) {
                throw new IllegalArgumentException("ViewEnd.rows needs the columns " + INPUT_DDL + " first, in this "
                                                   + "order; got " + events.schema().toDDL());
            }
        }
        StructType output = StructType.fromDDL(OUTPUT_DDL);
        return events
            .groupByKey((MapFunction<Row, String>) row -> row.getString(SESSION), Encoders.STRING())
            .transformWithState(new Processor(timeoutMs), TimeMode.EventTime(), OutputMode.Append(),
                                Encoders.row(output));
    }

    /** The state of one open session, as Spark stores it (a schema Spark checks against the checkpoint's). */
    public static final String STATE_DDL =
        "account_id STRING, user_id STRING, device_id STRING, device_type STRING, country STRING, "
        + "content_id STRING, is_live BOOLEAN, duration_seconds DOUBLE, last_ms BIGINT, position_seconds DOUBLE, "
        + "position_ms BIGINT, playing_heartbeats BIGINT, requested BOOLEAN, first_frame_ms BIGINT, fatal_ms BIGINT, "
        + "fatal_code STRING, play_end_ms BIGINT, emitted BOOLEAN";

    /** One open session: what {@code SessionTracker} keeps. */
    public static final class Session {
        /** account, user, device, device type, country, title: the first non-null of each, in the order the
         *  session's events were folded (by event time within a micro-batch, micro-batch after micro-batch). */
        String[] identity = new String[6];
        Boolean isLive;
        Double durationSeconds;
        Long lastMs;
        Double positionSeconds;
        Long positionMs;
        long playingHeartbeats;
        boolean requested;
        Long firstFrameMs;
        Long fatalMs;
        String fatalCode;
        Long playEndMs;
        boolean emitted;

        Long explicitEndMs() {
            if (playEndMs == null) {
                return fatalMs;
            }
            return fatalMs == null ? playEndMs : Math.min(playEndMs, fatalMs);
        }

        void observe(Row event) {
            long ms = event.getLong(MS);
            for (int i = FIRST_IDENTITY; i < LAST_IDENTITY; i++) {
                if (identity[i - FIRST_IDENTITY] == null && !event.isNullAt(i)) {
                    identity[i - FIRST_IDENTITY] = event.getString(i);
                }
            }
            if (isLive == null && !event.isNullAt(LAST_IDENTITY)) {
                isLive = event.getBoolean(LAST_IDENTITY);
            }
            if (durationSeconds == null && !event.isNullAt(DURATION)) {
                durationSeconds = event.getDouble(DURATION);
            }
            lastMs = lastMs == null ? ms : Math.max(lastMs, ms);
            // Newest by event time; on equal times the later event wins.
            if (!event.isNullAt(POSITION) && (positionMs == null || ms >= positionMs)) {
                positionSeconds = event.getDouble(POSITION);
                positionMs = ms;
            }
            String kind = event.getString(TYPE);
            if ("heartbeat".equals(kind)) {
                if (!event.isNullAt(PLAYER_STATE) && "playing".equals(event.getString(PLAYER_STATE))) {
                    playingHeartbeats++;
                }
            } else if ("play_request".equals(kind)) {
                requested = true;
            } else if ("first_frame".equals(kind)) {
                firstFrameMs = firstFrameMs == null ? ms : Math.min(firstFrameMs, ms);
            } else if ("play_end".equals(kind)) {
                playEndMs = playEndMs == null ? ms : Math.min(playEndMs, ms);
            } else if ("error".equals(kind) && !event.isNullAt(ERROR_FATAL) && event.getBoolean(ERROR_FATAL)
                       && (fatalMs == null || ms < fatalMs)) {
                fatalMs = ms;
                fatalCode = event.isNullAt(ERROR_CODE) ? null : event.getString(ERROR_CODE);
            }
        }

        Row toState() {
            return RowFactory.create(identity[0], identity[1], identity[2], identity[3], identity[4], identity[5],
                                     isLive, durationSeconds, lastMs, positionSeconds, positionMs, playingHeartbeats,
                                     requested, firstFrameMs, fatalMs, fatalCode, playEndMs, emitted);
        }

        static Session fromState(Row row) {
            Session session = new Session();
            for (int i = 0; i < 6; i++) {
                session.identity[i] = row.isNullAt(i) ? null : row.getString(i);
            }
            session.isLive = row.isNullAt(6) ? null : row.getBoolean(6);
            session.durationSeconds = row.isNullAt(7) ? null : row.getDouble(7);
            session.lastMs = row.isNullAt(8) ? null : row.getLong(8);
            session.positionSeconds = row.isNullAt(9) ? null : row.getDouble(9);
            session.positionMs = row.isNullAt(10) ? null : row.getLong(10);
            session.playingHeartbeats = row.getLong(11);
            session.requested = row.getBoolean(12);
            session.firstFrameMs = row.isNullAt(13) ? null : row.getLong(13);
            session.fatalMs = row.isNullAt(14) ? null : row.getLong(14);
            session.fatalCode = row.isNullAt(15) ? null : row.getString(15);
            session.playEndMs = row.isNullAt(16) ? null : row.getLong(16);
            session.emitted = row.getBoolean(17);
            return session;
        }

        Row output(String sessionId, String reason) {
            return RowFactory.create(sessionId, reason, lastMs, identity[0], identity[1], identity[2], identity[3],
                                     identity[4], identity[5], isLive, durationSeconds, positionSeconds,
                                     playingHeartbeats, requested, firstFrameMs, fatalMs, fatalCode, playEndMs);
        }
    }

    /** The stateful processor: one {@link Session} per key, one timer per open session, set at the deadline its
     *  session had when the timer was set: when it fires at an outdated deadline it is set again at the current
     *  one, so a session ends at the same moment as with a timer moved on every event. */
    public static final class Processor extends StatefulProcessor<String, Row, Row> {
        private static final long serialVersionUID = 1L;
        private final long timeoutMs;
        private transient ValueState<Row> state;

        Processor(long timeoutMs) {
            this.timeoutMs = timeoutMs;
        }

        /** The first event time the rule ends the session at: its last event plus the timeout, passed. */
        private long deadline(Session session) {
            return session.lastMs + timeoutMs + 1;
        }

        /** Whether the watermark has passed the session's last event plus the timeout (a new event's batch). */
        private boolean due(Session session, TimerValues timers) {
            return session.lastMs + timeoutMs < timers.getCurrentWatermarkInMs();
        }

        @Override
        public void init(OutputMode outputMode, TimeMode timeMode) {
            state = getHandle().getValueState("session", Encoders.row(StructType.fromDDL(STATE_DDL)), TTLConfig.NONE());
        }

        @Override
        public scala.collection.Iterator<Row> handleInputRows(String key, scala.collection.Iterator<Row> rows,
                                                              TimerValues timers) {
            List<Row> events = new ArrayList<>(CollectionConverters.asJava(rows.toSeq()));
            events.sort(Comparator.comparingLong(row -> row.getLong(MS)));  // stable: arrival order on ties
            Row stored = state.get();  // null for a new session: one lookup, not exists() and then get()
            Session session = stored == null ? new Session() : Session.fromState(stored);
            for (Row event : events) {
                session.observe(event);
            }
            List<Row> out = new ArrayList<>(1);
            if (session.explicitEndMs() != null && !session.emitted) {
                out.add(session.output(key, "explicit_end"));
                session.emitted = true;
            }
            if (due(session, timers)) {
                if (!session.emitted) {
                    out.add(session.output(key, "heartbeat_timeout"));
                }
                state.clear();
            } else {
                state.update(session.toState());
                if (stored == null) {
                    // An open session keeps one timer; a later event leaves it where it is (moving it would cost
                    // a delete and a register, four state writes, per event), and handleExpiredTimer moves it on.
                    getHandle().registerTimer(deadline(session));
                }
            }
            return CollectionConverters.asScala(out.iterator());
        }

        @Override
        public scala.collection.Iterator<Row> handleExpiredTimer(String key, TimerValues timers,
                                                                 ExpiredTimerInfo expired) {
            Row stored = state.get();
            if (stored == null) {  // a timer of a session that ended meanwhile (explicit end, due on arrival)
                return CollectionConverters.asScala(Collections.<Row>emptyIterator());
            }
            Session session = Session.fromState(stored);
            if (!due(session, timers)) {
                // Set at an earlier deadline: the session has had events since. Its deadline now is in the future
                // (not due: last event + timeout >= the watermark), so the new timer fires in a later batch.
                getHandle().registerTimer(deadline(session));
                return CollectionConverters.asScala(Collections.<Row>emptyIterator());
            }
            state.clear();
            if (session.emitted) {
                return CollectionConverters.asScala(Collections.<Row>emptyIterator());
            }
            return CollectionConverters.asScala(List.of(session.output(key, "heartbeat_timeout")).iterator());
        }
    }
}
