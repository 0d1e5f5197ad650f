package compat;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.consumer.listener.MessageListenerConcurrently;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.client.producer.SendStatus;
import org.apache.rocketmq.common.consumer.ConsumeFromWhere;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.tools.admin.DefaultMQAdminExt;

/**
 * The workload behind the metrics comparison: the same against any broker.
 *
 * <pre>
 * MetricsWorkload &lt;namesrvAddr&gt; &lt;brokerAddr&gt; &lt;prefix&gt; &lt;count&gt; &lt;lagCount&gt; &lt;dlqCount&gt; &lt;stopFile&gt; [holdSeconds=120]
 * </pre>
 *
 * Creates &lt;prefix&gt;Main (4 queues), &lt;prefix&gt;Dlq (4) and &lt;prefix&gt;Lag (1) on the broker, then:
 * <ol>
 * <li>sends count messages to Main, consumed by group &lt;prefix&gt;_main;</li>
 * <li>sends dlqCount messages to Dlq, whose group &lt;prefix&gt;_dlq (maxReconsumeTimes 0) answers
 * RECONSUME_LATER, so each goes to %DLQ%&lt;prefix&gt;_dlq at once;</li>
 * <li>group &lt;prefix&gt;_lag consumes one message on Lag, waits until its offset is committed,
 * then blocks in its listener while lagCount more are sent: the group's lag is lagCount.</li>
 * </ol>
 * Prints "ready main=N dlq=D lag=L" and keeps every client online until stopFile exists
 * (or holdSeconds pass), then prints "done" and exits 0; 1 on failure.
 */
public final class MetricsWorkload {

    private MetricsWorkload() {
    }

    public static void main(String[] args) {
        if (args.length < 7 || args.length > 8) {
            System.err.println("usage: MetricsWorkload <namesrvAddr> <brokerAddr> <prefix> <count> <lagCount> <dlqCount> <stopFile> [holdSeconds]");
            System.exit(2);
        }
        quietClientLogs();
        int rc;
        try {
            rc = run(args);
        } catch (Throwable t) {
            System.err.println("MetricsWorkload: unexpected failure: " + t);
            t.printStackTrace();
            rc = 1;
        }
        System.exit(rc);
    }

    private static void quietClientLogs() {
        String root;
        try {
            root = Files.createTempDirectory("compat-rmq-metrics-logs-").toString();
        } catch (IOException e) {
            root = System.getProperty("java.io.tmpdir");
        }
        System.setProperty("rocketmq.client.logRoot", root);
        System.setProperty("rocketmq.client.logLevel", "WARN");
        System.setProperty("rocketmq.log.root", root);
        System.setProperty("rocketmq.log.level", "WARN");
        System.setProperty("rmq.logback.configurationFile", "rmq.client.logback.xml");
        System.setProperty("rocketmq.client.rebalance.waitInterval", "1000");
    }

    private static DefaultMQPushConsumer consumer(String ns, String group, String topic) throws Exception {
        DefaultMQPushConsumer c = new DefaultMQPushConsumer(group);
        c.setNamesrvAddr(ns);
        c.setInstanceName(group);
        c.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
        c.setPollNameServerInterval(1000);
        c.setHeartbeatBrokerInterval(1000);
        c.setPersistConsumerOffsetInterval(1000);
        c.subscribe(topic, "*");
        return c;
    }

    private static boolean waitFor(long seconds, java.util.function.BooleanSupplier cond) throws InterruptedException {
        long deadline = System.currentTimeMillis() + seconds * 1000L;
        while (System.currentTimeMillis() < deadline) {
            if (cond.getAsBoolean()) {
                return true;
            }
            Thread.sleep(100);
        }
        return cond.getAsBoolean();
    }

    private static void send(DefaultMQProducer p, String topic, int n, String what) throws Exception {
        for (int i = 0; i < n; i++) {
            Message m = new Message(topic, "TagA", what + "-" + i,
                (what + "-body-" + i).getBytes(StandardCharsets.UTF_8));
            SendResult r = p.send(m);
            if (r.getSendStatus() != SendStatus.SEND_OK) {
                throw new IllegalStateException(topic + " send " + i + ": " + r);
            }
        }
    }

