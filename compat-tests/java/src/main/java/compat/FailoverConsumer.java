package compat;

import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.consumer.listener.MessageListenerConcurrently;
import org.apache.rocketmq.common.consumer.ConsumeFromWhere;
import org.apache.rocketmq.common.message.MessageExt;

/**
 * A push consumer that runs through broker failovers (compat-tests/tests/dledger_failover.rs).
 *
 * <pre>
 * FailoverConsumer &lt;namesrv&gt; &lt;topic&gt; &lt;group&gt; &lt;seconds&gt;
 * </pre>
 *
 * CLUSTERING, "*", CONSUME_FROM_FIRST_OFFSET, route refresh every second, offsets
 * committed every second. Prints {@code GOT <keys> <uniqId> <queueId> <queueOffset>} per delivery
 * (redeliveries print again) until killed or the time is up, then {@code STOPPED}.
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
        Thread.sleep(Long.parseLong(args[3]) * 1000L);
        c.shutdown();
        System.out.println("STOPPED");
        System.exit(0);
    }
}
