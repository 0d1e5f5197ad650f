package compat;

import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.consumer.listener.MessageListenerConcurrently;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.common.consumer.ConsumeFromWhere;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageExt;
import org.apache.rocketmq.tools.admin.DefaultMQAdminExt;

/**
 * A 5.x push consumer in POP mode (the group set to POP with mqadmin setConsumeMode beforehand,
 * and {@code clientRebalance=false}, so the client asks the broker for its queues with
 * QUERY_ASSIGNMENT and pops). Prints facts, one per line; the Rust test judges.
 *
 * <pre>
 * PopConsume &lt;namesrvAddr&gt; &lt;brokerAddr&gt; &lt;topic&gt; &lt;group&gt; produce &lt;prefix&gt; &lt;count&gt;
 * PopConsume &lt;namesrvAddr&gt; &lt;brokerAddr&gt; &lt;topic&gt; &lt;group&gt; hold &lt;invisibleMs&gt;
 * PopConsume &lt;namesrvAddr&gt; &lt;brokerAddr&gt; &lt;topic&gt; &lt;group&gt; consume &lt;invisibleMs&gt; &lt;keys,...&gt; &lt;failOnce,...&gt; &lt;seconds&gt;
 * </pre>
 *
 * produce: creates the topic (4 queues) and sends count messages keyed prefix0..; "sent key=K" and
 * compat.StoreDriver's "ACK queueId queueOffset offsetMsgId uniqId key atMs" line per send.
 * hold: consumes and never returns from the listener; prints "held key=K" and halts the JVM
 * two seconds after the first message, so nothing popped is acked ("halted").
 * consume: prints "delivery key=K reconsumeTimes=R topic=T atMs=MS" per delivery, fails each
 * key of failOnce on its first delivery (RECONSUME_LATER), and ends with "done" once every key
 * was consumed successfully (or "timeout" after the given seconds).
 * The 5.x-only setters are called by reflection so the drivers still compile against 4.9.8.
 */
public final class PopConsume {

    public static void main(String[] args) {
        if (args.length < 5) {
            System.err.println("usage: PopConsume <ns> <brokerAddr> <topic> <group> produce|hold|consume ...");
            System.exit(2);
        }
        try {
            String ns = args[0];
            String brokerAddr = args[1];
            String topic = args[2];
            String group = args[3];
            switch (args[4]) {
                case "produce":
                    produce(ns, brokerAddr, topic, args[5], Integer.parseInt(args[6]));
                    out("done");
                    System.exit(0);
                    break;
                case "hold":
                    hold(ns, topic, group, Long.parseLong(args[5]));
                    break;
                case "consume":
                    boolean ok = consume(ns, topic, group, Long.parseLong(args[5]), split(args[6]), split(args[7]),
                        Integer.parseInt(args[8]));
                    out(ok ? "done" : "timeout");
                    System.exit(0);
                    break;
                default:
                    System.exit(2);
            }
        } catch (Throwable t) {
            t.printStackTrace();
            out("error " + t);
            System.exit(1);
        }
    }

    private static Set<String> split(String csv) {
        Set<String> s = ConcurrentHashMap.newKeySet();
        for (String k : csv.split(",")) {
            if (!k.isEmpty()) {
                s.add(k);
            }
        }
        return s;
    }

    private static synchronized void out(String line) {
        System.out.println(line);
        System.out.flush();
    }

    private static void produce(String ns, String brokerAddr, String topic, String prefix, int count) throws Exception {
        DefaultMQAdminExt admin = Support.startAdmin(ns, "pop-admin-" + prefix);
        Support.createTopic(admin, brokerAddr, topic, 4);
        admin.shutdown();
        DefaultMQProducer p = new DefaultMQProducer("pg_" + topic);
        p.setNamesrvAddr(ns);
        p.setInstanceName("pop-producer-" + prefix);
        p.start();
        for (int i = 0; i < count; i++) {
            String key = prefix + i;
            Message m = new Message(topic, "TagA", key, ("body-" + key).getBytes(StandardCharsets.UTF_8));
            SendResult r = p.send(m);
            out("sent key=" + key + " queueId=" + r.getMessageQueue().getQueueId() + " status=" + r.getSendStatus());
            // The acknowledgement in compat.StoreDriver's form, for the (queue, offset) invariant.
            out("ACK " + r.getMessageQueue().getQueueId() + " " + r.getQueueOffset() + " " + r.getOffsetMsgId() + " "
                + r.getMsgId() + " " + key + " " + System.currentTimeMillis());
        }
        p.shutdown();
    }

    private static DefaultMQPushConsumer popConsumer(String ns, String topic, String group, long invisibleMs,
        String instance) throws Exception {
        DefaultMQPushConsumer c = new DefaultMQPushConsumer(group);
        c.setNamesrvAddr(ns);
        c.setInstanceName(instance);
        c.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
        c.subscribe(topic, "*");
        // 5.x only: let the broker assign queues (and so the mode) and set the invisible time.
        c.getClass().getMethod("setClientRebalance", boolean.class).invoke(c, false);
        c.getClass().getMethod("setPopInvisibleTime", long.class).invoke(c, invisibleMs);
        return c;
    }

    private static void hold(String ns, String topic, String group, long invisibleMs) throws Exception {
        DefaultMQPushConsumer c = popConsumer(ns, topic, group, invisibleMs, "pop-hold-" + System.nanoTime());
        AtomicBoolean first = new AtomicBoolean(true);
        c.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
            for (MessageExt m : msgs) {
                out("held key=" + m.getKeys() + " reconsumeTimes=" + m.getReconsumeTimes());
            }
            if (first.compareAndSet(true, false)) {
                Thread t = new Thread(() -> {
                    try {
                        Thread.sleep(2000);
                    } catch (InterruptedException ignored) {
                    }
                    out("halted");
                    Runtime.getRuntime().halt(0);
                });
                t.setDaemon(true);
                t.start();
            }
            try {
                Thread.sleep(600_000);
            } catch (InterruptedException ignored) {
            }
            return ConsumeConcurrentlyStatus.RECONSUME_LATER;
        });
        c.start();
        Thread.sleep(120_000);
        out("nothing to hold");
        Runtime.getRuntime().halt(3);
    }

    private static boolean consume(String ns, String topic, String group, long invisibleMs, Set<String> keys,
        Set<String> failOnce, int seconds) throws Exception {
        Set<String> pending = ConcurrentHashMap.newKeySet();
        pending.addAll(keys);
        Set<String> failed = ConcurrentHashMap.newKeySet();
        DefaultMQPushConsumer c = popConsumer(ns, topic, group, invisibleMs, "pop-consume-" + System.nanoTime());
        c.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
            for (MessageExt m : msgs) {
                String key = m.getKeys();
                out("delivery key=" + key + " reconsumeTimes=" + m.getReconsumeTimes() + " topic=" + m.getTopic()
                    + " atMs=" + System.currentTimeMillis());
                if (failOnce.contains(key) && failed.add(key)) {
                    out("failing key=" + key);
                    return ConsumeConcurrentlyStatus.RECONSUME_LATER;
                }
            }
            for (MessageExt m : msgs) {
                pending.remove(m.getKeys());
            }
            return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
        });
        c.start();
        boolean ok = Support.waitFor(seconds, pending::isEmpty);
        // Let the last acks leave before stopping.
        Thread.sleep(500);
        c.shutdown();
        return ok;
    }
}
