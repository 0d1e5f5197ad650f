package compat;

import static compat.Support.waitFor;

import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.rocketmq.client.consumer.DefaultMQPullConsumer;
import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.PullResult;
import org.apache.rocketmq.client.consumer.PullStatus;
import org.apache.rocketmq.client.consumer.listener.ConsumeOrderlyStatus;
import org.apache.rocketmq.client.consumer.listener.MessageListenerOrderly;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.client.producer.SendStatus;
import org.apache.rocketmq.common.consumer.ConsumeFromWhere;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageExt;
import org.apache.rocketmq.common.message.MessageQueue;
import org.apache.rocketmq.tools.admin.DefaultMQAdminExt;

/**
 * An orderly push consumer whose listener keeps failing one message (SUSPEND_CURRENT_QUEUE_A_MOMENT)
 * with the official Java client of the classpath. Prints facts, one per line; the Rust test judges.
 *
 * <pre>
 * OrderlyFailure &lt;namesrvAddr&gt; &lt;brokerAddr&gt; &lt;brokerName&gt; &lt;prefix&gt;
 * </pre>
 *
 * Sends K0..K5 (same sharding key, all to queue 1 by a MessageQueueSelector; K2 is the poison),
 * then consumes with maxReconsumeTimes=2 and suspendCurrentQueueTimeMillis=200. Output lines:
 * "sent key=K queueId=Q", "delivery seq=N key=K reconsumeTimes=R queueId=Q topic=T atMs=MS",
 * "dlq found=true|false ...", "dlqroute perm=P read=R write=W", "retry maxOffset=N",
 * "schedule level5 maxOffset=N", "done".
 * Exit 0 after "done", 1 on an exception, 2 on bad usage.
 */
public final class OrderlyFailure {

    static final int COUNT = 6;
    static final String POISON = "K2";
    static final int QUEUE = 1;

    private static final AtomicInteger INSTANCE = new AtomicInteger();

    public static void main(String[] args) {
        if (args.length != 4) {
            System.err.println("usage: OrderlyFailure <namesrvAddr> <brokerAddr> <brokerName> <prefix>");
            System.exit(2);
        }
        System.setProperty("rocketmq.client.rebalance.waitInterval", "2000");
        try {
            run(args[0], args[1], args[2], args[3]);
            out("done");
            System.exit(0);
        } catch (Throwable t) {
            t.printStackTrace();
            out("error " + t);
            System.exit(1);
        }
    }

    private static void out(String line) {
        System.out.println(line);
        System.out.flush();
    }

