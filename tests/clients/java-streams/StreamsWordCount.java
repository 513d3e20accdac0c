// A Kafka Streams word count with processing.guarantee=exactly_once_v2, for tests/streams_switch.rs: the
// input topic's records are words (key = the word), the output topic gets word -> count (Long) on every update.
// One sub-topology (groupByKey: no repartition topic), counts in an in-memory store (its changelog topic is
// `<application_id>-counts-changelog`), one stream thread.
//
//   java -cp <classes>:<libs>/* StreamsWordCount run bootstrap=B input=T output=O application_id=A state_dir=D
//        stop_file=F [timeout_ms=M] [commit_interval_ms=C] [session_timeout_ms=S] [on_error=shutdown|replace]
//
// Runs until the file F exists (or M ms passed, default 600000), then closes the application and prints its
// result. JSON lines on stdout, as tests/clients/java/Driver.java does:
//   {"processed": n}          every 100 records through the topology (records read again count again)
//   {"markers": n, "marker": "end-..."}   a record with a key `end-...` not seen before went through the
//                             topology; n counts the distinct ones (the test's end-of-phase markers)
//   {"state": "S", "transitions": n}   each state change of the application (REBALANCING, RUNNING, ...)
//   {"restore_start": "topic-p", "from": o, "to": o}, {"restored": total, "partition": "topic-p", "records": n}
//                             state restored from the changelog
//   result: {"client": "java-streams", "version": V, "processed": n, "transitions": n, "restored": n,
//            "final_state": "S", "replaced_threads": n, "replace_reasons": [...], "errors": [...]} -- errors are
//            the exceptions that reached the application's uncaught-exception handler, which shuts the application
//            down (SHUTDOWN_CLIENT, the default); with on_error=replace it replaces the stream thread instead
//            (REPLACE_THREAD) and the exception is counted in replaced_threads, with a progress line
//            {"replaced_threads": n, "error": "..."}.
// Exit status: 0 when no error reached the application and it was still running when told to stop, 1 otherwise,
// 2 for a bad command line.

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.processor.StateRestoreListener;
import org.apache.kafka.streams.state.Stores;

public final class StreamsWordCount {
    private static final String CLIENT = "java-streams";
    private static final String VERSION = streamsVersion();
    private static final Set<String> KEYS = Set.of("bootstrap", "input", "output", "application_id", "state_dir",
            "stop_file", "timeout_ms", "commit_interval_ms", "session_timeout_ms", "on_error");

    public static void main(String[] argv) {
        if (argv.length < 1 || !argv[0].equals("run")) {
            System.err.println("usage: StreamsWordCount run key=value...");
            System.exit(2);
        }
        Map<String, String> args = new HashMap<>();
        for (String arg : List.of(argv).subList(1, argv.length)) {
            int eq = arg.indexOf('=');
            if (eq <= 0 || !KEYS.contains(arg.substring(0, eq))) {
                System.err.println("expected key=value with a key of " + KEYS + ", got " + arg);
                System.exit(2);
            }
            args.put(arg.substring(0, eq), arg.substring(eq + 1));
        }
        for (String key : List.of("bootstrap", "input", "output", "application_id", "state_dir", "stop_file")) {
            if (!args.containsKey(key)) {
                System.err.println("missing " + key + "=");
                System.exit(2);
            }
        }
        boolean ok = run(args);
        System.out.flush();
        System.exit(ok ? 0 : 1);
    }

