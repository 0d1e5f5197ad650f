package compat;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.rocketmq.client.consumer.DefaultMQPullConsumer;
import org.apache.rocketmq.client.consumer.PullResult;
import org.apache.rocketmq.client.consumer.PullStatus;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.client.producer.SendStatus;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageAccessor;
import org.apache.rocketmq.common.message.MessageClientExt;
import org.apache.rocketmq.common.message.MessageExt;
import org.apache.rocketmq.common.message.MessageQueue;

/**
 * Store-level checks with the official client: what was acknowledged, and what a broker
 * serves back, one line per message, so a test can compare stores across brokers.
 *
 * <pre>
 * StoreDriver produce &lt;ns&gt; &lt;topic&gt; &lt;count&gt; &lt;batchSize&gt; [timerDelayMs]
 *     count sync sends (keys "key-i uk-i", tag Tag(i%3), properties seq=i color=c(i%5),
 *     body body-i), then one batch of batchSize (keys batch-j, tag TagB, seq=count+j);
 *     with timerDelayMs the single sends are timer messages due that long after sending.
 * StoreDriver produce-until &lt;ns&gt; &lt;topic&gt; &lt;seconds&gt; [threads]
 *     sync sends of keys k-i for that long, whatever fails (send timeout 3 s, no retries),
 *     from {@code threads} threads (default 1) sharing one producer (keys unique across threads).
 * StoreDriver dump &lt;ns&gt; &lt;topic&gt; &lt;group&gt; &lt;timeoutSeconds&gt; [from-zero]
 *     pulls every queue from its min offset to NO_NEW_MSG; with {@code from-zero} from offset 0
 *     without asking the min offset (the client asks only a master for it, so a broker group whose
 *     master is gone is read from its slave this way).
 * </pre>
 *
 * Acknowledged (SEND_OK) messages print
 * {@code ACK <queueId> <queueOffset> <offsetMsgId> <uniqId> <firstKey> <ackTimeMs>} (the wall-clock
 * time the acknowledgement arrived, last so that parsers of the first fields are unaffected); dumped ones
 * {@code MSG <queueId> <queueOffset> <offsetMsgId> <uniqId> <keys|joined> <tags> <seq> <color> <body>}
 * (bodies carry a 3000-byte padding; the body printed is the part before it).
 * Ends with {@code DONE acked=N} / {@code DUMPED n}; exit 0, or 1 on failure.
 */
public final class StoreDriver {

    private StoreDriver() {
    }

    public static void main(String[] args) {
        System.setProperty("rmq.logback.configurationFile", "rmq.client.logback.xml");
        int rc;
        try {
            switch (args.length > 0 ? args[0] : "") {
                case "produce":
                    rc = produce(args[1], args[2], Integer.parseInt(args[3]), Integer.parseInt(args[4]),
                        args.length > 5 ? Long.parseLong(args[5]) : 0);
                    break;
                case "produce-until":
                    rc = produceUntil(args[1], args[2], Integer.parseInt(args[3]),
                        args.length > 4 ? Integer.parseInt(args[4]) : 1);
                    break;
                case "dump":
                    rc = dump(args[1], args[2], args[3], Integer.parseInt(args[4]),
                        args.length > 5 && "from-zero".equals(args[5]));
                    break;
                default:
                    System.err.println("usage: StoreDriver produce|produce-until|dump ...");
                    rc = 2;
            }
        } catch (Throwable t) {
            System.out.println("FAIL " + t);
            t.printStackTrace();
            rc = 1;
        }
        System.out.flush();
        System.exit(rc);
    }

    private static DefaultMQProducer producer(String ns) throws Exception {
        DefaultMQProducer p = new DefaultMQProducer("store-driver-producer");
        p.setNamesrvAddr(ns);
        p.setInstanceName("store-driver-" + System.nanoTime());
        p.setPollNameServerInterval(1000);
        p.setHeartbeatBrokerInterval(2000);
        p.setSendMsgTimeout(3000);
        p.setRetryTimesWhenSendFailed(0);
        p.start();
        return p;
    }

