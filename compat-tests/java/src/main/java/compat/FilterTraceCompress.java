package compat;

import static compat.Support.verdict;
import static compat.Support.waitFor;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Predicate;
import java.util.stream.Stream;
import org.apache.rocketmq.client.consumer.DefaultMQPullConsumer;
import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.MessageSelector;
import org.apache.rocketmq.client.consumer.PullResult;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.consumer.listener.MessageListenerConcurrently;
import org.apache.rocketmq.client.exception.MQClientException;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.client.producer.SendStatus;
import org.apache.rocketmq.common.consumer.ConsumeFromWhere;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageExt;
import org.apache.rocketmq.common.message.MessageQueue;
import org.apache.rocketmq.tools.admin.DefaultMQAdminExt;

/**
 * SQL92 filters, compressed bodies and message trace with the official Java client of the
 * classpath's version.
 *
 * <pre>
 * FilterTraceCompress &lt;namesrvAddr&gt; &lt;brokerAddr&gt; &lt;prefix&gt; &lt;scenario&gt;...
 * </pre>
 *
 * Scenarios:
 * <ul>
 * <li>sql: 30 messages with user properties a (1..10, absent on 10 of them) and color
 * (red/blue); for each expression a push consumer (its own group; CHECK_CLIENT_CONFIG then
 * the heartbeat's subscription) and a pull consumer (the expression in each pull) must
 * receive exactly the keys a Java-side predicate selects.</li>
 * <li>sql-invalid: a push consumer subscribing with a bad expression must fail to start;
 * prints "startCode=N" (the broker's CHECK_CLIENT_CONFIG response code).</li>
 * <li>compress: 100 KiB bodies (compressible text, random bytes; with 5.x also LZ4 and ZSTD)
 * sent and consumed; prints "body NAME sent=SHA256 received=SHA256 storeSize=N sysFlag=N"
 * per body.</li>
 * <li>trace: a producer and a push consumer with message trace on; prints "msgRegion=R
 * subExpected=B" once the message was consumed, waits until the trace topic holds the Pub
 * record (and the consumer's SubAfter when expected), then "traceMsgId=ID".</li>
 * </ul>
 * Each prints one line "scenario=NAME ok ..." or "scenario=NAME FAIL ..."; exit 0 when all
 * passed, 1 otherwise, 2 on bad usage.
 */
public final class FilterTraceCompress {

    private static String ns;
    private static String brokerAddr;
    private static String prefix;
    private static final AtomicInteger INSTANCE = new AtomicInteger();
    private static DefaultMQAdminExt admin;
    private static boolean subExpected;

    /** Expression and the same condition in Java, with SQL's unknown as "not selected". */
    private static final String[] EXPRESSIONS = {
        "a BETWEEN 3 AND 5",
        "color = 'red' AND a > 7",
        "a IS NULL",
        "color IN ('blue')",
        "NOT (a < 5)",
        "a <> 2 AND color NOT IN ('red') OR a = 1",
        "color CONTAINS 'lu' AND a IS NOT NULL",
    };

    private static final List<Predicate<Map<String, String>>> PREDICATES = Arrays.asList(
        p -> a(p) != null && a(p) >= 3 && a(p) <= 5,
        p -> "red".equals(p.get("color")) && a(p) != null && a(p) > 7,
        p -> a(p) == null,
        p -> "blue".equals(p.get("color")),
        p -> a(p) != null && a(p) >= 5,
        p -> (a(p) != null && a(p) != 2 && !"red".equals(p.get("color"))) || (a(p) != null && a(p) == 1),
        p -> p.get("color").contains("lu") && a(p) != null
    );

    private FilterTraceCompress() {
    }

    private static Integer a(Map<String, String> p) {
        String v = p.get("a");
        return v == null ? null : Integer.valueOf(v);
    }

    public static void main(String[] args) {
        if (args.length < 4) {
            System.err.println("usage: FilterTraceCompress <namesrvAddr> <brokerAddr> <prefix> <scenario>...");
            System.exit(2);
        }
        Path logDir = quietClientLogs();
        ns = args[0];
        brokerAddr = args[1];
        prefix = args[2];
        boolean allOk = Support.runScenarios(Arrays.copyOfRange(args, 3, args.length), FilterTraceCompress::run);
        if (admin != null) {
            admin.shutdown();
        }
        if (logDir != null && allOk) {
            deleteTree(logDir);
        } else if (logDir != null) {
            System.err.println("client logs: " + logDir);
        }
        System.exit(allOk ? 0 : 1);
    }

