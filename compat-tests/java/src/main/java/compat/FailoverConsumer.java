package compat;

import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.Map;
import java.util.TreeMap;
import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.consumer.listener.MessageListenerConcurrently;
import org.apache.rocketmq.client.consumer.store.OffsetStore;
import org.apache.rocketmq.client.consumer.store.ReadOffsetType;
import org.apache.rocketmq.common.consumer.ConsumeFromWhere;
import org.apache.rocketmq.common.message.MessageExt;
import org.apache.rocketmq.common.message.MessageQueue;

/**
 * A push consumer that runs through broker failovers (compat-tests/tests/dledger_failover.rs,
 * ha_consumer_failover.rs).
 *
 * <pre>
 * FailoverConsumer &lt;namesrv&gt; &lt;topic&gt; &lt;group&gt; &lt;seconds&gt;
 *     [&lt;stopFile&gt; &lt;queues&gt; [&lt;pullIntervalMs&gt; &lt;pullBatchSize&gt;]]
 * </pre>
 *
 * CLUSTERING, "*", CONSUME_FROM_FIRST_OFFSET, route refresh every second, offsets
 * committed every second. Prints {@code GOT <keys> <uniqId> <queueId> <queueOffset>} per delivery
 * (redeliveries print again) until killed or the time is up, then {@code STOPPED}.
 *
 * <p>With {@code stopFile} and {@code queues}: once the consumer holds {@code queues} queues of the
 * topic it prints {@code START_OFFSET <queueId> <offset>} per queue (the offset it resumed from, read
 * from the broker; -1 when the broker had none) and {@code READY}; it shuts down (committing its
 * offsets to the broker) as soon as {@code stopFile} exists, then prints {@code STOPPED}. With
 * {@code pullIntervalMs} and {@code pullBatchSize} it pulls at most that many messages per queue that
 * often, so that a test can keep a backlog on the broker (not in the client's cache).
 */
public final class FailoverConsumer {

    private FailoverConsumer() {
    }

    public static void main(String[] args) throws Exception {
        System.setProperty("rmq.logback.configurationFile", "rmq.client.logback.xml");
        DefaultMQPushConsumer c = new DefaultMQPushConsumer(args[2]);
        c.setNamesrvAddr(args[0]);
        c.setInstanceName("failover-consumer-" + System.nanoTime());
        c.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
        c.setPollNameServerInterval(1000);
        c.setHeartbeatBrokerInterval(1000);
        c.setPersistConsumerOffsetInterval(1000);
        if (args.length > 7) {
            c.setPullInterval(Long.parseLong(args[6]));
            c.setPullBatchSize(Integer.parseInt(args[7]));
        }
        c.subscribe(args[1], "*");
        c.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
            StringBuilder sb = new StringBuilder();
            for (MessageExt m : msgs) {
                sb.append("GOT ").append(m.getKeys()).append(' ').append(m.getProperty("UNIQ_KEY"))
                    .append(' ').append(m.getQueueId()).append(' ').append(m.getQueueOffset()).append('\n');
            }
            synchronized (System.out) {
                System.out.print(sb);
                System.out.flush();
            }
            return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
        });
        c.start();
        long deadline = System.currentTimeMillis() + Long.parseLong(args[3]) * 1000L;
        if (args.length > 5) {
            String topic = args[1];
            int queues = Integer.parseInt(args[5]);
            boolean ready = false;
            while (System.currentTimeMillis() < deadline && !Files.exists(Paths.get(args[4]))) {
                if (!ready) {
                    ready = printStartOffsets(c, topic, queues);
                }
                Thread.sleep(100);
            }
        } else {
            Thread.sleep(Math.max(0, deadline - System.currentTimeMillis()));
        }
        c.shutdown();
        System.out.println("STOPPED");
        System.exit(0);
    }

    /**
     * Once the rebalance holds {@code queues} queues of {@code topic}: the offsets the consumer
     * resumed from (in memory right after the rebalance read them from the broker).
     */
    private static boolean printStartOffsets(DefaultMQPushConsumer c, String topic, int queues) {
        Map<Integer, Long> offsets = new TreeMap<>();
        OffsetStore store = c.getDefaultMQPushConsumerImpl().getOffsetStore();
        for (MessageQueue mq : c.getDefaultMQPushConsumerImpl().getRebalanceImpl().getProcessQueueTable()
            .keySet()) {
            if (mq.getTopic().equals(topic)) {
                offsets.put(mq.getQueueId(), store.readOffset(mq, ReadOffsetType.READ_FROM_MEMORY));
            }
        }
        if (offsets.size() < queues) {
            return false;
        }
        StringBuilder sb = new StringBuilder();
        for (Map.Entry<Integer, Long> e : offsets.entrySet()) {
            sb.append("START_OFFSET ").append(e.getKey()).append(' ').append(e.getValue()).append('\n');
        }
        sb.append("READY\n");
        synchronized (System.out) {
            System.out.print(sb);
            System.out.flush();
        }
        return true;
    }
}