    private static int run(String[] args) throws Exception {
        final String ns = args[0];
        final String brokerAddr = args[1];
        final String prefix = args[2];
        final int count = Integer.parseInt(args[3]);
        final int lagCount = Integer.parseInt(args[4]);
        final int dlqCount = Integer.parseInt(args[5]);
        final File stopFile = new File(args[6]);
        final int holdSeconds = args.length > 7 ? Integer.parseInt(args[7]) : 120;
        final String main = prefix + "Main";
        final String dlq = prefix + "Dlq";
        final String lag = prefix + "Lag";

        DefaultMQAdminExt admin = Support.startAdmin(ns, prefix + "-admin");
        Support.createTopic(admin, brokerAddr, main, 4);
        Support.createTopic(admin, brokerAddr, dlq, 4);
        Support.createTopic(admin, brokerAddr, lag, 1);
        admin.shutdown();

        final AtomicInteger mainGot = new AtomicInteger();
        final AtomicInteger dlqGot = new AtomicInteger();
        final AtomicInteger lagGot = new AtomicInteger();
        final AtomicBoolean block = new AtomicBoolean(false);
        final AtomicBoolean blocked = new AtomicBoolean(false);
        final CountDownLatch release = new CountDownLatch(1);

        DefaultMQPushConsumer mainC = consumer(ns, prefix + "_main", main);
        mainC.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
            mainGot.addAndGet(msgs.size());
            return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
        });
        DefaultMQPushConsumer dlqC = consumer(ns, prefix + "_dlq", dlq);
        dlqC.setMaxReconsumeTimes(0);
        dlqC.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
            dlqGot.addAndGet(msgs.size());
            return ConsumeConcurrentlyStatus.RECONSUME_LATER;
        });
        DefaultMQPushConsumer lagC = consumer(ns, prefix + "_lag", lag);
        lagC.setConsumeThreadMin(1);
        lagC.setConsumeThreadMax(1);
        lagC.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
            if (block.get()) {
                blocked.set(true);
                try {
                    release.await();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
                return ConsumeConcurrentlyStatus.RECONSUME_LATER;
            }
            lagGot.addAndGet(msgs.size());
            return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
        });
        mainC.start();
        dlqC.start();
        lagC.start();

        DefaultMQProducer producer = new DefaultMQProducer(prefix + "_producer");
        producer.setNamesrvAddr(ns);
        producer.setInstanceName(prefix + "_producer");
        producer.setPollNameServerInterval(1000);
        producer.setHeartbeatBrokerInterval(1000);
        // A busy shared machine: no resend (it would count twice), a long wait.
        producer.setSendMsgTimeout(15000);
        producer.start();

        try {
            send(producer, main, count, "main");
            if (!waitFor(60, () -> mainGot.get() >= count)) {
                System.out.println("FAIL main received " + mainGot.get() + " of " + count);
                return 1;
            }
            send(producer, dlq, dlqCount, "dlq");
            if (!waitFor(60, () -> dlqGot.get() >= dlqCount)) {
                System.out.println("FAIL dlq deliveries " + dlqGot.get() + " of " + dlqCount);
                return 1;
            }
            send(producer, lag, 1, "warm");
            if (!waitFor(60, () -> lagGot.get() >= 1)) {
                System.out.println("FAIL lag warm-up not consumed");
                return 1;
            }
            // Two offset persists (every second) after the warm-up message.
            Thread.sleep(2500);
            block.set(true);
            send(producer, lag, lagCount, "lag");
            if (!waitFor(60, blocked::get)) {
                System.out.println("FAIL lag listener never entered");
                return 1;
            }
            System.out.println("ready main=" + mainGot.get() + " dlq=" + dlqGot.get() + " lag=" + lagCount);
            System.out.flush();
            waitFor(holdSeconds, stopFile::exists);
            System.out.println("done");
            return 0;
        } finally {
            release.countDown();
            producer.shutdown();
            mainC.shutdown();
            dlqC.shutdown();
            lagC.shutdown();
        }
    }
}
