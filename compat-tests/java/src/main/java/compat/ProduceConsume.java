package compat;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;
import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.consumer.listener.MessageListenerConcurrently;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.client.producer.SendStatus;
import org.apache.rocketmq.common.consumer.ConsumeFromWhere;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageExt;

/**
 * Produce/consume round trip with the official Java client of the classpath's version.
 *
 * <pre>
 * ProduceConsume &lt;namesrvAddr&gt; &lt;topic&gt; &lt;count&gt; &lt;consumerGroup&gt; [timeoutSeconds=60]
 * </pre>
 *
 * Starts a push consumer (CLUSTERING, "*", CONSUME_FROM_FIRST_OFFSET), then a producer
 * that sends count messages synchronously (key k-i, tag TagA, body body-i-runid), then
 * waits until every key was consumed once with the right body. Prints
 * "sent=N received=N duplicates=0 missing=0"; exit 0 on success, 1 on failure, 2 on bad
 * usage.
 *
 * System properties (all optional):
 * compat.pollNameServerIntervalMs (default 1000) and compat.heartbeatIntervalMs (default
 * 2000) shorten the clients' route polling / heartbeat timers so a topic created by the
 * first send is picked up by the consumer quickly; rocketmq.client.rebalance.waitInterval
 * defaults to 2000 here (client default 20000) for the same reason.
 * Client logs go to a temporary folder (removed on success) unless rocketmq.client.logRoot
 * (4.x) / rocketmq.log.root (5.x) is given.
 */
public final class ProduceConsume {

    private ProduceConsume() {
    }

    public static void main(String[] args) {
        if (args.length < 4 || args.length > 5) {
            System.err.println("usage: ProduceConsume <namesrvAddr> <topic> <count> <consumerGroup> [timeoutSeconds]");
            System.exit(2);
        }
        Path logDir = quietClientLogs();
        int rc;
        try {
            rc = run(args);
        } catch (Throwable t) {
            System.err.println("ProduceConsume: unexpected failure: " + t);
            t.printStackTrace();
            rc = 1;
        }
        if (logDir != null) {
            if (rc == 0) {
                deleteTree(logDir);
            } else {
                System.err.println("client logs: " + logDir);
            }
        }
        // Client libraries leave non-daemon threads behind in some versions.
        System.exit(rc);
    }

    /** Must run before any RocketMQ client class is loaded. Returns the temp log dir or null. */
    private static Path quietClientLogs() {
        Path dir = null;
        boolean haveRoot = System.getProperty("rocketmq.client.logRoot") != null
            || System.getProperty("rocketmq.log.root") != null;
        if (!haveRoot) {
            try {
                dir = Files.createTempDirectory("compat-rmq-client-logs-");
            } catch (IOException e) {
                dir = null;
            }
        }
        String root = dir != null ? dir.toString()
            : System.getProperty("rocketmq.log.root", System.getProperty("rocketmq.client.logRoot"));
        setDefault("rocketmq.client.logRoot", root);   // 4.x ClientLogger
        setDefault("rocketmq.client.logLevel", "WARN");
        setDefault("rocketmq.log.root", root);         // 5.x rmq.client.logback.xml
        setDefault("rocketmq.log.level", "WARN");
        // 5.x: with rocketmq-tools on the classpath the shaded logback would otherwise pick
        // rmq.tools.logback.xml (it is searched before rmq.client.logback.xml).
        setDefault("rmq.logback.configurationFile", "rmq.client.logback.xml");
        setDefault("rocketmq.client.rebalance.waitInterval", "2000");
        return dir;
    }

    private static void setDefault(String key, String value) {
        if (value != null && System.getProperty(key) == null) {
            System.setProperty(key, value);
        }
    }

