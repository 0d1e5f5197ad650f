package compat;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.consumer.listener.MessageListenerConcurrently;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.client.producer.SendStatus;
import org.apache.rocketmq.common.consumer.ConsumeFromWhere;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageClientExt;
import org.apache.rocketmq.common.message.MessageClientIDSetter;
import org.apache.rocketmq.common.message.MessageExt;
import org.apache.rocketmq.common.message.MessageQueue;

/**
 * A producer and a push consumer whose only server address is a proxy's remoting port
 * (used as name server and, through the routes it answers, as every broker).
 *
 * <pre>
 * ProxyRemoting &lt;proxyRemotingAddr&gt; &lt;topic&gt; &lt;count&gt; &lt;consumerGroup&gt; [timeoutSeconds=90]
 * </pre>
 *
 * The consumer (CONSUME_FROM_FIRST_OFFSET, "*") starts first; the producer then sends count
 * messages synchronously (key k-i). Output, one line each:
 * <ul>
 * <li>{@code ACK <queueId> <queueOffset> <offsetMsgId> <uniqId> <key> <ackTimeMs> <brokerName>}
 * per SEND_OK (the format of compat.StoreDriver, read by compat_tests::invariant);</li>
 * <li>{@code SEND_FAILED <key> <reason>} per failed send;</li>
 * <li>{@code MSG <queueId> <queueOffset> <offsetMsgId> <uniqId> <key> <brokerName>} per delivery
 * of this run's messages (the dump format of the same invariant);</li>
 * <li>{@code QUEUE <brokerName> <queueId> min=<n> max=<n>} per queue after consuming
 * (GET_MIN_OFFSET / GET_MAX_OFFSET through the proxy);</li>
 * <li>{@code DUMPED <n>} (distinct keys consumed) and
 * {@code sent=N received=N missing=N duplicates=N}.</li>
 * </ul>
 * Exit 0 when every acknowledged key was consumed within the timeout, 1 otherwise, 2 on bad usage.
 */
public final class ProxyRemoting {

    private ProxyRemoting() {
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 4 || args.length > 5) {
            System.err.println("usage: ProxyRemoting <proxyRemotingAddr> <topic> <count> <consumerGroup> [timeoutSeconds]");
            System.exit(2);
        }
        // Client logs away from the home folder; the test only reads stdout.
        String logRoot = Files.createTempDirectory("compat-proxy-remoting-logs-").toString();
        defaultProperty("rocketmq.client.logRoot", logRoot);
        defaultProperty("rocketmq.log.root", logRoot);
        defaultProperty("rocketmq.client.logLevel", "WARN");
        defaultProperty("rocketmq.log.level", "WARN");
        defaultProperty("rmq.logback.configurationFile", "rmq.client.logback.xml");
        // The first rebalance after 2 s instead of 20 s.
        defaultProperty("rocketmq.client.rebalance.waitInterval", "2000");
        int rc;
        try {
            rc = run(args[0], args[1], Integer.parseInt(args[2]), args[3],
                args.length > 4 ? Integer.parseInt(args[4]) : 90);
        } catch (Throwable t) {
            System.out.println("FAIL " + t);
            t.printStackTrace();
            rc = 1;
        }
        System.out.flush();
        // Client libraries leave non-daemon threads behind in some versions.
        System.exit(rc);
    }

    private static void defaultProperty(String key, String value) {
        if (System.getProperty(key) == null) {
            System.setProperty(key, value);
        }
    }

    private static int run(String proxy, String topic, int count, String group, int timeoutSeconds)
        throws Exception {
        final String runId = UUID.randomUUID().toString().replace("-", "").substring(0, 12);
        final long deadline = System.currentTimeMillis() + timeoutSeconds * 1000L;
        final Map<String, Integer> deliveries = new ConcurrentHashMap<>();

        DefaultMQPushConsumer consumer = new DefaultMQPushConsumer(group);
        consumer.setNamesrvAddr(proxy);
        consumer.setInstanceName("proxy-remoting-consumer-" + runId);
        consumer.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
        consumer.setPollNameServerInterval(1000);
        consumer.setHeartbeatBrokerInterval(2000);
        consumer.subscribe(topic, "*");
        consumer.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
            for (MessageExt m : msgs) {
                String body = new String(m.getBody(), StandardCharsets.UTF_8);
                if (!body.endsWith("-" + runId)) {
                    continue; // an earlier run's message
                }
                String offsetMsgId = m instanceof MessageClientExt
                    ? ((MessageClientExt) m).getOffsetMsgId() : m.getMsgId();
                System.out.println("MSG " + m.getQueueId() + " " + m.getQueueOffset() + " " + offsetMsgId
                    + " " + MessageClientIDSetter.getUniqID(m) + " " + m.getKeys() + " " + m.getBrokerName());
                deliveries.merge(m.getKeys(), 1, Integer::sum);
            }
            return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
        });
        consumer.start();

        DefaultMQProducer producer = new DefaultMQProducer("proxy-remoting-producer-" + runId);
        producer.setNamesrvAddr(proxy);
        producer.setInstanceName("proxy-remoting-producer-" + runId);
        producer.setPollNameServerInterval(1000);
        producer.setHeartbeatBrokerInterval(2000);
        producer.start();

        List<String> acked = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            String key = "k-" + i;
            Message msg = new Message(topic, "TagA", key, ("body-" + i + "-" + runId).getBytes(StandardCharsets.UTF_8));
            try {
                SendResult r = producer.send(msg);
                if (r.getSendStatus() != SendStatus.SEND_OK) {
                    System.out.println("SEND_FAILED " + key + " status " + r.getSendStatus());
                    continue;
                }
                MessageQueue q = r.getMessageQueue();
                System.out.println("ACK " + q.getQueueId() + " " + r.getQueueOffset() + " " + r.getOffsetMsgId()
                    + " " + r.getMsgId() + " " + key + " " + System.currentTimeMillis() + " " + q.getBrokerName());
                acked.add(key);
            } catch (Exception e) {
                System.out.println("SEND_FAILED " + key + " " + e.toString().replace('\n', ' '));
            }
        }

        while (System.currentTimeMillis() < deadline && !allIn(acked, deliveries)) {
            Thread.sleep(100);
        }
        // Max and min offsets of every queue, asked through the proxy.
        try {
            for (MessageQueue mq : consumer.fetchSubscribeMessageQueues(topic)) {
                System.out.println("QUEUE " + mq.getBrokerName() + " " + mq.getQueueId()
                    + " min=" + consumer.minOffset(mq) + " max=" + consumer.maxOffset(mq));
            }
        } catch (Exception e) {
            System.out.println("QUEUE_FAILED " + e.toString().replace('\n', ' '));
        }
        int missing = 0;
        int duplicates = 0;
        for (String k : acked) {
            Integer n = deliveries.get(k);
            if (n == null) {
                missing++;
            } else if (n > 1) {
                duplicates += n - 1;
            }
        }
        System.out.println("DUMPED " + deliveries.size());
        System.out.println("sent=" + acked.size() + " received=" + (acked.size() - missing)
            + " missing=" + missing + " duplicates=" + duplicates);
        producer.shutdown();
        consumer.shutdown();
        return missing == 0 && acked.size() == count ? 0 : 1;
    }

    private static boolean allIn(Collection<String> keys, Map<String, Integer> seen) {
        for (String k : keys) {
            if (!seen.containsKey(k)) {
                return false;
            }
        }
        return true;
    }
}
