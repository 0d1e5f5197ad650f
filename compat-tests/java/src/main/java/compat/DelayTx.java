package compat;

import static compat.Support.verdict;
import static compat.Support.waitFor;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.rocketmq.client.consumer.DefaultMQPullConsumer;
import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.PullResult;
import org.apache.rocketmq.client.consumer.PullStatus;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.consumer.listener.MessageListenerConcurrently;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.LocalTransactionState;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.client.producer.SendStatus;
import org.apache.rocketmq.client.producer.TransactionListener;
import org.apache.rocketmq.client.producer.TransactionMQProducer;
import org.apache.rocketmq.client.producer.TransactionSendResult;
import org.apache.rocketmq.common.consumer.ConsumeFromWhere;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageAccessor;
import org.apache.rocketmq.common.message.MessageExt;
import org.apache.rocketmq.common.message.MessageQueue;
import org.apache.rocketmq.tools.admin.DefaultMQAdminExt;

/**
 * Delayed messages (levels and 5.x delivery times), retry with delay then dead letter, and
 * transactions (commit, rollback, check-back both ways, a broker restart with a pending half
 * message and a pending delayed message) with the official Java client of the classpath.
 *
 * <pre>
 * DelayTx &lt;namesrvAddr&gt; &lt;brokerAddr&gt; &lt;brokerName&gt; &lt;prefix&gt; &lt;restartFlagFile&gt; &lt;scenario&gt;...
 * </pre>
 *
 * Scenarios: delay, timer, retry, tx, restart. "restart" prints "phase=restart-now", then waits
 * for the test to restart the broker and write the epoch millis of the restart's end into
 * restartFlagFile. Each prints "scenario=NAME ok ..." or "scenario=NAME FAIL ..."; exit 0 when
 * all passed, 1 otherwise, 2 on bad usage.
 */
public final class DelayTx {

    private static String ns;
    private static String brokerAddr;
    private static String brokerName;
    private static String prefix;
    private static Path restartFlag;
    private static final AtomicInteger INSTANCE = new AtomicInteger();
    private static DefaultMQAdminExt admin;
    private static final long[] LEVEL_MS = {1000, 5000, 10000};

    public static void main(String[] args) {
        if (args.length < 6) {
            System.err.println("usage: DelayTx <namesrvAddr> <brokerAddr> <brokerName> <prefix> <restartFlagFile> <scenario>...");
            System.exit(2);
        }
        ns = args[0];
        brokerAddr = args[1];
        brokerName = args[2];
        prefix = args[3];
        restartFlag = Paths.get(args[4]);
        System.setProperty("rocketmq.client.rebalance.waitInterval", "2000");
        boolean allOk = Support.runScenarios(Arrays.copyOfRange(args, 5, args.length), DelayTx::run);
        if (admin != null) {
            admin.shutdown();
        }
        System.exit(allOk ? 0 : 1);
    }

    private static String run(String s) throws Exception {
        switch (s) {
            case "delay":
                return delay();
            case "timer":
                return timer();
            case "retry":
                return retry();
            case "tx":
                return tx();
            case "restart":
                return restart();
            default:
                return "FAIL unknown scenario";
        }
    }

    /** A received message and when. */
    private static final class Got {
        final MessageExt msg;
        final long at;

        Got(MessageExt msg, long at) {
            this.msg = msg;
            this.at = at;
        }
    }

    // ---------------------------------------------------------------- delay

