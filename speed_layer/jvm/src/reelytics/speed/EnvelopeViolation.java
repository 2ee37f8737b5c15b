package reelytics.speed;

import java.io.IOException;
import java.io.InputStream;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.time.DateTimeException;
import java.time.LocalDate;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.json.JsonReadFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import org.apache.spark.sql.api.java.UDF2;

/**
 * The speed layer's envelope check: one record's text and the time it reached Kafka -> null when the views may
 * count it, else the reason, {@code "<field>: ..."} when a field is at fault. The same verdict as the validator the
 * collector and bronze run ({@code warehouse_models.events.decode_and_validate}): Python's JSON reading (one
 * object, nothing after it, {@code NaN} and {@code Infinity} taken as numbers, a key given twice keeping its last
 * value in its first place, {@code 5} an integer and {@code 5.0} a float) and then its checks in its order.
 *
 * <p>The rules are data: {@code envelope.json} in this jar, written from {@code warehouse_models.events.
 * envelope_rules()} when the jar is built, so the field specs keep one definition. One call per record, with no
 * Spark expression per rule: a plan of 139 checks cost more to plan and generate code for, every micro-batch, than
 * the records themselves at the speed layer's rates. Bytes that are not UTF-8 are refused before the call
 * ({@code is_valid_utf8}: Spark's string conversion would replace them).
 */
public final class EnvelopeViolation implements UDF2<String, Long, String> {

    private static final long serialVersionUID = 1L;

    /** The reason for a record that is not one JSON object (the collector's dead letter names the parse error). */
    public static final String NOT_AN_ENVELOPE = "not an envelope (not one JSON object)";

    private static final Object JSON_NULL = new Object();

    private static final JsonFactory JSON = JsonFactory.builder()
        .enable(JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS)
        .build();

    private static final Rules RULES = Rules.load();

    @Override
    public String call(String raw, Long receivedMicros) {
        if (raw == null || receivedMicros == null) {
            return NOT_AN_ENVELOPE;
        }
        try {
            return violation(raw, receivedMicros);
        } catch (RuntimeException e) {  // never fail a micro-batch over one record
            return NOT_AN_ENVELOPE;
        }
    }

    /** Null when the record passes, else the first failed check's reason. */
    public static String violation(String raw, long receivedMicros) {
        Object root;
        try {
            root = parse(raw);
        } catch (IOException | RuntimeException e) {
            return NOT_AN_ENVELOPE;
        }
        if (!(root instanceof Map)) {
            return NOT_AN_ENVELOPE;
        }
        @SuppressWarnings("unchecked")
        Map<String, Object> event = (Map<String, Object>) root;
        return RULES.check(event, receivedMicros);
    }

    // --- reading JSON as Python's json.loads does ------------------------------------------------------------

    private static Object parse(String raw) throws IOException {
        try (JsonParser parser = JSON.createParser(raw)) {
            JsonToken first = parser.nextToken();
            if (first == null) {
                throw new IOException("empty");
            }
            Object root = value(parser, first);
            if (parser.nextToken() != null) {
                throw new IOException("text after the value");
            }
            return root;
        }
    }

    private static Object value(JsonParser parser, JsonToken token) throws IOException {
        switch (token) {
            case START_OBJECT: {
                Map<String, Object> object = new LinkedHashMap<>();
                for (JsonToken next = parser.nextToken(); next != JsonToken.END_OBJECT; next = parser.nextToken()) {
                    String name = parser.currentName();
                    object.put(name, value(parser, parser.nextToken()));
                }
                return object;
            }
            case START_ARRAY: {
                List<Object> array = new ArrayList<>();
                for (JsonToken next = parser.nextToken(); next != JsonToken.END_ARRAY; next = parser.nextToken()) {
                    array.add(value(parser, next));
                }
                return array;
            }
            case VALUE_STRING:
                return parser.getText();
            case VALUE_NUMBER_INT:
                return parser.getBigIntegerValue();
            case VALUE_NUMBER_FLOAT: {
                if (parser.isNaN()) {
                    // Python reads NaN, Infinity and -Infinity only; Jackson also takes INF and +Infinity.
                    String text = parser.getText();
                    if (!text.equals("NaN") && !text.equals("Infinity") && !text.equals("-Infinity")) {
                        throw new IOException("not a JSON number: " + text);
                    }
                }
                return parser.getDoubleValue();
            }
            case VALUE_TRUE:
                return Boolean.TRUE;
            case VALUE_FALSE:
                return Boolean.FALSE;
            case VALUE_NULL:
                return JSON_NULL;
            default:
                throw new IOException("unexpected " + token);
        }
    }