    private static void run(String ns, String brokerAddr, String brokerName, String prefix) throws Exception {
        String topic = prefix + "Orderly";
        String group = "cg_" + topic;
        DefaultMQAdminExt admin = Support.startAdmin(ns, instance(prefix));
        Support.createTopic(admin, brokerAddr, topic, 4);

        DefaultMQProducer p = new DefaultMQProducer("pg_" + topic);
        p.setNamesrvAddr(ns);
        p.setInstanceName(instance(prefix));
        p.start();
        for (int i = 0; i < COUNT; i++) {
            String key = "K" + i;
            Message m = new Message(topic, "t", key, body(prefix, key));
            // one sharding key for all six: the selector always picks the same queue
            SendResult r = p.send(m, (mqs, msg, arg) -> mqs.get((Integer) arg % mqs.size()), QUEUE);
            if (r.getSendStatus() != SendStatus.SEND_OK) {
                throw new IllegalStateException(key + ": " + r.getSendStatus());
            }
            out("sent key=" + key + " queueId=" + r.getMessageQueue().getQueueId());
        }
        p.shutdown();

        List<String> seen = new CopyOnWriteArrayList<>();
        AtomicInteger seq = new AtomicInteger();
        DefaultMQPushConsumer c = new DefaultMQPushConsumer(group);
        c.setNamesrvAddr(ns);
        c.setInstanceName(instance(prefix));
        c.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
        c.setPollNameServerInterval(1000);
        c.setHeartbeatBrokerInterval(2000);
        c.setMaxReconsumeTimes(2);
        c.setSuspendCurrentQueueTimeMillis(200);
        c.subscribe(topic, "*");
        c.registerMessageListener((MessageListenerOrderly) (msgs, ctx) -> {
            long now = System.currentTimeMillis();
            boolean poison = false;
            for (MessageExt m : msgs) {
                out("delivery seq=" + seq.incrementAndGet() + " key=" + m.getKeys() + " reconsumeTimes="
                    + m.getReconsumeTimes() + " queueId=" + m.getQueueId() + " topic=" + m.getTopic()
                    + " atMs=" + now);
                seen.add(m.getKeys());
                poison |= POISON.equals(m.getKeys());
            }
            return poison ? ConsumeOrderlyStatus.SUSPEND_CURRENT_QUEUE_A_MOMENT : ConsumeOrderlyStatus.SUCCESS;
        });
        c.start();
        waitFor(60, () -> seen.contains("K" + (COUNT - 1)));

        // The dead-letter queue: 1 queue, read with a separate pull consumer.
        String dlq = "%DLQ%" + group;
        MessageQueue mq = new MessageQueue(dlq, brokerName, 0);
        boolean some = waitFor(15, () -> {
            try {
                return admin.maxOffset(mq) >= 1;
            } catch (Exception e) {
                return false;
            }
        });
        if (!some) {
            out("dlq found=false");
        } else {
            DefaultMQPullConsumer pc = new DefaultMQPullConsumer("dlq_reader_" + prefix);
            pc.setNamesrvAddr(ns);
            pc.setInstanceName(instance(prefix));
            pc.start();
            PullResult pr = Support.pullFound(pc, mq, 15);
            if (pr == null || pr.getPullStatus() != PullStatus.FOUND) {
                out("dlq found=false pull=" + (pr == null ? "none" : pr.getPullStatus()));
            } else {
                for (MessageExt d : pr.getMsgFoundList()) {
                    boolean bodyOk = java.util.Arrays.equals(body(prefix, d.getKeys()), d.getBody());
                    out("dlq found=true count=" + pr.getMsgFoundList().size() + " key=" + d.getKeys()
                        + " bodyOk=" + bodyOk + " reconsumeTimes=" + d.getReconsumeTimes()
                        + " retryTopic=" + d.getProperty("RETRY_TOPIC") + " queueId=" + d.getQueueId());
                }
            }
            pc.shutdown();
            // Java's createTopicInSendMessageBackMethod: 1 queue, perm READ|WRITE.
            Object route = admin.examineTopicRouteInfo(dlq);
            for (Object qd : (List<?>) route.getClass().getMethod("getQueueDatas").invoke(route)) {
                out("dlqroute perm=" + qd.getClass().getMethod("getPerm").invoke(qd)
                    + " read=" + qd.getClass().getMethod("getReadQueueNums").invoke(qd)
                    + " write=" + qd.getClass().getMethod("getWriteQueueNums").invoke(qd));
            }
        }
        long retryMax = 0;
        try {
            retryMax = admin.maxOffset(new MessageQueue("%RETRY%" + group, brokerName, 0));
        } catch (Exception e) {
            // no retry topic: nothing went there
        }
        out("retry maxOffset=" + retryMax);
        // Where a send-back with delay level 5 waits (shared by all drivers of the cluster).
        out("schedule level5 maxOffset=" + admin.maxOffset(new MessageQueue("SCHEDULE_TOPIC_XXXX", brokerName, 4)));
        c.shutdown();
        admin.shutdown();
    }

    private static byte[] body(String prefix, String key) {
        return ("body-" + key + "-" + prefix).getBytes(StandardCharsets.UTF_8);
    }

    private static String instance(String prefix) {
        return "compat-orderly-" + prefix + "-" + INSTANCE.incrementAndGet();
    }
}