    /** Levels 1..3 on time; levels 5 and 18 parked in SCHEDULE_TOPIC_XXXX queues 4 and 17. */
    private static String delay() throws Exception {
        String topic = prefix + "Delay";
        createTopic(topic);
        Map<String, Got> got = new ConcurrentHashMap<>();
        DefaultMQPushConsumer c = consumer("cg_" + topic, topic, got);
        DefaultMQProducer p = producer();
        long before4 = scheduleMax(4);
        long before17 = scheduleMax(17);
        for (int level = 1; level <= 3; level++) {
            send(p, topic, "L" + level, level);
        }
        send(p, topic, "L5", 5);
        send(p, topic, "L18", 18);
        List<String> problems = new ArrayList<>();
        waitFor(LEVEL_MS[2] / 1000 + 8, () -> got.containsKey("L1") && got.containsKey("L2") && got.containsKey("L3"));
        StringBuilder summary = new StringBuilder();
        for (int level = 1; level <= 3; level++) {
            Got g = got.get("L" + level);
            if (g == null) {
                problems.add("L" + level + " not delivered");
                continue;
            }
            long late = g.at - g.msg.getBornTimestamp() - LEVEL_MS[level - 1];
            summary.append(" level").append(level).append("LateMs=").append(late);
            if (late < 0) {
                problems.add("L" + level + " early by " + (-late) + " ms");
            }
            if (late > 1500) {
                problems.add("L" + level + " late by " + late + " ms");
            }
            if (!topic.equals(g.msg.getTopic())) {
                problems.add("L" + level + " topic " + g.msg.getTopic());
            }
            summary.append(" level").append(level).append("Props=")
                .append("DELAY:").append(g.msg.getProperty("DELAY"))
                .append(",REAL_TOPIC:").append(g.msg.getProperty("REAL_TOPIC"))
                .append(",REAL_QID:").append(g.msg.getProperty("REAL_QID"));
        }
        if (got.containsKey("L5") || got.containsKey("L18")) {
            problems.add("a long delay was delivered early");
        }
        long after4 = scheduleMax(4);
        long after17 = scheduleMax(17);
        if (after4 < before4 + 1) {
            problems.add("SCHEDULE_TOPIC_XXXX queue 4 max " + before4 + " -> " + after4);
        }
        if (after17 < before17 + 1) {
            problems.add("SCHEDULE_TOPIC_XXXX queue 17 max " + before17 + " -> " + after17);
        }
        summary.append(" scheduleQueue4Max=").append(after4).append(" scheduleQueue17Max=").append(after17);
        c.shutdown();
        p.shutdown();
        return verdict(problems, summary.toString().trim());
    }

    // ---------------------------------------------------------------- timer

    /** A delivery time 3 s ahead (TIMER_DELIVER_MS): not early, not much late. */
    private static String timer() throws Exception {
        String topic = prefix + "Timer";
        createTopic(topic);
        Map<String, Got> got = new ConcurrentHashMap<>();
        DefaultMQPushConsumer c = consumer("cg_" + topic, topic, got);
        DefaultMQProducer p = producer();
        Message m = new Message(topic, "t", "T1", ("timer-" + prefix).getBytes(StandardCharsets.UTF_8));
        long due = System.currentTimeMillis() + 3000;
        String how;
        try {
            Message.class.getMethod("setDeliverTimeMs", long.class).invoke(m, due);
            how = "setDeliverTimeMs";
        } catch (NoSuchMethodException e) {
            MessageAccessor.putProperty(m, "TIMER_DELIVER_MS", Long.toString(due));
            how = "property";
        }
        SendResult r = p.send(m);
        List<String> problems = new ArrayList<>();
        if (r.getSendStatus() != SendStatus.SEND_OK) {
            problems.add("send " + r.getSendStatus());
        }
        waitFor(12, () -> got.containsKey("T1"));
        Got g = got.get("T1");
        String summary = "via=" + how;
        if (g == null) {
            problems.add("not delivered");
        } else {
            long late = g.at - due;
            summary += " lateMs=" + late;
            if (late < 0) {
                problems.add("early by " + (-late) + " ms");
            }
            if (late > 1500) {
                problems.add("late by " + late + " ms");
            }
        }
        c.shutdown();
        p.shutdown();
        return verdict(problems, summary);
    }

    // ---------------------------------------------------------------- retry