    // --- the rules -----------------------------------------------------------------------------------------

    static boolean isUnicode(String text) {
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (Character.isHighSurrogate(c)) {
                if (i + 1 >= text.length() || !Character.isLowSurrogate(text.charAt(i + 1))) {
                    return false;
                }
                i++;
            } else if (Character.isLowSurrogate(c)) {
                return false;
            }
        }
        return true;
    }

    static int characters(String text) {
        return text.codePointCount(0, text.length());
    }

    /** A check's outcome: a reason, or the value it passed (a timestamp as epoch microseconds). */
    private static final class Outcome {
        final String reason;
        final long micros;

        Outcome(String reason, long micros) {
            this.reason = reason;
            this.micros = micros;
        }

        static final Outcome PASS = new Outcome(null, 0);

        static Outcome refuse(String reason) {
            return new Outcome(reason, 0);
        }
    }

    private static final class Field {
        final String name;
        final String type;
        final Set<String> allowedFor = new HashSet<>();
        final Integer maxLength;
        final Set<String> choices;
        final Pattern pattern;
        final BigDecimal minimum;
        final BigDecimal maximum;

        Field(JsonNode spec) {
            name = spec.get("name").asText();
            type = spec.get("type").asText();
            spec.get("allowed_for").forEach(t -> allowedFor.add(t.asText()));
            maxLength = spec.get("max_length").isNull() ? null : spec.get("max_length").asInt();
            if (spec.get("choices").isNull()) {
                choices = null;
            } else {
                choices = new HashSet<>();
                spec.get("choices").forEach(c -> choices.add(c.asText()));
            }
            pattern = spec.get("pattern").isNull() ? null : Pattern.compile(spec.get("pattern").asText());
            minimum = spec.get("minimum").isNull() ? null : new BigDecimal(spec.get("minimum").asDouble());
            maximum = spec.get("maximum").isNull() ? null : new BigDecimal(spec.get("maximum").asDouble());
        }

        Outcome check(Object value, Rules rules) {
            switch (type) {
                case "string":
                    return checkString(value);
                case "int":
                case "long":
                    return checkInteger(value);
                case "double":
                    return checkDouble(value);
                case "boolean":
                    return value instanceof Boolean ? Outcome.PASS : Outcome.refuse("must be true or false");
                case "timestamp":
                    return rules.timestamp(value);
                case "date":
                    return rules.date(value);
                case "array<string>":
                    return checkStrings(value, rules.maxStringLength);
                default:
                    return Outcome.refuse("no check for column type " + type);
            }
        }

        private Outcome checkString(Object value) {
            if (!(value instanceof String)) {
                return Outcome.refuse("must be a string");
            }
            String text = (String) value;
            if (!isUnicode(text)) {
                return Outcome.refuse("is not valid Unicode (a lone surrogate)");
            }
            if (maxLength != null && characters(text) > maxLength) {
                return Outcome.refuse("longer than " + maxLength + " characters");
            }
            if (choices != null && !choices.contains(text)) {
                return Outcome.refuse("not one of the choices");
            }
            if (pattern != null && !pattern.matcher(text).matches()) {
                return Outcome.refuse("has characters not allowed");
            }
            return Outcome.PASS;
        }

        private Outcome checkInteger(Object value) {
            BigDecimal number;
            if (value instanceof BigInteger) {
                number = new BigDecimal((BigInteger) value);
            } else if (value instanceof Double && isInteger((Double) value)) {
                number = new BigDecimal((Double) value);  // 5.0 is an integer to the validator, 5.5 is not
            } else {
                return Outcome.refuse("must be an integer");
            }
            return inRange(number);
        }

        private Outcome checkDouble(Object value) {
            double number;
            if (value instanceof BigInteger) {
                number = ((BigInteger) value).doubleValue();
            } else if (value instanceof Double) {
                number = (Double) value;
            } else {
                return Outcome.refuse("must be a number");
            }
            if (Double.isNaN(number) || Double.isInfinite(number)) {
                return Outcome.refuse("must be a finite number");
            }
            return inRange(new BigDecimal(number));
        }

        private Outcome inRange(BigDecimal number) {
            if (minimum != null && number.compareTo(minimum) < 0) {
                return Outcome.refuse("below the minimum");
            }
            if (maximum != null && number.compareTo(maximum) > 0) {
                return Outcome.refuse("above the maximum");
            }
            return Outcome.PASS;
        }

        private static boolean isInteger(double value) {
            return !Double.isNaN(value) && !Double.isInfinite(value) && value == Math.floor(value);
        }

        private static Outcome checkStrings(Object value, int maxStringLength) {
            if (!(value instanceof List)) {
                return Outcome.refuse("must be a list of strings");
            }
            List<?> items = (List<?>) value;
            for (Object item : items) {
                if (!(item instanceof String)) {
                    return Outcome.refuse("must be a list of strings");
                }
            }
            for (Object item : items) {
                if (!isUnicode((String) item)) {
                    return Outcome.refuse("holds a string that is not valid Unicode (a lone surrogate)");
                }
            }
            if (items.size() > 64) {
                return Outcome.refuse("more than 64 strings");
            }
            for (Object item : items) {
                if (characters((String) item) > maxStringLength) {
                    return Outcome.refuse("a string longer than " + maxStringLength + " characters");
                }
            }
            return Outcome.PASS;
        }
    }

    private static final class Rules {
        final Set<String> eventTypes = new HashSet<>();
        final Set<BigInteger> schemaVersions = new HashSet<>();
        final long maxAgeMicros;
        final long maxSkewMicros;
        final int maxStringLength;
        final Pattern timestampPattern;
        final Pattern datePattern;
        final Map<String, Field> fields = new HashMap<>();
        final Map<String, List<String>> required = new HashMap<>();

        Rules(JsonNode spec) {
            spec.get("event_types").forEach(t -> eventTypes.add(t.asText()));
            spec.get("schema_versions").forEach(v -> schemaVersions.add(v.bigIntegerValue()));
            maxAgeMicros = spec.get("max_age_micros").asLong();
            maxSkewMicros = spec.get("max_skew_micros").asLong();
            maxStringLength = spec.get("max_string_length").asInt();
            timestampPattern = Pattern.compile(spec.get("timestamp_pattern").asText());
            datePattern = Pattern.compile(spec.get("date_pattern").asText());
            for (JsonNode node : spec.get("fields")) {
                Field field = new Field(node);
                fields.put(field.name, field);
                node.get("required_for").forEach(
                    t -> required.computeIfAbsent(t.asText(), k -> new ArrayList<>()).add(field.name));
            }
        }

        static Rules load() {
            try (InputStream in = EnvelopeViolation.class.getResourceAsStream("envelope.json")) {
                if (in == null) {
                    throw new IllegalStateException("envelope.json is missing from Reelytics' jar: rebuild it "
                        + "(python -m infra.jvm)");
                }
                return new Rules(new ObjectMapper().readTree(in));
            } catch (IOException e) {
                throw new IllegalStateException("cannot read envelope.json from Reelytics' jar", e);
            }
        }

        /** The validator's checks, in its order, on a record that is one JSON object. */
        String check(Map<String, Object> event, long receivedMicros) {
            Object version = event.get("schema_version");
            if (version == null || version == JSON_NULL) {
                return "schema_version: is required";
            }
            if (!(version instanceof BigInteger)) {
                return "schema_version: must be an integer";
            }
            if (!schemaVersions.contains(version)) {
                return "schema_version: not supported";
            }
            Object type = event.get("event_type");
            if (type == null || type == JSON_NULL) {
                return "event_type: is required";
            }
            if (!(type instanceof String) || !eventTypes.contains(type)) {
                return "event_type: not a known event type";
            }
            Set<String> present = new HashSet<>();
            long eventMicros = 0;
            for (Map.Entry<String, Object> entry : event.entrySet()) {
                String name = entry.getKey();
                Object value = entry.getValue();
                Field field = fields.get(name);
                if (field == null) {
                    return printable(name.length() > 64 ? name.substring(0, 64) : name)
                        + ": is not a field of the envelope";
                }
                if (value == JSON_NULL) {
                    continue;
                }
                if (!field.allowedFor.contains(type)) {
                    return name + ": does not belong on this event type";
                }
                Outcome outcome = field.check(value, this);
                if (outcome.reason != null) {
                    return name + ": " + outcome.reason;
                }
                present.add(name);
                if (name.equals("event_timestamp")) {
                    eventMicros = outcome.micros;
                }
            }
            for (String name : required.getOrDefault(type, List.of())) {
                if (!present.contains(name)) {
                    return name + ": is required on this event type";
                }
            }
            if (eventMicros > receivedMicros + maxSkewMicros) {
                return "event_timestamp: too far in the future";
            }
            if (eventMicros < receivedMicros - maxAgeMicros) {
                return "event_timestamp: too far in the past";
            }
            return null;
        }

        /** The one timestamp form, as a calendar time (Python's {@code datetime.fromisoformat} after the pattern). */
        Outcome timestamp(Object value) {
            if (!(value instanceof String) || ((String) value).length() > 40) {
                return Outcome.refuse("must be an ISO-8601 string with a time zone");
            }
            String text = (String) value;
            if (!timestampPattern.matcher(text).matches()) {
                return Outcome.refuse("must be an ISO-8601 string with a time zone");
            }
            try {
                LocalDateTime local = LocalDateTime.of(
                    Integer.parseInt(text.substring(0, 4)), Integer.parseInt(text.substring(5, 7)),
                    Integer.parseInt(text.substring(8, 10)), Integer.parseInt(text.substring(11, 13)),
                    Integer.parseInt(text.substring(14, 16)), Integer.parseInt(text.substring(17, 19)));
                int at = 19;
                long micros = 0;
                if (text.charAt(at) == '.') {
                    int end = at + 1;
                    while (Character.isDigit(text.charAt(end))) {
                        end++;
                    }
                    String digits = (text.substring(at + 1, end) + "000000").substring(0, 6);
                    micros = Long.parseLong(digits);
                    at = end;
                }
                ZoneOffset offset = ZoneOffset.UTC;
                if (text.charAt(at) != 'Z') {
                    int sign = text.charAt(at) == '-' ? -1 : 1;
                    offset = ZoneOffset.ofHoursMinutes(sign * Integer.parseInt(text.substring(at + 1, at + 3)),
                                                       sign * Integer.parseInt(text.substring(at + 4, at + 6)));
                }
                return new Outcome(null, local.toEpochSecond(offset) * 1_000_000L + micros);
            } catch (DateTimeException | NumberFormatException | IndexOutOfBoundsException e) {
                return Outcome.refuse("is not a valid timestamp");
            }
        }

        /** YYYY-MM-DD and a calendar date (Python's {@code strptime("%Y-%m-%d")}: years 1 to 9999). */
        Outcome date(Object value) {
            if (!(value instanceof String) || !datePattern.matcher((String) value).matches()) {
                return Outcome.refuse("must be a date YYYY-MM-DD");
            }
            String text = (String) value;
            try {
                int year = Integer.parseInt(text.substring(0, 4));
                if (year < 1) {
                    return Outcome.refuse("is not a calendar date");
                }
                LocalDate.of(year, Integer.parseInt(text.substring(5, 7)), Integer.parseInt(text.substring(8, 10)));
                return Outcome.PASS;
            } catch (DateTimeException | NumberFormatException e) {
                return Outcome.refuse("is not a calendar date");
            }
        }
    }

    /** A name quoted in a reason, with a lone surrogate escaped, so the reason can be encoded anywhere. */
    private static String printable(String text) {
        if (isUnicode(text)) {
            return text;
        }
        StringBuilder out = new StringBuilder();
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (Character.isSurrogate(c)
                && !(Character.isHighSurrogate(c) && i + 1 < text.length()
                     && Character.isLowSurrogate(text.charAt(i + 1)))
                && !(Character.isLowSurrogate(c) && i > 0 && Character.isHighSurrogate(text.charAt(i - 1)))) {
                out.append(String.format("\\u%04x", (int) c));
            } else {
                out.append(c);
            }
        }
        return out.toString();
    }
}
