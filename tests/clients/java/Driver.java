// The Java client's driver of the client matrix (tests/common/client_matrix.rs has the contract): Apache Kafka's
// kafka-clients producing and consuming through the gateway, reporting JSON lines on stdout.
//
//   java -cp <classes>:<libs>/* Driver produce bootstrap=B topic=T count=N [idempotent=true] [acks=all] [rate=R]
//        [key_prefix=K] [transactional_id=X [retry_aborted=true]] [user=U password=P mechanism=PLAIN|SCRAM-SHA-256]
//   java -cp <classes>:<libs>/* Driver consume bootstrap=B topic=T group=G count=N [protocol=classic|consumer]
//        [timeout_ms=M] [user=U password=P mechanism=...]
//
// Exit status: 0 when the command did what it was asked with no error reaching the application, 1 when it did
// not (the result line says why), 2 for a bad command line.

import java.io.IOException;
import java.io.InputStream;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.kafka.clients.CommonClientConfigs;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.config.SaslConfigs;
import org.apache.kafka.common.errors.AuthorizationException;
import org.apache.kafka.common.errors.OutOfOrderSequenceException;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.errors.TimeoutException;
import org.apache.kafka.common.errors.UnsupportedVersionException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public final class Driver {
    private static final String CLIENT = "java";
    private static final String VERSION = clientVersion();

    private static final Set<String> SASL_KEYS = Set.of("user", "password", "mechanism");
    private static final Set<String> PRODUCE_KEYS = Set.of("bootstrap", "topic", "count", "idempotent", "acks",
            "rate", "key_prefix", "transactional_id", "retry_aborted");
    private static final Set<String> CONSUME_KEYS = Set.of("bootstrap", "topic", "group", "count", "protocol",
            "timeout_ms");

    /** Thrown for a bad command line: exit status 2. */
    private static final class Usage extends Exception {
        private static final long serialVersionUID = 1L;

        Usage(String message) {
            super(message);
        }
    }

    public static void main(String[] argv) {
        try {
            if (argv.length < 1) {
                throw new Usage("usage: Driver produce|consume key=value...");
            }
            String command = argv[0];
            Map<String, String> args = parse(argv);
            boolean ok;
            switch (command) {
                case "produce" -> {
                    check(args, PRODUCE_KEYS);
                    ok = produce(args);
                }
                case "consume" -> {
                    check(args, CONSUME_KEYS);
                    ok = consume(args);
                }
                default -> throw new Usage("unknown command " + command + " (produce or consume)");
            }
            System.out.flush();
            System.exit(ok ? 0 : 1);
        } catch (Usage e) {
            System.err.println(e.getMessage());
            System.exit(2);
        }
    }

    // === produce ===

    private static boolean produce(Map<String, String> args) throws Usage {
        String topic = required(args, "topic");
        long count = number(args, "count", null);
        long rate = number(args, "rate", 0L);
        String prefix = args.getOrDefault("key_prefix", "key");
        Properties props = common(args);
        props.put(ProducerConfig.ACKS_CONFIG, args.getOrDefault("acks", "all"));
        // Set either way: the Java client's own default is idempotent, the contract's is not.
        props.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, args.getOrDefault("idempotent", "false"));
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());

        AtomicLong acked = new AtomicLong();
        List<String> errors = Collections.synchronizedList(new ArrayList<>());
        long start = System.nanoTime();
        // Java-only key: transactional_id=X produces in transactions of 100 records, each committed.
        String transactionalId = args.get("transactional_id");
        if (transactionalId != null) {
            props.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, transactionalId);
            props.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        }
        if ("true".equals(args.get("retry_aborted"))) {
            if (transactionalId == null) {
                throw new Usage("retry_aborted=true needs transactional_id=");
            }
            return produceRetryingAborted(props, topic, count, rate, prefix);
        }
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(props)) {
            if (transactionalId != null) {
                producer.initTransactions();
            }
            for (long i = 0; i < count; i++) {
                if (rate > 0) {
                    pace(start, i, rate);
                }
                if (transactionalId != null && i % 100 == 0) {
                    if (i > 0) {
                        producer.commitTransaction();
                    }
                    producer.beginTransaction();
                }
                String key = prefix + "-" + i;
                producer.send(new ProducerRecord<>(topic, key, key), (metadata, error) -> {
                    if (error != null) {
                        errors.add(key + ": " + describe(error));
                    } else {
                        long n = acked.incrementAndGet();
                        if (n % 100 == 0) {
                            emit("{\"acked\": " + n + "}");
                        }
                    }
                });
                emitSent(i);
            }
            producer.flush();
            if (transactionalId != null && count > 0) {
                producer.commitTransaction();
            }
        } catch (RuntimeException e) {
            errors.add(describe(e));
        }
        List<String> reported;
        synchronized (errors) {
            reported = new ArrayList<>(errors);
        }
        emit("{\"client\": " + json(CLIENT) + ", \"version\": " + json(VERSION)
                + ", \"produced\": " + acked.get() + ", \"errors\": " + json(reported) + "}");
        return acked.get() == count && reported.isEmpty();
    }

    /** Records per transaction. */
    private static final long TRANSACTION_SIZE = 100;
    /** Aborts of one transaction before the driver gives up on it. */
    private static final int MAX_ABORTS_PER_TRANSACTION = 20;
    /** Attempts of a commit that timed out (the commit may be under way: it may only be retried). */
    private static final int COMMIT_ATTEMPTS = 3;

    /** A fatal producer error (the producer can only be closed): the run stops. */
    private static final class Fatal extends Exception {
        private static final long serialVersionUID = 1L;

        Fatal(RuntimeException cause) {
            super(cause);
        }
    }

    /**
     * `retry_aborted=true`: transactions of 100 records as an exactly-once application writes them. A transaction
     * that fails with an abortable error (a send's callback, commitTransaction) is aborted and its records sent
     * again in a new one; a fatal error (fenced, out-of-order sequence, authorization, unsupported version, an
     * illegal state) is reported and stops the run. `produced` and the `acked` progress count records of committed
     * transactions; the result adds `aborts` and each abort's reason in `abort_reasons`.
     */
    private static boolean produceRetryingAborted(Properties props, String topic, long count, long rate,
            String prefix) {
        // A commit blocked on a coordinator that does not answer gives up after 20 s (not the default minute),
        // so COMMIT_ATTEMPTS of them end well within a test's patience.
        props.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "20000");
        List<String> errors = new ArrayList<>();
        List<String> abortReasons = new ArrayList<>();
        long committed = 0;
        long start = System.nanoTime();
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(props)) {
            producer.initTransactions();
            for (long first = 0; first < count; first += TRANSACTION_SIZE) {
                long end = Math.min(count, first + TRANSACTION_SIZE);
                int aborts = 0;
                while (true) {
                    String reason = attemptTransaction(producer, topic, prefix, first, end, start, rate);
                    if (reason == null) {
                        break;
                    }
                    abortReasons.add(prefix + "-" + first + ".." + (end - 1) + ": " + reason);
                    if (++aborts > MAX_ABORTS_PER_TRANSACTION) {
                        throw new Fatal(new KafkaException("gave up after " + aborts + " aborts: " + reason));
                    }
                }
                for (long n = committed + 1; n <= committed + (end - first); n++) {
                    if (n % 100 == 0) {
                        emit("{\"acked\": " + n + "}");
                    }
                }
                committed += end - first;
            }
        } catch (Fatal e) {
            errors.add("fatal: " + describe(e.getCause()));
        } catch (RuntimeException e) {
            errors.add(describe(e));
        }
        emit("{\"client\": " + json(CLIENT) + ", \"version\": " + json(VERSION) + ", \"produced\": " + committed
                + ", \"aborts\": " + abortReasons.size() + ", \"abort_reasons\": " + json(abortReasons)
                + ", \"errors\": " + json(errors) + "}");
        return committed == count && errors.isEmpty();
    }

    /**
     * One transaction of records `first` .. `end - 1`: null once committed, the reason when it was aborted.
     * Throws [Fatal] on an error the producer cannot recover from.
     */
    private static String attemptTransaction(KafkaProducer<String, String> producer, String topic, String prefix,
            long first, long end, long start, long rate) throws Fatal {
        List<String> failedSends = Collections.synchronizedList(new ArrayList<>());
        try {
            producer.beginTransaction();
            for (long i = first; i < end; i++) {
                if (rate > 0) {
                    pace(start, i, rate);
                }
                String key = prefix + "-" + i;
                producer.send(new ProducerRecord<>(topic, key, key), (metadata, error) -> {
                    if (error != null) {
                        failedSends.add(key + ": " + describe(error));
                    }
                });
                emitSent(i);
            }
            commitRetryingTimeouts(producer);
            return null;
        } catch (ProducerFencedException | OutOfOrderSequenceException | AuthorizationException
                | UnsupportedVersionException | IllegalStateException e) {
            throw new Fatal(e);
        } catch (KafkaException e) {
            String reason = describe(e);
            synchronized (failedSends) {
                if (!failedSends.isEmpty()) {
                    reason += " (first failed send " + failedSends.get(0) + ")";
                }
            }
            try {
                producer.abortTransaction();
            } catch (KafkaException | IllegalStateException abortError) {
                throw new Fatal(new KafkaException("abortTransaction after " + reason + " failed: "
                        + describe(abortError), abortError));
            }
            return reason;
        }
    }

    /** commitTransaction, again when it timed out (it may be under way; aborting is not allowed then). */
    private static void commitRetryingTimeouts(KafkaProducer<String, String> producer) {
        for (int attempt = 1; ; attempt++) {
            try {
                producer.commitTransaction();
                return;
            } catch (TimeoutException e) {
                if (attempt >= COMMIT_ATTEMPTS) {
                    throw new IllegalStateException("commitTransaction timed out " + attempt + " times", e);
                }
            }
        }
    }

    /** `{"sent": n}` once record `index` is the n-th handed to the producer, n a multiple of 100. */
    private static void emitSent(long index) {
        if ((index + 1) % 100 == 0) {
            emit("{\"sent\": " + (index + 1) + "}");
        }
    }

    /** Sleeps until record `index` is due at `rate` records per second from `startNanos`. */
    private static void pace(long startNanos, long index, long rate) {
        long due = startNanos + index * 1_000_000_000L / rate;
        long wait = due - System.nanoTime();
        if (wait > 0) {
            try {
                Thread.sleep(wait / 1_000_000L, (int) (wait % 1_000_000L));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }

    // === consume ===

    private static boolean consume(Map<String, String> args) throws Usage {
        String topic = required(args, "topic");
        String group = required(args, "group");
        long count = number(args, "count", null);
        long timeoutMs = number(args, "timeout_ms", 60_000L);
        String protocol = args.getOrDefault("protocol", "classic");
        if (!protocol.equals("classic") && !protocol.equals("consumer")) {
            throw new Usage("protocol must be classic or consumer, not " + protocol);
        }
        Properties props = common(args);
        props.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        props.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, protocol);
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        // Aborted and open transactions' records are not the application's (the Java default reads them).
        props.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());

        Set<String> keys = new LinkedHashSet<>();
        List<String> errors = new ArrayList<>();
        long records = 0;
        long deadline = System.nanoTime() + timeoutMs * 1_000_000L;
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(props)) {
            consumer.subscribe(List.of(topic));
            while (keys.size() < count && System.nanoTime() < deadline) {
                try {
                    ConsumerRecords<String, String> batch = consumer.poll(Duration.ofMillis(500));
                    for (ConsumerRecord<String, String> record : batch) {
                        keys.add(record.key());
                        records++;
                        if (records % 100 == 0) {
                            emit("{\"consumed\": " + records + "}");
                        }
                    }
                    if (!batch.isEmpty()) {
                        consumer.commitSync(Duration.ofSeconds(30));
                    }
                } catch (org.apache.kafka.common.errors.WakeupException e) {
                    break;
                } catch (RuntimeException e) {
                    // An error the application sees (a failed commit, a fenced member): reported, and the loop
                    // goes on as an application would, until the keys are in or the time is up.
                    errors.add(describe(e));
                }
            }
        } catch (RuntimeException e) {
            errors.add(describe(e));
        }
        emit("{\"client\": " + json(CLIENT) + ", \"version\": " + json(VERSION)
                + ", \"consumed\": " + records + ", \"keys\": " + json(new ArrayList<>(keys)) + ", \"errors\": "
                + json(errors) + "}");
        if (keys.size() < count) {
            System.err.println("saw " + keys.size() + " of " + count + " keys within " + timeoutMs + " ms");
        }
        return keys.size() >= count && errors.isEmpty();
    }

    // === settings ===

    /** Bootstrap, client id and SASL, shared by both commands. */
    private static Properties common(Map<String, String> args) throws Usage {
        Properties props = new Properties();
        props.put(CommonClientConfigs.BOOTSTRAP_SERVERS_CONFIG, required(args, "bootstrap"));
        props.put(CommonClientConfigs.CLIENT_ID_CONFIG, "franzgate-matrix-java");
        boolean sasl = args.containsKey("user") || args.containsKey("password") || args.containsKey("mechanism");
        if (sasl) {
            String user = required(args, "user");
            String password = required(args, "password");
            String mechanism = args.getOrDefault("mechanism", "PLAIN");
            String module = switch (mechanism) {
                case "PLAIN" -> "org.apache.kafka.common.security.plain.PlainLoginModule";
                case "SCRAM-SHA-256", "SCRAM-SHA-512" -> "org.apache.kafka.common.security.scram.ScramLoginModule";
                default -> throw new Usage("mechanism must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512");
            };
            props.put(CommonClientConfigs.SECURITY_PROTOCOL_CONFIG, "SASL_PLAINTEXT");
            props.put(SaslConfigs.SASL_MECHANISM, mechanism);
            props.put(SaslConfigs.SASL_JAAS_CONFIG, module + " required username=" + jaasQuoted(user)
                    + " password=" + jaasQuoted(password) + ";");
        }
        return props;
    }

    /** A JAAS option value in double quotes (backslash and quote escaped). */
    private static String jaasQuoted(String value) {
        return "\"" + value.replace("\\", "\\\\").replace("\"", "\\\"") + "\"";
    }

    // === command line ===

    private static Map<String, String> parse(String[] argv) throws Usage {
        Map<String, String> args = new HashMap<>();
        for (int i = 1; i < argv.length; i++) {
            int eq = argv[i].indexOf('=');
            if (eq <= 0) {
                throw new Usage("expected key=value, got " + argv[i]);
            }
            args.put(argv[i].substring(0, eq), argv[i].substring(eq + 1));
        }
        return args;
    }

    private static void check(Map<String, String> args, Set<String> known) throws Usage {
        for (String key : args.keySet()) {
            if (!known.contains(key) && !SASL_KEYS.contains(key)) {
                throw new Usage("unknown key " + key);
            }
        }
    }

    private static String required(Map<String, String> args, String key) throws Usage {
        String value = args.get(key);
        if (value == null || value.isEmpty()) {
            throw new Usage("missing " + key + "=");
        }
        return value;
    }

    private static long number(Map<String, String> args, String key, Long fallback) throws Usage {
        String value = args.get(key);
        if (value == null) {
            if (fallback == null) {
                throw new Usage("missing " + key + "=");
            }
            return fallback;
        }
        try {
            return Long.parseLong(value);
        } catch (NumberFormatException e) {
            throw new Usage(key + " must be a number, not " + value);
        }
    }

    // === output ===

    /** The kafka-clients release on the classpath, from the file its own AppInfoParser reads. */
    private static String clientVersion() {
        try (InputStream in = KafkaProducer.class.getResourceAsStream("/kafka/kafka-version.properties")) {
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

    private static String describe(Throwable error) {
        return error.getClass().getSimpleName() + ": " + error.getMessage();
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