    private static boolean run(Map<String, String> args) {
        Properties props = new Properties();
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, args.get("application_id"));
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, args.get("bootstrap"));
        props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
        props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, args.getOrDefault("commit_interval_ms", "200"));
        props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, "1");
        props.put(StreamsConfig.STATE_DIR_CONFIG, args.get("state_dir"));
        // No record cache: every count update goes to the changelog and the output as it happens.
        props.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, "0");
        // A member lost with its cluster leaves the group it was in soon (the default is 45 s).
        props.put(StreamsConfig.consumerPrefix(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG),
                args.getOrDefault("session_timeout_ms", "10000"));

        AtomicLong processed = new AtomicLong();
        Set<String> markers = ConcurrentHashMap.newKeySet();
        StreamsBuilder builder = new StreamsBuilder();
        builder.stream(args.get("input"), Consumed.with(Serdes.String(), Serdes.String()))
                .peek((word, value) -> {
                    long n = processed.incrementAndGet();
                    if (n % 100 == 0) {
                        emit("{\"processed\": " + n + "}");
                    }
                    if (word != null && word.startsWith("end-") && markers.add(word)) {
                        emit("{\"markers\": " + markers.size() + ", \"marker\": " + json(word) + "}");
                    }
                })
                .groupByKey()
                .count(Materialized.<String, Long>as(Stores.inMemoryKeyValueStore("counts"))
                        .withKeySerde(Serdes.String())
                        .withValueSerde(Serdes.Long()))
                .toStream()
                .to(args.get("output"), Produced.with(Serdes.String(), Serdes.Long()));

        List<String> errors = Collections.synchronizedList(new ArrayList<>());
        AtomicLong transitions = new AtomicLong();
        AtomicLong restored = new AtomicLong();
        KafkaStreams streams = new KafkaStreams(builder.build(), props);
        streams.setStateListener((now, before) -> emit("{\"state\": " + json(now.name()) + ", \"from\": "
                + json(before.name()) + ", \"transitions\": " + transitions.incrementAndGet() + "}"));
        boolean replace = "replace".equals(args.getOrDefault("on_error", "shutdown"));
        List<String> replaced = Collections.synchronizedList(new ArrayList<>());
        streams.setUncaughtExceptionHandler(error -> {
            if (replace) {
                replaced.add(describe(error));
                emit("{\"replaced_threads\": " + replaced.size() + ", \"error\": " + json(describe(error)) + "}");
                return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.REPLACE_THREAD;
            }
            errors.add(describe(error));
            return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        streams.setGlobalStateRestoreListener(new StateRestoreListener() {
            @Override
            public void onRestoreStart(TopicPartition partition, String store, long from, long to) {
                emit("{\"restore_start\": " + json(partition.toString()) + ", \"from\": " + from + ", \"to\": " + to
                        + "}");
            }

            @Override
            public void onBatchRestored(TopicPartition partition, String store, long batchEnd, long records) {
            }

            @Override
            public void onRestoreEnd(TopicPartition partition, String store, long records) {
                emit("{\"restored\": " + restored.addAndGet(records) + ", \"partition\": "
                        + json(partition.toString()) + ", \"records\": " + records + "}");
            }
        });

        Path stop = Path.of(args.get("stop_file"));
        long deadline = System.nanoTime() + Long.parseLong(args.getOrDefault("timeout_ms", "600000")) * 1_000_000L;
        streams.start();
        boolean told = false;
        try {
            while (System.nanoTime() < deadline) {
                if (Files.exists(stop)) {
                    told = true;
                    break;
                }
                KafkaStreams.State state = streams.state();
                if (state == KafkaStreams.State.ERROR || state == KafkaStreams.State.NOT_RUNNING
                        || state == KafkaStreams.State.PENDING_ERROR) {
                    break;
                }
                Thread.sleep(100);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        KafkaStreams.State before = streams.state();
        boolean running = before == KafkaStreams.State.RUNNING || before == KafkaStreams.State.REBALANCING;
        if (!told) {
            errors.add(running ? "not told to stop within timeout_ms" : "the application stopped: " + before);
        }
        streams.close(Duration.ofSeconds(30));
        List<String> reported;
        synchronized (errors) {
            reported = new ArrayList<>(errors);
        }
        List<String> replacedReasons;
        synchronized (replaced) {
            replacedReasons = new ArrayList<>(replaced);
        }
        emit("{\"client\": " + json(CLIENT) + ", \"version\": " + json(VERSION) + ", \"processed\": "
                + processed.get() + ", \"transitions\": " + transitions.get() + ", \"restored\": " + restored.get()
                + ", \"final_state\": " + json(before.name()) + ", \"replaced_threads\": " + replacedReasons.size()
                + ", \"replace_reasons\": " + json(replacedReasons) + ", \"errors\": " + json(reported) + "}");
        return told && running && reported.isEmpty();
    }

    private static String streamsVersion() {
        try (InputStream in = KafkaStreams.class.getResourceAsStream("/kafka/kafka-streams-version.properties")) {
            Properties props = new Properties();
            if (in != null) {
                props.load(in);
            }
            return props.getProperty("version", "unknown");
        } catch (IOException e) {
            return "unknown";
        }
    }

    private static synchronized void emit(String line) {
        System.out.println(line);
        System.out.flush();
    }

    /** The exception and its causes, `Class: message` each. */
    private static String describe(Throwable error) {
        StringBuilder out = new StringBuilder();
        for (Throwable e = error; e != null; e = e.getCause() == e ? null : e.getCause()) {
            if (out.length() > 0) {
                out.append(" <- ");
            }
            out.append(e.getClass().getSimpleName()).append(": ").append(e.getMessage());
        }
        return out.toString();
    }

    private static String json(List<String> values) {
        StringBuilder out = new StringBuilder("[");
        for (int i = 0; i < values.size(); i++) {
            if (i > 0) {
                out.append(", ");
            }
            out.append(json(values.get(i)));
        }
        return out.append(']').toString();
    }

    private static String json(String value) {
        if (value == null) {
            return "null";
        }
        StringBuilder out = new StringBuilder("\"");
        for (char c : value.toCharArray()) {
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