    /** Bodies are padded to about 3 KB (below the client's 4 KiB compression threshold). */
    private static final String PAD = "|" + new String(new char[3000]).replace('\0', 'x');

    private static Message message(String topic, String tag, String keys, long seq, String color, String body) {
        Message m = new Message(topic, tag, keys, (body + PAD).getBytes(StandardCharsets.UTF_8));
        m.putUserProperty("seq", Long.toString(seq));
        m.putUserProperty("color", color);
        return m;
    }

    private static void ack(SendResult r, int index, String key) {
        String[] offsetIds = r.getOffsetMsgId().split(",");
        String[] uniqIds = r.getMsgId().split(",");
        System.out.println("ACK " + r.getMessageQueue().getQueueId() + " " + (r.getQueueOffset() + index) + " "
            + offsetIds[Math.min(index, offsetIds.length - 1)] + " " + uniqIds[Math.min(index, uniqIds.length - 1)]
            + " " + key + " " + System.currentTimeMillis());
    }

    /**
     * {@code count} single sends, then a batch of {@code batchSize}; with {@code timerDelayMs > 0} the single
     * sends are 5.x timer messages (TIMER_DELIVER_MS = send time + delay).
     */
    private static int produce(String ns, String topic, int count, int batchSize, long timerDelayMs)
        throws Exception {
        DefaultMQProducer p = producer(ns);
        int acked = 0;
        try {
            for (int i = 0; i < count; i++) {
                Message m = message(topic, "Tag" + (i % 3), "key-" + i + " uk-" + i, i, "c" + (i % 5), "body-" + i);
                if (timerDelayMs > 0) {
                    MessageAccessor.putProperty(m, "TIMER_DELIVER_MS",
                        Long.toString(System.currentTimeMillis() + timerDelayMs));
                }
                SendResult r = sendWithRetry(p, m);
                if (r.getSendStatus() != SendStatus.SEND_OK) {
                    System.out.println("FAIL send " + i + ": " + r.getSendStatus());
                    return 1;
                }
                ack(r, 0, "key-" + i);
                acked++;
            }
            if (batchSize > 0) {
                List<Message> batch = new ArrayList<>();
                for (int j = 0; j < batchSize; j++) {
                    batch.add(message(topic, "TagB", "batch-" + j, count + j, "batch", "batch-body-" + j));
                }
                SendResult r = p.send(batch);
                if (r.getSendStatus() != SendStatus.SEND_OK) {
                    System.out.println("FAIL batch: " + r.getSendStatus());
                    return 1;
                }
                for (int j = 0; j < batchSize; j++) {
                    ack(r, j, "batch-" + j);
                    acked++;
                }
            }
        } finally {
            p.shutdown();
        }
        System.out.println("DONE acked=" + acked);
        return 0;
    }

    /** The first sends may race the route: retry for a while. */
    private static SendResult sendWithRetry(DefaultMQProducer p, Message m) throws Exception {
        long deadline = System.currentTimeMillis() + 30000;
        while (true) {
            try {
                return p.send(m);
            } catch (Exception e) {
                if (System.currentTimeMillis() > deadline) {
                    throw e;
                }
                Thread.sleep(500);
            }
        }
    }