    private static String run(String s) throws Exception {
        switch (s) {
            case "sql":
                return sql();
            case "sql-invalid":
                return sqlInvalid();
            case "compress":
                return compress();
            case "trace":
                return trace();
            default:
                return "FAIL unknown scenario";
        }
    }

    // ------------------------------------------------------------------ sql

    private static String sql() throws Exception {
        String topic = prefix + "Sql";
        createTopic(topic);
        Map<String, Map<String, String>> sent = new HashMap<>();
        DefaultMQProducer producer = producer(false);
        try {
            for (int i = 0; i < 30; i++) {
                String key = "k" + i;
                Message m = new Message(topic, "TagSql", key, body(key));
                Map<String, String> props = new HashMap<>();
                if (i < 20) {
                    props.put("a", Integer.toString(i % 10 + 1));
                }
                props.put("color", i % 2 == 0 ? "red" : "blue");
                props.forEach(m::putUserProperty);
                SendResult r = producer.send(m);
                if (r.getSendStatus() != SendStatus.SEND_OK) {
                    return "FAIL send " + key + " " + r;
                }
                sent.put(key, props);
            }
        } finally {
            producer.shutdown();
        }

        List<Set<String>> expected = new ArrayList<>();
        for (Predicate<Map<String, String>> p : PREDICATES) {
            Set<String> e = new TreeSet<>();
            sent.forEach((k, props) -> {
                if (p.test(props)) {
                    e.add(k);
                }
            });
            expected.add(e);
        }

        List<String> problems = new ArrayList<>();
        List<DefaultMQPushConsumer> consumers = new ArrayList<>();
        List<Map<String, AtomicInteger>> received = new ArrayList<>();
        try {
            for (int j = 0; j < EXPRESSIONS.length; j++) {
                Map<String, AtomicInteger> got = new ConcurrentHashMap<>();
                received.add(got);
                DefaultMQPushConsumer c = new DefaultMQPushConsumer("g_" + topic + "_" + j);
                configure(c);
                c.subscribe(topic, MessageSelector.bySql(EXPRESSIONS[j]));
                c.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
                    for (MessageExt m : msgs) {
                        got.computeIfAbsent(m.getKeys(), x -> new AtomicInteger()).incrementAndGet();
                    }
                    return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
                });
                c.start();
                consumers.add(c);
            }
            for (int j = 0; j < EXPRESSIONS.length; j++) {
                Map<String, AtomicInteger> got = received.get(j);
                Set<String> want = expected.get(j);
                DefaultMQPushConsumer c = consumers.get(j);
                // Everything selected arrived, and every queue was examined to its end (so
                // anything wrongly selected would have arrived too).
                boolean done = waitFor(60, () -> got.keySet().containsAll(want) && caughtUp(c, topic));
                Set<String> keys = new TreeSet<>(got.keySet());
                if (!done || !keys.equals(want)) {
                    problems.add("push [" + EXPRESSIONS[j] + "] got " + keys + " want " + want
                        + (done ? "" : " (timed out)"));
                }
                for (Map.Entry<String, AtomicInteger> e : got.entrySet()) {
                    if (e.getValue().get() > 1) {
                        problems.add("push [" + EXPRESSIONS[j] + "] " + e.getKey() + " x" + e.getValue().get());
                    }
                }
            }
        } finally {
            for (DefaultMQPushConsumer c : consumers) {
                c.shutdown();
            }
        }

        // The same expressions carried in each pull request (the subscription flag).
        DefaultMQPullConsumer pull = new DefaultMQPullConsumer("g_" + topic + "_pull");
        pull.setNamesrvAddr(ns);
        pull.setInstanceName(instance());
        pull.setHeartbeatBrokerInterval(1000);
        pull.start();
        try {
            Set<MessageQueue> mqs = pull.fetchSubscribeMessageQueues(topic);
            for (int j = 0; j < EXPRESSIONS.length; j++) {
                Set<String> keys = new TreeSet<>();
                for (MessageQueue mq : mqs) {
                    long max = pull.maxOffset(mq);
                    long offset = 0;
                    for (int round = 0; offset < max && round < 100; round++) {
                        PullResult r = pullWhenReady(pull, mq, MessageSelector.bySql(EXPRESSIONS[j]), offset);
                        if (r.getMsgFoundList() != null) {
                            for (MessageExt m : r.getMsgFoundList()) {
                                keys.add(m.getKeys());
                            }
                        }
                        offset = r.getNextBeginOffset();
                    }
                    if (offset != max) {
                        problems.add("pull [" + EXPRESSIONS[j] + "] " + mq + " stopped at " + offset + " of " + max);
                    }
                }
                if (!keys.equals(expected.get(j))) {
                    problems.add("pull [" + EXPRESSIONS[j] + "] got " + keys + " want " + expected.get(j));
                }
            }
        } finally {
            pull.shutdown();
        }
        StringBuilder sizes = new StringBuilder();
        for (Set<String> e : expected) {
            sizes.append(e.size()).append(' ');
        }
        return verdict(problems, "expressions=" + EXPRESSIONS.length + " expectedSizes=" + sizes.toString().trim());
    }

    /** The client needs the broker's version from a heartbeat before it sends a SQL92 pull. */
    private static PullResult pullWhenReady(DefaultMQPullConsumer pull, MessageQueue mq, MessageSelector sel,
        long offset) throws Exception {
        long deadline = System.currentTimeMillis() + 20000;
        while (true) {
            try {
                return pull.pull(mq, sel, offset, 32);
            } catch (MQClientException e) {
                if (System.currentTimeMillis() > deadline) {
                    throw e;
                }
                Thread.sleep(200);
            }
        }
    }

    @SuppressWarnings("deprecation")
    private static boolean caughtUp(DefaultMQPushConsumer c, String topic) {
        try {
            Set<MessageQueue> mqs = c.fetchSubscribeMessageQueues(topic);
            for (MessageQueue mq : mqs) {
                long local = c.getDefaultMQPushConsumerImpl().getOffsetStore().readOffset(mq,
                    org.apache.rocketmq.client.consumer.store.ReadOffsetType.READ_FROM_MEMORY);
                if (local < admin.maxOffset(mq)) {
                    return false;
                }
            }
            return !mqs.isEmpty();
        } catch (Exception e) {
            return false;
        }
    }

    private static String sqlInvalid() throws Exception {
        String topic = prefix + "SqlBad";
        createTopic(topic);
        DefaultMQPushConsumer c = new DefaultMQPushConsumer("g_" + topic);
        configure(c);
        c.subscribe(topic, MessageSelector.bySql("a > "));
        c.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) ->
            ConsumeConcurrentlyStatus.CONSUME_SUCCESS);
        try {
            c.start();
            c.shutdown();
            return "FAIL started with an invalid expression";
        } catch (MQClientException e) {
            System.out.println("startCode=" + e.getResponseCode() + " message=" + e.getErrorMessage());
            c.shutdown();
            return "ok startCode=" + e.getResponseCode();
        }
    }

    // ------------------------------------------------------------- compress

    private static String compress() throws Exception {
        String topic = prefix + "Zip";
        createTopic(topic);
        StringBuilder text = new StringBuilder();
        for (int i = 0; text.length() < 100 * 1024; i++) {
            text.append("line ").append(i).append(": the quick brown fox jumps over the lazy dog\n");
        }
        byte[] compressible = Arrays.copyOf(text.toString().getBytes(StandardCharsets.UTF_8), 100 * 1024);
        byte[] random = new byte[100 * 1024];
        new Random(42).nextBytes(random);

        Map<String, byte[]> bodies = new HashMap<>();
        Map<String, String> types = new HashMap<>();
        bodies.put("text", compressible);
        types.put("text", "ZLIB");
        bodies.put("random", random);
        types.put("random", "ZLIB");
        boolean v5 = hasCompressType();
        if (v5) {
            for (String t : new String[] {"LZ4", "ZSTD"}) {
                String name = "text-" + t.toLowerCase();
                byte[] b = compressible.clone();
                b[0] = (byte) t.charAt(0);
                bodies.put(name, b);
                types.put(name, t);
            }
        }

        Map<String, MessageExt> got = new ConcurrentHashMap<>();
        DefaultMQPushConsumer c = new DefaultMQPushConsumer("g_" + topic);
        configure(c);
        c.subscribe(topic, "*");
        c.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
            for (MessageExt m : msgs) {
                got.put(m.getKeys(), m);
            }
            return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
        });
        c.start();
        List<String> problems = new ArrayList<>();
        try {
            for (String name : new TreeSet<>(bodies.keySet())) {
                DefaultMQProducer p = producer(false);
                try {
                    if (v5) {
                        setCompressType(p, types.get(name));
                    }
                    SendResult r = p.send(new Message(topic, "TagZip", name, bodies.get(name)));
                    if (r.getSendStatus() != SendStatus.SEND_OK) {
                        problems.add("send " + name + " " + r);
                    }
                } finally {
                    p.shutdown();
                }
            }
            if (!waitFor(60, () -> got.keySet().containsAll(bodies.keySet()))) {
                problems.add("received only " + got.keySet());
            }
            for (String name : new TreeSet<>(bodies.keySet())) {
                MessageExt m = got.get(name);
                String sent = sha256(bodies.get(name));
                String recv = m == null ? "none" : sha256(m.getBody());
                System.out.println("body " + name + " type=" + types.get(name) + " sent=" + sent + " received=" + recv
                    + " storeSize=" + (m == null ? -1 : m.getStoreSize())
                    + " sysFlag=" + (m == null ? -1 : m.getSysFlag()));
                if (!sent.equals(recv)) {
                    problems.add(name + " body differs");
                }
            }
        } finally {
            c.shutdown();
        }
        return verdict(problems, "bodies=" + bodies.size());
    }

    /** 5.x producers choose the compression type (DefaultMQProducer.setCompressType). */
    private static boolean hasCompressType() {
        for (java.lang.reflect.Method m : DefaultMQProducer.class.getMethods()) {
            if ("setCompressType".equals(m.getName())) {
                return true;
            }
        }
        return false;
    }

    @SuppressWarnings({"unchecked", "rawtypes"})
    private static void setCompressType(DefaultMQProducer p, String type) throws Exception {
        Class<? extends Enum> t = (Class<? extends Enum>) Class.forName(
            "org.apache.rocketmq.common.compression.CompressionType");
        DefaultMQProducer.class.getMethod("setCompressType", t).invoke(p, Enum.valueOf(t, type));
    }

    private static String sha256(byte[] b) throws Exception {
        StringBuilder s = new StringBuilder();
        for (byte x : MessageDigest.getInstance("SHA-256").digest(b)) {
            s.append(String.format("%02x", x));
        }
        return s.toString();
    }

    // ---------------------------------------------------------------- trace

    private static String trace() throws Exception {
        String topic = prefix + "Trace";
        createTopic(topic);
        Map<String, String> consumed = new ConcurrentHashMap<>();
        DefaultMQPushConsumer c = new DefaultMQPushConsumer("g_" + topic, true, null);
        configure(c);
        c.subscribe(topic, "*");
        c.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
            for (MessageExt m : msgs) {
                consumed.put(m.getMsgId(), String.valueOf(m.getProperty("MSG_REGION")));
            }
            return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
        });
        c.start();
        String msgId;
        DefaultMQProducer p = new DefaultMQProducer("pg_" + topic, true, null);
        p.setNamesrvAddr(ns);
        p.setInstanceName(instance());
        p.setPollNameServerInterval(1000);
        p.setHeartbeatBrokerInterval(2000);
        p.start();
        try {
            SendResult r = p.send(new Message(topic, "TagTrace", "traced", body("traced")));
            if (r.getSendStatus() != SendStatus.SEND_OK) {
                return "FAIL send " + r;
            }
            msgId = r.getMsgId();
            String id = msgId;
            if (!waitFor(60, () -> consumed.containsKey(id))) {
                return "FAIL not consumed " + msgId;
            }
            // 5.x consumers write trace records only for messages carrying the
            // MSG_REGION property, which Java's broker adds to every message it
            // stores (AbstractSendMessageProcessor.buildMsgContext); 4.x ones always.
            String region = consumed.get(id);
            subExpected = !"null".equals(region) || !hasCompressType();
            System.out.println("msgRegion=" + region + " subExpected=" + subExpected);
            // Trace records go out asynchronously; keep both clients up until the
            // records can be queried by the message id.
            List<String> want = subExpected ? Arrays.asList("Pub", "SubAfter") : Arrays.asList("Pub");
            if (!waitFor(60, () -> traceTypes(id).containsAll(want))) {
                return "FAIL trace records for " + id + ": " + traceTypes(id) + " want " + want;
            }
            System.out.println("traceTypes=" + traceTypes(id));
        } finally {
            p.shutdown();
            c.shutdown();
        }
        System.out.println("traceMsgId=" + msgId);
        return "ok traceMsgId=" + msgId;
    }

    /** Trace types stored for a message id (QUERY_MESSAGE on the trace topic by key). */
    private static Set<String> traceTypes(String msgId) {
        Set<String> types = new TreeSet<>();
        try {
            for (MessageExt m : admin.queryMessage("RMQ_SYS_TRACE_TOPIC", msgId, 64, 0, Long.MAX_VALUE)
                .getMessageList()) {
                String body = new String(m.getBody(), StandardCharsets.UTF_8);
                for (String record : body.split(String.valueOf((char) 2))) {
                    if (record.contains(msgId)) {
                        types.add(record.split(String.valueOf((char) 1), 2)[0]);
                    }
                }
            }
        } catch (Exception e) {
            types.add("error: " + e.getMessage());
        }
        return types;
    }

    // --------------------------------------------------------------- helpers

    private static void configure(DefaultMQPushConsumer c) {
        c.setNamesrvAddr(ns);
        c.setInstanceName(instance());
        c.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
        c.setPollNameServerInterval(1000);
        c.setHeartbeatBrokerInterval(2000);
    }

    private static DefaultMQProducer producer(boolean trace) throws MQClientException {
        String group = "pg_" + prefix + INSTANCE.get();
        // The one-argument constructor when no trace is wanted: clients before
        // 4.4 (run by the compatibility matrix) have no (group, trace, topic) one.
        DefaultMQProducer p = trace ? new DefaultMQProducer(group, true, null) : new DefaultMQProducer(group);
        p.setNamesrvAddr(ns);
        p.setInstanceName(instance());
        p.setPollNameServerInterval(1000);
        p.setHeartbeatBrokerInterval(2000);
        p.start();
        return p;
    }

    private static String instance() {
        return "compat-ftc-" + prefix + "-" + INSTANCE.incrementAndGet();
    }

    private static byte[] body(String key) {
        return ("body-" + key + "-" + prefix).getBytes(StandardCharsets.UTF_8);
    }

    /** UPDATE_AND_CREATE_TOPIC (8 queues, perm 6), then wait for the route. */
    private static void createTopic(String topic) throws Exception {
        if (admin == null) {
            admin = Support.startAdmin(ns, instance());
        }
        Support.createTopic(admin, brokerAddr, topic, 8);
    }

    /** Must run before any RocketMQ client class is loaded. Returns the temp log dir or null. */
    private static Path quietClientLogs() {
        if (System.getProperty("rocketmq.client.logRoot") != null || System.getProperty("rocketmq.log.root") != null) {
            return null;
        }
        Path dir;
        try {
            dir = Files.createTempDirectory("compat-rmq-client-logs-");
        } catch (IOException e) {
            return null;
        }
        System.setProperty("rocketmq.client.logRoot", dir.toString());
        System.setProperty("rocketmq.client.logLevel", "WARN");
        System.setProperty("rocketmq.log.root", dir.toString());
        System.setProperty("rocketmq.log.level", "WARN");
        System.setProperty("rmq.logback.configurationFile", "rmq.client.logback.xml");
        System.setProperty("rocketmq.client.rebalance.waitInterval", "2000");
        return dir;
    }

    private static void deleteTree(Path dir) {
        try (Stream<Path> s = Files.walk(dir)) {
            s.sorted(Comparator.reverseOrder()).map(Path::toFile).forEach(File::delete);
        } catch (IOException ignored) {
            // best effort
        }
    }
}
