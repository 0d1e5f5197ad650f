package compat;

import java.nio.charset.StandardCharsets;
import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.consumer.listener.MessageListenerConcurrently;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.common.consumer.ConsumeFromWhere;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageExt;

/**
 * A live producer and push consumer for mqadmin checks (consumerConnection,
 * producerConnection, consumerProgress, resetOffsetByTime, running info relays).
 *
 * <pre>
 * AdminPeer &lt;namesrvAddr&gt; &lt;topic&gt; &lt;producerGroup&gt; &lt;consumerGroup&gt; &lt;count&gt; &lt;prefix&gt; &lt;maxSeconds&gt;
 * </pre>
 *
 * Starts a push consumer (CLUSTERING, "*", CONSUME_FROM_FIRST_OFFSET) and prints
 * "consumer-client-id=ID"; then a producer sends count messages (key PREFIX-key-i, tag TagA,
 * body PREFIX-body-i), printing "sent i msgId offsetMsgId queueId queueOffset" and then
 * "sent-done". Every delivery prints "recv body queueId queueOffset reconsumeTimes". Both
 * clients stay up (heartbeating) until maxSeconds pass or the process is killed.
 */
public final class AdminPeer {

    private AdminPeer() {
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 7) {
            System.err.println("usage: AdminPeer <namesrvAddr> <topic> <producerGroup> <consumerGroup> <count> <prefix> <maxSeconds>");
            System.exit(2);
        }
        System.setProperty("rmq.logback.configurationFile", "rmq.client.logback.xml");
        if (System.getProperty("rocketmq.client.rebalance.waitInterval") == null) {
            System.setProperty("rocketmq.client.rebalance.waitInterval", "2000");
        }
        String ns = args[0];
        String topic = args[1];
        String producerGroup = args[2];
        String consumerGroup = args[3];
        int count = Integer.parseInt(args[4]);
        String prefix = args[5];
        long deadline = System.currentTimeMillis() + Long.parseLong(args[6]) * 1000L;

        DefaultMQPushConsumer consumer = new DefaultMQPushConsumer(consumerGroup);
        consumer.setNamesrvAddr(ns);
        consumer.setInstanceName(prefix + "-consumer");
        consumer.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
        consumer.setPollNameServerInterval(1000);
        consumer.setHeartbeatBrokerInterval(2000);
        consumer.setPersistConsumerOffsetInterval(1000);
        consumer.subscribe(topic, "*");
        consumer.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
            for (MessageExt m : msgs) {
                print("recv " + new String(m.getBody(), StandardCharsets.UTF_8) + " " + m.getQueueId() + " "
                    + m.getQueueOffset() + " " + m.getReconsumeTimes());
            }
            return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
        });
        consumer.start();
        print("consumer-client-id=" + consumer.buildMQClientId());

        DefaultMQProducer producer = new DefaultMQProducer(producerGroup);
        producer.setNamesrvAddr(ns);
        producer.setInstanceName(prefix + "-producer");
        producer.setPollNameServerInterval(1000);
        producer.setHeartbeatBrokerInterval(2000);
        producer.start();
        for (int i = 0; i < count; i++) {
            Message msg = new Message(topic, "TagA", prefix + "-key-" + i,
                (prefix + "-body-" + i).getBytes(StandardCharsets.UTF_8));
            SendResult r = null;
            for (int attempt = 0; attempt < 20 && r == null; attempt++) {
                try {
                    r = producer.send(msg);
                } catch (Exception e) {
                    print("send-retry " + i + " " + e);
                    Thread.sleep(500);
                }
            }
            if (r == null) {
                print("send-failed " + i);
                System.exit(1);
            }
            print("sent " + i + " " + r.getMsgId() + " " + r.getOffsetMsgId() + " " + r.getMessageQueue().getQueueId()
                + " " + r.getQueueOffset());
        }
        print("sent-done");
        while (System.currentTimeMillis() < deadline) {
            Thread.sleep(200);
        }
        producer.shutdown();
        consumer.shutdown();
        System.exit(0);
    }

    private static synchronized void print(String line) {
        System.out.println(line);
        System.out.flush();
    }
}