    private static int run(String[] args) throws Exception {
        final String namesrv = args[0];
        final String topic = args[1];
        final int count = Integer.parseInt(args[2]);
        final String group = args[3];
        final int timeoutSeconds = args.length > 4 ? Integer.parseInt(args[4]) : 60;
        final int pollNs = Integer.getInteger("compat.pollNameServerIntervalMs", 1000);
        final int heartbeat = Integer.getInteger("compat.heartbeatIntervalMs", 2000);
        final String runId = UUID.randomUUID().toString().replace("-", "").substring(0, 12);
        final String suffix = "-" + runId;
        final long deadline = System.currentTimeMillis() + timeoutSeconds * 1000L;

        // key -> delivery count, key -> bodies seen, key -> msgId seen by the consumer
        final Map<String, AtomicInteger> deliveries = new ConcurrentHashMap<>();
        final Map<String, String> consumedMsgId = new ConcurrentHashMap<>();
        final List<String> problems = java.util.Collections.synchronizedList(new ArrayList<String>());
        final AtomicInteger foreign = new AtomicInteger();

        DefaultMQPushConsumer consumer = new DefaultMQPushConsumer(group);
        DefaultMQProducer producer = null;
        Map<String, SendResult> sent = new TreeMap<>(Comparator.comparingInt(ProduceConsume::keyIndex));
        List<String> sendFailures = new ArrayList<>();
        try {
            consumer.setNamesrvAddr(namesrv);
            consumer.setInstanceName("compat-consumer-" + runId);
            setClustering(consumer); // MessageModel moved packages between 4.x and 5.x
            consumer.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
            consumer.setPollNameServerInterval(pollNs);
            consumer.setHeartbeatBrokerInterval(heartbeat);
            consumer.subscribe(topic, "*");
            consumer.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
                for (MessageExt m : msgs) {
                    String body = new String(m.getBody(), StandardCharsets.UTF_8);
                    if (!body.endsWith(suffix)) {
                        foreign.incrementAndGet(); // left in the topic by an earlier run
                        continue;
                    }
                    String key = m.getKeys();
                    String wantBody = "body-" + keyIndex(key) + suffix;
                    if (key == null || keyIndex(key) < 0 || !body.equals(wantBody)) {
                        problems.add("bad message: keys=" + key + " body=" + body + " msgId=" + m.getMsgId());
                        continue;
                    }
                    if (!"TagA".equals(m.getTags())) {
                        problems.add(key + ": tag " + m.getTags() + " (expected TagA)");
                    }
                    if (!topic.equals(m.getTopic())) {
                        problems.add(key + ": topic " + m.getTopic() + " (expected " + topic + ")");
                    }
                    consumedMsgId.putIfAbsent(key, m.getMsgId());
                    deliveries.computeIfAbsent(key, k -> new AtomicInteger()).incrementAndGet();
                }
                return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
            });
            consumer.start();

            producer = new DefaultMQProducer("compat-producer-" + runId);
            producer.setNamesrvAddr(namesrv);
            producer.setInstanceName("compat-producer-" + runId);
            producer.setPollNameServerInterval(pollNs);
            producer.setHeartbeatBrokerInterval(heartbeat);
            producer.start();

            for (int i = 0; i < count; i++) {
                String key = "k-" + i;
                Message msg = new Message(topic, "TagA", key, ("body-" + i + suffix).getBytes(StandardCharsets.UTF_8));
                try {
                    SendResult r = producer.send(msg);
                    sent.put(key, r);
                    if (r.getSendStatus() != SendStatus.SEND_OK) {
                        sendFailures.add(key + ": status " + r.getSendStatus());
                    } else if (isEmpty(r.getMsgId()) || isEmpty(r.getOffsetMsgId())) {
                        sendFailures.add(key + ": empty msgId/offsetMsgId in " + r);
                    }
                } catch (Exception e) {
                    sendFailures.add(key + ": " + e);
                }
            }