    private static int produceUntil(String ns, String topic, int seconds, int threads) throws Exception {
        DefaultMQProducer p = producer(ns);
        long deadline = System.currentTimeMillis() + seconds * 1000L;
        AtomicLong next = new AtomicLong();
        AtomicInteger acked = new AtomicInteger();
        AtomicInteger failed = new AtomicInteger();
        Runnable sender = () -> {
            try {
                while (System.currentTimeMillis() < deadline) {
                    long i = next.getAndIncrement();
                    Message m = message(topic, "TagK", "k-" + i, i, "k", "kill-body-" + i);
                    try {
                        SendResult r = p.send(m);
                        if (r.getSendStatus() == SendStatus.SEND_OK) {
                            ack(r, 0, "k-" + i);
                            acked.incrementAndGet();
                        } else {
                            System.out.println("NOTOK k-" + i + " " + r.getSendStatus());
                        }
                    } catch (Exception e) {
                        failed.incrementAndGet();
                        System.out.println("ERR k-" + i + " " + e.getClass().getSimpleName());
                        Thread.sleep(100);
                    }
                    System.out.flush();
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        };
        List<Thread> running = new ArrayList<>();
        try {
            for (int t = 0; t < Math.max(1, threads); t++) {
                Thread th = new Thread(sender, "produce-until-" + t);
                th.start();
                running.add(th);
            }
            for (Thread th : running) {
                th.join();
            }
        } finally {
            p.shutdown();
        }
        System.out.println("DONE acked=" + acked.get() + " failed=" + failed.get());
        return 0;
    }

    /** The body up to the padding, checked to carry exactly the padding after it. */
    private static String bodyHead(byte[] body) {
        String s = new String(body, StandardCharsets.UTF_8);
        int bar = s.indexOf('|');
        if (bar < 0 || !s.substring(bar).equals(PAD)) {
            return "BAD-BODY(" + body.length + ")";
        }
        return s.substring(0, bar);
    }

    @SuppressWarnings("deprecation")
    private static int dump(String ns, String topic, String group, int timeoutSeconds, boolean fromZero)
        throws Exception {
        long deadline = System.currentTimeMillis() + timeoutSeconds * 1000L;
        DefaultMQPullConsumer c = new DefaultMQPullConsumer(group);
        c.setNamesrvAddr(ns);
        c.setInstanceName("store-driver-dump-" + System.nanoTime());
        c.setPollNameServerInterval(1000);
        c.start();
        int n = 0;
        try {
            Set<MessageQueue> mqs = null;
            while (mqs == null || mqs.isEmpty()) {
                try {
                    mqs = c.fetchSubscribeMessageQueues(topic);
                } catch (Exception e) {
                    if (System.currentTimeMillis() > deadline) {
                        throw e;
                    }
                    Thread.sleep(500);
                }
            }
            for (MessageQueue mq : new TreeSet<>(mqs)) {
                long offset = fromZero ? 0 : c.minOffset(mq);
                while (true) {
                    PullResult r;
                    try {
                        r = c.pull(mq, "*", offset, 32);
                    } catch (Exception e) {
                        if (System.currentTimeMillis() > deadline) {
                            throw e;
                        }
                        Thread.sleep(500);
                        continue;
                    }
                    if (r.getPullStatus() == PullStatus.FOUND) {
                        for (MessageExt m : r.getMsgFoundList()) {
                            String offsetId = m instanceof MessageClientExt
                                ? ((MessageClientExt) m).getOffsetMsgId() : m.getMsgId();
                            System.out.println("MSG " + m.getQueueId() + " " + m.getQueueOffset() + " " + offsetId
                                + " " + m.getProperty("UNIQ_KEY") + " " + String.valueOf(m.getKeys()).replace(' ', '|')
                                + " " + m.getTags() + " " + m.getUserProperty("seq") + " "
                                + m.getUserProperty("color") + " " + bodyHead(m.getBody()));
                            n++;
                        }
                        offset = r.getNextBeginOffset();
                    } else if (r.getPullStatus() == PullStatus.NO_NEW_MSG) {
                        break;
                    } else {
                        System.out.println("FAIL pull " + mq + " at " + offset + ": " + r.getPullStatus()
                            + " next=" + r.getNextBeginOffset());
                        return 1;
                    }
                }
            }
        } finally {
            c.shutdown();
        }
        System.out.println("DUMPED " + n);
        return 0;
    }
}