    /** RECONSUME_LATER with maxReconsumeTimes=1: again after level 3 (10 s), then the DLQ. */
    private static String retry() throws Exception {
        String topic = prefix + "Retry";
        String group = "cg_" + topic;
        createTopic(topic);
        List<Got> seen = new CopyOnWriteArrayList<>();
        DefaultMQPushConsumer c = new DefaultMQPushConsumer(group);
        configure(c);
        c.setMaxReconsumeTimes(1);
        c.subscribe(topic, "*");
        c.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
            long now = System.currentTimeMillis();
            for (MessageExt m : msgs) {
                seen.add(new Got(m, now));
            }
            return ConsumeConcurrentlyStatus.RECONSUME_LATER;
        });
        c.start();
        DefaultMQProducer p = producer();
        send(p, topic, "R1", 0);
        List<String> problems = new ArrayList<>();
        waitFor(25, () -> seen.size() >= 2);
        String summary = "deliveries=" + seen.size();
        if (seen.size() < 2) {
            problems.add("retry not seen: " + seen.size() + " deliveries");
        } else {
            long gap = seen.get(1).at - seen.get(0).at;
            summary += " retryGapMs=" + gap + " reconsumeTimes=" + seen.get(0).msg.getReconsumeTimes() + ","
                + seen.get(1).msg.getReconsumeTimes();
            if (gap < 10000 - 300 || gap > 10000 + 2500) {
                problems.add("retry gap " + gap + " ms, want about 10000");
            }
            if (seen.get(0).msg.getReconsumeTimes() != 0 || seen.get(1).msg.getReconsumeTimes() != 1) {
                problems.add("reconsumeTimes " + seen.get(0).msg.getReconsumeTimes() + "," + seen.get(1).msg.getReconsumeTimes());
            }
            if (!topic.equals(seen.get(1).msg.getTopic())) {
                problems.add("retry topic shown as " + seen.get(1).msg.getTopic());
            }
        }
        // The dead-letter queue gets it after the second failure.
        String dlq = "%DLQ%" + group;
        MessageQueue mq = new MessageQueue(dlq, brokerName, 0);
        boolean inDlq = waitFor(20, () -> {
            try {
                return admin.maxOffset(mq) >= 1;
            } catch (Exception e) {
                return false;
            }
        });
        if (!inDlq) {
            problems.add("DLQ empty");
        } else {
            DefaultMQPullConsumer pc = new DefaultMQPullConsumer("dlq_reader_" + prefix);
            pc.setNamesrvAddr(ns);
            pc.setInstanceName(instance());
            pc.start();
            PullResult pr = Support.pullFound(pc, mq, 20);
            if (pr == null || pr.getPullStatus() != PullStatus.FOUND) {
                problems.add("DLQ not readable: " + (pr == null ? "no result" : pr.getPullStatus()));
            } else {
                MessageExt d = pr.getMsgFoundList().get(0);
                summary += " dlqKeys=" + d.getKeys() + " dlqReconsumeTimes=" + d.getReconsumeTimes();
                if (!"R1".equals(d.getKeys())) {
                    problems.add("DLQ holds " + d.getKeys());
                }
            }
            pc.shutdown();
        }
        c.shutdown();
        p.shutdown();
        return verdict(problems, summary);
    }

    // ------------------------------------------------------------------- tx

    /** Local outcome and check-back answer per key; times each key was checked. */
    private static final Map<String, AtomicInteger> CHECKS = new ConcurrentHashMap<>();
    private static final Map<String, Long> CHECKED_AT = new ConcurrentHashMap<>();

    private static TransactionMQProducer txProducer(String group) throws Exception {
        TransactionMQProducer p = new TransactionMQProducer(group);
        p.setNamesrvAddr(ns);
        p.setInstanceName(instance());
        p.setPollNameServerInterval(1000);
        p.setHeartbeatBrokerInterval(2000);
        p.setTransactionListener(new TransactionListener() {
            @Override
            public LocalTransactionState executeLocalTransaction(Message msg, Object arg) {
                String k = msg.getKeys();
                if (k.startsWith("commit")) {
                    return LocalTransactionState.COMMIT_MESSAGE;
                }
                if (k.startsWith("rollback")) {
                    return LocalTransactionState.ROLLBACK_MESSAGE;
                }
                return LocalTransactionState.UNKNOW;
            }

            @Override
            public LocalTransactionState checkLocalTransaction(MessageExt msg) {
                String k = msg.getKeys();
                CHECKS.computeIfAbsent(k, x -> new AtomicInteger()).incrementAndGet();
                CHECKED_AT.putIfAbsent(k, System.currentTimeMillis());
                if (k.startsWith("unknown-commit") || k.startsWith("restart")) {
                    return LocalTransactionState.COMMIT_MESSAGE;
                }
                if (k.startsWith("unknown-rollback")) {
                    return LocalTransactionState.ROLLBACK_MESSAGE;
                }
                return LocalTransactionState.UNKNOW;
            }
        });
        p.start();
        return p;
    }

    private static TransactionSendResult sendTx(TransactionMQProducer p, String topic, String key, int immunitySec)
        throws Exception {
        Message m = new Message(topic, "tx", key, ("tx-" + key).getBytes(StandardCharsets.UTF_8));
        if (immunitySec > 0) {
            MessageAccessor.putProperty(m, "CHECK_IMMUNITY_TIME_IN_SECONDS", Integer.toString(immunitySec));
        }
        return p.sendMessageInTransaction(m, null);
    }

    /** commit, rollback, unknown → check → commit, unknown → check → rollback. */
    private static String tx() throws Exception {
        String topic = prefix + "Tx";
        createTopic(topic);
        Map<String, Got> got = new ConcurrentHashMap<>();
        DefaultMQPushConsumer c = consumer("cg_" + topic, topic, got);
        TransactionMQProducer p = txProducer("pg_tx_" + prefix);
        List<String> problems = new ArrayList<>();
        String[] keys = {"commit", "rollback", "unknown-commit", "unknown-rollback"};
        for (String k : keys) {
            TransactionSendResult r = sendTx(p, topic, k, 0);
            if (r.getSendStatus() != SendStatus.SEND_OK) {
                problems.add(k + " send " + r.getSendStatus());
            }
        }
        waitFor(8, () -> got.containsKey("commit"));
        if (!got.containsKey("commit")) {
            problems.add("commit not delivered");
        }
        // Checks come after transactionTimeOut + up to one check interval.
        waitFor(30, () -> got.containsKey("unknown-commit") && CHECKS.containsKey("unknown-rollback"));
        if (!got.containsKey("unknown-commit")) {
            problems.add("unknown-commit not delivered after check-back");
        }
        if (!CHECKS.containsKey("unknown-commit") || !CHECKS.containsKey("unknown-rollback")) {
            problems.add("checks seen " + CHECKS.keySet());
        }
        if (CHECKS.containsKey("commit") || CHECKS.containsKey("rollback")) {
            problems.add("resolved transactions were checked: " + CHECKS.keySet());
        }
        // A later plain message as a marker: once it is there, rolled-back ones must not be.
        DefaultMQProducer plain = producer();
        send(plain, topic, "marker", 0);
        waitFor(15, () -> got.containsKey("marker"));
        if (!got.containsKey("marker")) {
            problems.add("marker not delivered");
        }
        Thread.sleep(3000);
        for (String k : new String[] {"rollback", "unknown-rollback"}) {
            if (got.containsKey(k)) {
                problems.add(k + " was delivered");
            }
        }
        Got g = got.get("commit");
        String summary = "delivered=" + new java.util.TreeSet<>(got.keySet()) + " checks=" + CHECKS
            + (g == null ? "" : " commitTranMsg=" + g.msg.getProperty("TRAN_MSG") + " commitTransactionId=" + g.msg.getTransactionId());
        c.shutdown();
        p.shutdown();
        plain.shutdown();
        return verdict(problems, summary);
    }

    // -------------------------------------------------------------- restart

    /**
     * A level-3 delayed message, a message with a delivery time 6 s ahead and a half message
     * (UNKNOW locally, checked only after 15 s) are pending while the test restarts the broker;
     * afterwards the delayed ones arrive (not early) and the half message is checked (after the
     * restart) and committed.
     */
    private static String restart() throws Exception {
        String topic = prefix + "Restart";
        createTopic(topic);
        Map<String, Got> got = new ConcurrentHashMap<>();
        DefaultMQPushConsumer c = consumer("cg_" + topic, topic, got);
        TransactionMQProducer tp = txProducer("pg_restart_" + prefix);
        DefaultMQProducer p = producer();
        List<String> problems = new ArrayList<>();
        send(p, topic, "delayed", 3);
        Message tm = new Message(topic, "t", "timed", ("timed-" + prefix).getBytes(StandardCharsets.UTF_8));
        long timedDue = System.currentTimeMillis() + 6000;
        MessageAccessor.putProperty(tm, "TIMER_DELIVER_MS", Long.toString(timedDue));
        if (p.send(tm).getSendStatus() != SendStatus.SEND_OK) {
            problems.add("timer send failed");
        }
        TransactionSendResult r = sendTx(tp, topic, "restart", 15);
        if (r.getSendStatus() != SendStatus.SEND_OK) {
            problems.add("half send " + r.getSendStatus());
        }
        long sentAt = System.currentTimeMillis();
        System.out.println("phase=restart-now");
        System.out.flush();
        boolean restarted = waitFor(60, () -> Files.exists(restartFlag));
        if (!restarted) {
            return "FAIL the test did not restart the broker";
        }
        long restartedAt = Long.parseLong(new String(Files.readAllBytes(restartFlag), StandardCharsets.UTF_8).trim());
        waitFor(60, () -> got.containsKey("delayed") && got.containsKey("restart") && got.containsKey("timed"));
        String summary = "restartDoneAfterMs=" + (restartedAt - sentAt);
        Got d = got.get("delayed");
        if (d == null) {
            problems.add("delayed message lost over the restart");
        } else {
            long late = d.at - d.msg.getBornTimestamp() - 10000;
            summary += " delayedLateMs=" + late;
            if (late < 0) {
                problems.add("delayed message early by " + (-late) + " ms");
            }
        }
        Got t = got.get("timed");
        if (t == null) {
            problems.add("timer message lost over the restart");
        } else {
            summary += " timedLateMs=" + (t.at - timedDue);
            if (t.at < timedDue) {
                problems.add("timer message early by " + (timedDue - t.at) + " ms");
            }
        }
        Long checkedAt = CHECKED_AT.get("restart");
        if (checkedAt == null) {
            problems.add("half message never checked after the restart");
        } else {
            summary += " checkedAfterRestartMs=" + (checkedAt - restartedAt);
            if (checkedAt < restartedAt) {
                problems.add("checked before the restart finished");
            }
        }
        if (!got.containsKey("restart")) {
            problems.add("half message not committed after the restart");
        }
        c.shutdown();
        tp.shutdown();
        p.shutdown();
        return verdict(problems, summary);
    }

    // -------------------------------------------------------------- helpers

    private static void send(DefaultMQProducer p, String topic, String key, int level) throws Exception {
        Message m = new Message(topic, "t", key, ("body-" + key + "-" + prefix).getBytes(StandardCharsets.UTF_8));
        if (level > 0) {
            m.setDelayTimeLevel(level);
        }
        SendResult r = p.send(m);
        if (r.getSendStatus() != SendStatus.SEND_OK) {
            throw new IllegalStateException(key + ": " + r.getSendStatus());
        }
    }

    private static long scheduleMax(int queue) throws Exception {
        return admin.maxOffset(new MessageQueue("SCHEDULE_TOPIC_XXXX", brokerName, queue));
    }

    private static DefaultMQPushConsumer consumer(String group, String topic, Map<String, Got> got)
        throws Exception {
        DefaultMQPushConsumer c = new DefaultMQPushConsumer(group);
        configure(c);
        c.subscribe(topic, "*");
        c.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
            long now = System.currentTimeMillis();
            for (MessageExt m : msgs) {
                got.putIfAbsent(m.getKeys(), new Got(m, now));
            }
            return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
        });
        c.start();
        return c;
    }

    private static void configure(DefaultMQPushConsumer c) {
        c.setNamesrvAddr(ns);
        c.setInstanceName(instance());
        c.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
        c.setPollNameServerInterval(1000);
        c.setHeartbeatBrokerInterval(2000);
    }

    private static DefaultMQProducer producer() throws Exception {
        DefaultMQProducer p = new DefaultMQProducer("pg_" + prefix + INSTANCE.incrementAndGet());
        p.setNamesrvAddr(ns);
        p.setInstanceName(instance());
        p.setPollNameServerInterval(1000);
        p.setHeartbeatBrokerInterval(2000);
        p.start();
        return p;
    }

    private static String instance() {
        return "compat-dtx-" + prefix + "-" + INSTANCE.incrementAndGet();
    }

    /** UPDATE_AND_CREATE_TOPIC (4 queues, perm 6), then wait for the route. */
    private static void createTopic(String topic) throws Exception {
        if (admin == null) {
            admin = Support.startAdmin(ns, instance());
        }
        Support.createTopic(admin, brokerAddr, topic, 4);
    }
}