            // Wait for every successfully sent key (poll, bounded by the deadline).
            while (System.currentTimeMillis() < deadline) {
                if (allReceived(sent.keySet(), deliveries)) {
                    // a short grace period to catch immediate duplicate deliveries
                    Thread.sleep(300);
                    break;
                }
                Thread.sleep(100);
            }
        } catch (Exception e) {
            // e.g. start() failing because the name server is unreachable
            problems.add("client failure: " + e);
            e.printStackTrace();
        } finally {
            if (producer != null) {
                try {
                    producer.shutdown();
                } catch (Throwable t) {
                    System.err.println("producer shutdown: " + t);
                }
            }
            try {
                consumer.shutdown();
            } catch (Throwable t) {
                System.err.println("consumer shutdown: " + t);
            }
        }

        // ---- verdict
        List<String> missing = new ArrayList<>();
        List<String> duplicates = new ArrayList<>();
        List<String> idMismatch = new ArrayList<>();
        int received = 0;
        for (int i = 0; i < count; i++) {
            String key = "k-" + i;
            AtomicInteger n = deliveries.get(key);
            if (n == null) {
                missing.add(key);
                continue;
            }
            received++;
            if (n.get() > 1) {
                duplicates.add(key + " x" + n.get());
            }
            SendResult r = sent.get(key);
            String cid = consumedMsgId.get(key);
            if (r != null && cid != null && !cid.equals(r.getMsgId())) {
                idMismatch.add(key + ": send msgId " + r.getMsgId() + " != consumed msgId " + cid);
            }
        }
        int sentOk = 0;
        for (SendResult r : sent.values()) {
            if (r.getSendStatus() == SendStatus.SEND_OK && !isEmpty(r.getMsgId()) && !isEmpty(r.getOffsetMsgId())) {
                sentOk++;
            }
        }
        boolean ok = sentOk == count && sendFailures.isEmpty() && missing.isEmpty() && duplicates.isEmpty()
            && idMismatch.isEmpty() && problems.isEmpty();
        System.out.println("sent=" + sentOk + " received=" + received + " duplicates=" + duplicates.size()
            + " missing=" + missing.size() + (foreign.get() > 0 ? " foreign=" + foreign.get() : ""));
        if (!ok) {
            report("send failures", sendFailures);
            report("missing keys", missing);
            report("duplicate keys", duplicates);
            report("msgId mismatches", idMismatch);
            report("other problems", problems);
            if (!sent.isEmpty()) {
                System.err.println("first SendResult: " + sent.values().iterator().next());
            }
        }
        return ok ? 0 : 1;
    }

    /** consumer.setMessageModel(MessageModel.CLUSTERING), whichever package MessageModel is in. */
    @SuppressWarnings({"unchecked", "rawtypes"})
    private static void setClustering(DefaultMQPushConsumer consumer) throws Exception {
        for (java.lang.reflect.Method m : DefaultMQPushConsumer.class.getMethods()) {
            if ("setMessageModel".equals(m.getName()) && m.getParameterCount() == 1) {
                Class<? extends Enum> type = (Class<? extends Enum>) m.getParameterTypes()[0];
                m.invoke(consumer, Enum.valueOf(type, "CLUSTERING"));
                return;
            }
        }
        throw new IllegalStateException("DefaultMQPushConsumer.setMessageModel not found");
    }

    private static boolean allReceived(Iterable<String> keys, Map<String, AtomicInteger> deliveries) {
        for (String k : keys) {
            if (!deliveries.containsKey(k)) {
                return false;
            }
        }
        return true;
    }

    private static void report(String what, List<String> items) {
        if (items.isEmpty()) {
            return;
        }
        int shown = Math.min(items.size(), 50);
        System.err.println(what + " (" + items.size() + "): " + String.join(", ", items.subList(0, shown))
            + (shown < items.size() ? ", ..." : ""));
    }

    private static int keyIndex(String key) {
        if (key == null || !key.startsWith("k-")) {
            return -1;
        }
        try {
            return Integer.parseInt(key.substring(2));
        } catch (NumberFormatException e) {
            return -1;
        }
    }

    private static boolean isEmpty(String s) {
        return s == null || s.isEmpty();
    }

    private static void deleteTree(Path dir) {
        try (Stream<Path> s = Files.walk(dir)) {
            s.sorted(Comparator.reverseOrder()).map(Path::toFile).forEach(File::delete);
        } catch (IOException ignored) {
            // best effort
        }
    }
}
