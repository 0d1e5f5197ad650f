package compat;

import static compat.Support.verdict;
import static compat.Support.waitFor;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;
import org.apache.rocketmq.client.consumer.DefaultLitePullConsumer;
import org.apache.rocketmq.client.consumer.DefaultMQPullConsumer;
import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.PullResult;
import org.apache.rocketmq.client.consumer.PullStatus;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.consumer.listener.ConsumeOrderlyStatus;
import org.apache.rocketmq.client.consumer.listener.MessageListenerConcurrently;
import org.apache.rocketmq.client.consumer.listener.MessageListenerOrderly;
import org.apache.rocketmq.client.exception.MQBrokerException;
import org.apache.rocketmq.client.exception.MQClientException;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendCallback;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.client.producer.SendStatus;
import org.apache.rocketmq.common.consumer.ConsumeFromWhere;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageExt;
import org.apache.rocketmq.common.message.MessageQueue;
import org.apache.rocketmq.tools.admin.DefaultMQAdminExt;

/**
 * Broker scenario families (compat.md §5.2) with the official Java client of the
 * classpath's version, several scenarios per JVM.
 *
 * <pre>
 * Scenarios &lt;namesrvAddr&gt; &lt;brokerAddr&gt; &lt;prefix&gt; &lt;scenario&gt;...
 * </pre>
 *
 * Scenarios: sends, clustering, broadcasting, ordered, tags, litepull, pull, bigbody,
 * restart-before, restart-after. Each scenario creates its topic (8 queues) on the broker
 * with the admin client (UPDATE_AND_CREATE_TOPIC, as mqadmin updateTopic does), except the
 * restart phases which share the topic "&lt;prefix&gt;Restart". Each prints one line
 * "scenario=NAME ok ..." or "scenario=NAME FAIL ..." (details on stderr). Exit 0 when every
 * scenario passed, 1 otherwise, 2 on bad usage.
 */
public final class Scenarios {

    private static String ns;
    private static String brokerAddr;
    private static String prefix;
    private static final int POLL_NS = 1000;
    private static final int HEARTBEAT = 2000;
    private static final AtomicInteger INSTANCE = new AtomicInteger();
    private static DefaultMQAdminExt admin;

    private Scenarios() {
    }

    public static void main(String[] args) {
        if (args.length < 4) {
            System.err.println("usage: Scenarios <namesrvAddr> <brokerAddr> <prefix> <scenario>...");
            System.exit(2);
        }
        Path logDir = quietClientLogs();
        ns = args[0];
        brokerAddr = args[1];
        prefix = args[2];
        boolean allOk = true;
        for (String s : Arrays.copyOfRange(args, 3, args.length)) {
            long t0 = System.currentTimeMillis();
            String verdict;
            boolean ok;
            try {
                verdict = run(s);
                ok = verdict.startsWith("ok");
            } catch (Throwable t) {
                t.printStackTrace();
                verdict = "FAIL exception " + t;
                ok = false;
            }
            allOk &= ok;
            System.out.println("scenario=" + s + " " + verdict + " (" + (System.currentTimeMillis() - t0) + " ms)");
            System.out.flush();
        }
        if (admin != null) {
            admin.shutdown();
        }
        if (logDir != null) {
            if (allOk) {
                deleteTree(logDir);
            } else {
                System.err.println("client logs: " + logDir);
            }
        }
        System.exit(allOk ? 0 : 1);
    }

    private static String run(String s) throws Exception {
        switch (s) {
            case "sends":
                return sends(topic("Sends"));
            case "clustering":
                return clustering(topic("Cluster"));
            case "broadcasting":
                return broadcasting(topic("Bcast"));
            case "ordered":
                return ordered(topic("Ordered"));
            case "tags":
                return tags(topic("Tags"));
            case "litepull":
                return litePull(topic("LitePull"));
            case "pull":
                return pull(topic("Pull"));
            case "bigbody":
                return bigBody(topic("Big"));
            case "restart-before":
                return restartBefore(restartTopic(true));
            case "restart-after":
                return restartAfter(restartTopic(false));
            default:
                return "FAIL unknown scenario";
        }
    }

    // ------------------------------------------------------------------ scenarios

    /** sync, async, one-way and batch sends of 10 each; one consumer sees all 40; viewMessage. */
    private static String sends(String topic) throws Exception {
        List<String> problems = new ArrayList<>();
        Received rec = new Received();
        DefaultMQPushConsumer c = pushConsumer(group(topic), topic, "*", "CLUSTERING", rec.concurrently());
        DefaultMQProducer p = producer();
        String offsetMsgId = null;
        try {
            for (int i = 0; i < 10; i++) {
                SendResult r = p.send(msg(topic, "TagA", "sync-" + i));
                if (r.getSendStatus() != SendStatus.SEND_OK) {
                    problems.add("sync-" + i + " " + r.getSendStatus());
                }
                if (i == 3) {
                    offsetMsgId = r.getOffsetMsgId();
                }
            }
            CountDownLatch acks = new CountDownLatch(10);
            AtomicInteger asyncOk = new AtomicInteger();
            List<String> asyncErr = Collections.synchronizedList(new ArrayList<>());
            for (int i = 0; i < 10; i++) {
                p.send(msg(topic, "TagA", "async-" + i), new SendCallback() {
                    @Override
                    public void onSuccess(SendResult r) {
                        if (r.getSendStatus() == SendStatus.SEND_OK) {
                            asyncOk.incrementAndGet();
                        }
                        acks.countDown();
                    }

                    @Override
                    public void onException(Throwable e) {
                        asyncErr.add(String.valueOf(e));
                        acks.countDown();
                    }
                });
            }
            if (!acks.await(30, TimeUnit.SECONDS) || asyncOk.get() != 10) {
                problems.add("async acknowledged " + asyncOk.get() + "/10 errors " + asyncErr);
            }
            for (int i = 0; i < 10; i++) {
                p.sendOneway(msg(topic, "TagA", "oneway-" + i));
            }
            List<Message> batch = new ArrayList<>();
            for (int i = 0; i < 10; i++) {
                batch.add(msg(topic, "TagA", "batch-" + i));
            }
            SendResult br = p.send(batch);
            if (br.getSendStatus() != SendStatus.SEND_OK) {
                problems.add("batch " + br.getSendStatus());
            }
            Set<String> want = new TreeSet<>();
            for (String kind : new String[] {"sync", "async", "oneway", "batch"}) {
                for (int i = 0; i < 10; i++) {
                    want.add(kind + "-" + i);
                }
            }
            waitFor(30, () -> rec.keys().containsAll(want));
            Set<String> missing = new TreeSet<>(want);
            missing.removeAll(rec.keys());
            if (!missing.isEmpty()) {
                problems.add("missing " + missing);
            }
            // query by offset message id (VIEW_MESSAGE_BY_ID)
            MessageExt viewed = viewMessage(p, topic, offsetMsgId);
            if (viewed == null || !"sync-3".equals(viewed.getKeys()) || !topic.equals(viewed.getTopic())
                || !Arrays.equals(viewed.getBody(), body("sync-3"))) {
                problems.add("viewMessage(" + offsetMsgId + ") returned " + viewed);
            }
            return verdict(problems, "received=" + rec.keys().size() + "/40 duplicates=" + rec.duplicates()
                + " offsetMsgId=" + offsetMsgId);
        } finally {
            p.shutdown();
            c.shutdown();
        }
    }

    /** Two push consumers in one group: exactly once across both, then takeover by the survivor. */
    private static String clustering(String topic) throws Exception {
        List<String> problems = new ArrayList<>();
        String group = group(topic);
        Received r1 = new Received();
        Received r2 = new Received();
        DefaultMQPushConsumer c1 = pushConsumer(group, topic, "*", "CLUSTERING", r1.concurrently());
        DefaultMQPushConsumer c2 = pushConsumer(group, topic, "*", "CLUSTERING", r2.concurrently());
        DefaultMQProducer p = producer();
        boolean c2Down = false;
        try {
            boolean split = waitFor(40, () -> {
                Set<MessageQueue> a = assigned(c1);
                Set<MessageQueue> b = assigned(c2);
                Set<MessageQueue> all = new HashSet<>(a);
                all.addAll(b);
                return a.size() == 4 && b.size() == 4 && all.size() == 8;
            });
            if (!split) {
                return "FAIL queues never split 4/4: c1=" + assigned(c1) + " c2=" + assigned(c2);
            }
            for (int i = 0; i < 40; i++) {
                p.send(msg(topic, "TagA", "a-" + i));
            }
            waitFor(30, () -> union(r1, r2).size() == 40);
            Thread.sleep(500);
            Set<String> u = union(r1, r2);
            Set<String> both = new TreeSet<>(r1.keys());
            both.retainAll(r2.keys());
            if (u.size() != 40) {
                problems.add("phase 1 received " + u.size() + "/40");
            }
            if (!both.isEmpty() || r1.duplicates() + r2.duplicates() > 0) {
                problems.add("phase 1 not exactly once: on both " + both + " dups " + (r1.duplicates() + r2.duplicates()));
            }
            if (r1.keys().isEmpty() || r2.keys().isEmpty()) {
                problems.add("phase 1 one consumer got nothing: c1=" + r1.keys().size() + " c2=" + r2.keys().size());
            }
            int phase1c1 = r1.keys().size();
            int phase1c2 = r2.keys().size();
            c2.shutdown();
            c2Down = true;
            for (int i = 0; i < 40; i++) {
                p.send(msg(topic, "TagA", "b-" + i));
            }
            Set<String> want = new TreeSet<>();
            for (int i = 0; i < 40; i++) {
                want.add("b-" + i);
            }
            waitFor(60, () -> r1.keys().containsAll(want));
            Set<String> missing = new TreeSet<>(want);
            missing.removeAll(r1.keys());
            if (!missing.isEmpty()) {
                problems.add("takeover: c1 missing " + missing + " assigned " + assigned(c1));
            }
            return verdict(problems, "phase1 c1=" + phase1c1 + " c2=" + phase1c2 + " takeover c1 got "
                + (40 - missing.size()) + "/40 new, duplicates=" + r1.duplicates());
        } finally {
            p.shutdown();
            c1.shutdown();
            if (!c2Down) {
                c2.shutdown();
            }
        }
    }

    /** Two BROADCASTING consumers of one group each receive all messages. */
    private static String broadcasting(String topic) throws Exception {
        String group = group(topic);
        Received r1 = new Received();
        Received r2 = new Received();
        DefaultMQPushConsumer c1 = pushConsumer(group, topic, "*", "BROADCASTING", r1.concurrently());
        DefaultMQPushConsumer c2 = pushConsumer(group, topic, "*", "BROADCASTING", r2.concurrently());
        DefaultMQProducer p = producer();
        try {
            waitFor(30, () -> assigned(c1).size() == 8 && assigned(c2).size() == 8);
            for (int i = 0; i < 30; i++) {
                p.send(msg(topic, "TagA", "k-" + i));
            }
            waitFor(30, () -> r1.keys().size() == 30 && r2.keys().size() == 30);
            List<String> problems = new ArrayList<>();
            if (r1.keys().size() != 30 || r2.keys().size() != 30) {
                problems.add("c1 assigned " + assigned(c1).size() + " c2 assigned " + assigned(c2).size());
            }
            return verdict(problems, "c1=" + r1.keys().size() + "/30 c2=" + r2.keys().size() + "/30");
        } finally {
            p.shutdown();
            c1.shutdown();
            c2.shutdown();
        }
    }

    /** MessageQueueSelector by key over 8 queues; MessageListenerOrderly preserves per-key order. */
    private static String ordered(String topic) throws Exception {
        final int keys = 8;
        final int per = 15;
        List<String> problems = Collections.synchronizedList(new ArrayList<>());
        Map<String, List<Integer>> seen = new ConcurrentHashMap<>();
        Map<String, Set<Integer>> queues = new ConcurrentHashMap<>();
        DefaultMQPushConsumer c = new DefaultMQPushConsumer(group(topic));
        configure(c);
        setModel(c, "CLUSTERING");
        c.subscribe(topic, "*");
        c.registerMessageListener((MessageListenerOrderly) (msgs, ctx) -> {
            for (MessageExt m : msgs) {
                String[] kv = m.getKeys().split("-");
                seen.computeIfAbsent(kv[0], k -> Collections.synchronizedList(new ArrayList<>()))
                    .add(Integer.parseInt(kv[1]));
                queues.computeIfAbsent(kv[0], k -> ConcurrentHashMap.newKeySet()).add(m.getQueueId());
            }
            return ConsumeOrderlyStatus.SUCCESS;
        });
        c.start();
        DefaultMQProducer p = producer();
        try {
            for (int i = 0; i < per; i++) {
                for (int k = 0; k < keys; k++) {
                    SendResult r = p.send(msg(topic, "TagA", "o" + k + "-" + i),
                        (mqs, m, arg) -> mqs.get((Integer) arg % mqs.size()), k);
                    if (r.getMessageQueue().getQueueId() != k % 8) {
                        problems.add("o" + k + " sent to queue " + r.getMessageQueue().getQueueId());
                    }
                }
            }
            waitFor(40, () -> {
                int n = 0;
                for (List<Integer> l : seen.values()) {
                    n += l.size();
                }
                return n >= keys * per;
            });
            for (int k = 0; k < keys; k++) {
                List<Integer> l = seen.getOrDefault("o" + k, Collections.emptyList());
                List<Integer> expect = new ArrayList<>();
                for (int i = 0; i < per; i++) {
                    expect.add(i);
                }
                if (!l.equals(expect)) {
                    problems.add("o" + k + " consumed in order " + l);
                }
                Set<Integer> q = queues.getOrDefault("o" + k, Collections.emptySet());
                if (q.size() != 1) {
                    problems.add("o" + k + " on queues " + q);
                }
            }
            return verdict(problems, keys + " keys x " + per + " in order");
        } finally {
            p.shutdown();
            c.shutdown();
        }
    }

    /** Subscribe TagA || TagC; send A/B/C: only A and C delivered. */
    private static String tags(String topic) throws Exception {
        Received rec = new Received();
        DefaultMQPushConsumer c = pushConsumer(group(topic), topic, "TagA || TagC", "CLUSTERING", rec.concurrently());
        DefaultMQProducer p = producer();
        try {
            for (int i = 0; i < 10; i++) {
                for (String t : new String[] {"TagA", "TagB", "TagC"}) {
                    p.send(msg(topic, t, t + "-" + i));
                }
            }
            waitFor(30, () -> rec.keys().size() >= 20);
            Thread.sleep(1500); // a TagB, if wrongly delivered, would come along with the others
            List<String> problems = new ArrayList<>();
            int a = 0;
            int cc = 0;
            for (String k : rec.keys()) {
                if (k.startsWith("TagA-")) {
                    a++;
                } else if (k.startsWith("TagC-")) {
                    cc++;
                } else {
                    problems.add("delivered " + k);
                }
            }
            if (a != 10 || cc != 10) {
                problems.add("TagA " + a + "/10 TagC " + cc + "/10");
            }
            return verdict(problems, "TagA=" + a + " TagC=" + cc + " other=" + (rec.keys().size() - a - cc));
        } finally {
            p.shutdown();
            c.shutdown();
        }
    }

    /** DefaultLitePullConsumer assign + seek: reads back from a chosen offset. */
    private static String litePull(String topic) throws Exception {
        DefaultMQProducer p = producer();
        List<String> problems = new ArrayList<>();
        MessageQueue mq0 = null;
        try {
            for (int i = 0; i < 20; i++) {
                SendResult r = p.send(msg(topic, "TagA", "l-" + i), (mqs, m, arg) -> mqs.get(0), null);
                mq0 = r.getMessageQueue();
                if (r.getQueueOffset() != i) {
                    problems.add("l-" + i + " at queue offset " + r.getQueueOffset());
                }
            }
        } finally {
            p.shutdown();
        }
        DefaultLitePullConsumer c = new DefaultLitePullConsumer(group(topic));
        c.setNamesrvAddr(ns);
        c.setInstanceName(instance());
        c.setPollNameServerInterval(POLL_NS);
        c.setHeartbeatBrokerInterval(HEARTBEAT);
        c.setAutoCommit(false);
        c.setPullBatchSize(8);
        c.start();
        List<Long> offsets = new ArrayList<>();
        try {
            MessageQueue mq = new MessageQueue(topic, mq0.getBrokerName(), 0);
            c.assign(Collections.singletonList(mq));
            // Catch up first: seeking while a pull that found messages is in flight races in the
            // client (a stale pull can move the offset after the seek), so seek on an idle queue.
            long deadline = System.currentTimeMillis() + 30000;
            long last = -1;
            while (last < 19 && System.currentTimeMillis() < deadline) {
                for (MessageExt m : c.poll(1000)) {
                    last = Math.max(last, m.getQueueOffset());
                }
            }
            if (last != 19) {
                return "FAIL never caught up to offset 19 (last " + last + ")";
            }
            Thread.sleep(200);
            c.seek(mq, 12);
            deadline = System.currentTimeMillis() + 30000;
            while (offsets.size() < 8 && System.currentTimeMillis() < deadline) {
                for (MessageExt m : c.poll(1000)) {
                    offsets.add(m.getQueueOffset());
                    if (!("l-" + m.getQueueOffset()).equals(m.getKeys())) {
                        problems.add("offset " + m.getQueueOffset() + " has key " + m.getKeys());
                    }
                }
            }
            List<Long> want = new ArrayList<>();
            for (long o = 12; o < 20; o++) {
                want.add(o);
            }
            if (!offsets.equals(want)) {
                problems.add("after seek(12) polled offsets " + offsets);
            }
            // seek back again and re-read
            c.seek(mq, 5);
            List<Long> again = new ArrayList<>();
            deadline = System.currentTimeMillis() + 30000;
            while (again.size() < 15 && System.currentTimeMillis() < deadline) {
                for (MessageExt m : c.poll(1000)) {
                    again.add(m.getQueueOffset());
                }
            }
            List<Long> want2 = new ArrayList<>();
            for (long o = 5; o < 20; o++) {
                want2.add(o);
            }
            if (!again.equals(want2)) {
                problems.add("after seek(5) polled offsets " + again);
            }
            return verdict(problems, "seek(12) read " + offsets.size() + " seek(5) read " + again.size());
        } finally {
            c.shutdown();
        }
    }

    /** DefaultMQPullConsumer: pull by offset, NO_NEW_MSG at the end, commit an offset. */
    @SuppressWarnings("deprecation")
    private static String pull(String topic) throws Exception {
        DefaultMQProducer p = producer();
        List<String> problems = new ArrayList<>();
        try {
            for (int i = 0; i < 10; i++) {
                p.send(msg(topic, "TagA", "p-" + i), (mqs, m, arg) -> mqs.get(1), null);
            }
        } finally {
            p.shutdown();
        }
        DefaultMQPullConsumer c = new DefaultMQPullConsumer(group(topic));
        c.setNamesrvAddr(ns);
        c.setInstanceName(instance());
        c.setPollNameServerInterval(POLL_NS);
        c.setHeartbeatBrokerInterval(HEARTBEAT);
        c.start();
        try {
            Set<MessageQueue> mqs = c.fetchSubscribeMessageQueues(topic);
            MessageQueue mq = null;
            for (MessageQueue q : mqs) {
                if (q.getQueueId() == 1) {
                    mq = q;
                }
            }
            if (mqs.size() != 8 || mq == null) {
                return "FAIL fetchSubscribeMessageQueues " + mqs;
            }
            PullResult r = c.pull(mq, "*", 4, 32);
            List<String> keys = new ArrayList<>();
            if (r.getMsgFoundList() != null) {
                for (MessageExt m : r.getMsgFoundList()) {
                    keys.add(m.getKeys());
                }
            }
            List<String> want = new ArrayList<>();
            for (int i = 4; i < 10; i++) {
                want.add("p-" + i);
            }
            if (r.getPullStatus() != PullStatus.FOUND || !keys.equals(want) || r.getNextBeginOffset() != 10
                || r.getMaxOffset() != 10) {
                problems.add("pull(4): " + r.getPullStatus() + " " + keys + " next=" + r.getNextBeginOffset()
                    + " max=" + r.getMaxOffset());
            }
            PullResult end = c.pull(mq, "*", 10, 32);
            if (end.getPullStatus() != PullStatus.NO_NEW_MSG) {
                problems.add("pull(10): " + end.getPullStatus());
            }
            PullResult beyond = c.pull(mq, "*", 50, 32);
            if (beyond.getPullStatus() != PullStatus.OFFSET_ILLEGAL || beyond.getNextBeginOffset() != 10) {
                problems.add("pull(50): " + beyond.getPullStatus() + " next=" + beyond.getNextBeginOffset());
            }
            c.updateConsumeOffset(mq, 7);
            c.getOffsetStore().persist(mq);
            long stored = -1;
            long deadline = System.currentTimeMillis() + 10000;
            while (System.currentTimeMillis() < deadline) {
                stored = c.fetchConsumeOffset(mq, true);
                if (stored == 7) {
                    break;
                }
                Thread.sleep(200);
            }
            if (stored != 7) {
                problems.add("committed offset read back " + stored);
            }
            return verdict(problems, "pulled " + keys.size() + " from offset 4, committed=" + stored);
        } finally {
            c.shutdown();
        }
    }

    /** 4 MiB body accepted and read back; one byte more refused client-side and broker-side (13). */
    @SuppressWarnings("deprecation")
    private static String bigBody(String topic) throws Exception {
        final int limit = 4 * 1024 * 1024;
        List<String> problems = new ArrayList<>();
        DefaultMQProducer p = producer();
        p.setCompressMsgBodyOverHowmuch(Integer.MAX_VALUE); // the body goes over the wire as is
        p.setSendMsgTimeout(20000);
        if (p.getMaxMessageSize() != limit) {
            problems.add("client maxMessageSize default " + p.getMaxMessageSize());
        }
        byte[] big = new byte[limit];
        new Random(7).nextBytes(big);
        SendResult ok;
        try {
            ok = p.send(new Message(topic, "TagA", "big", big), (mqs, m, arg) -> mqs.get(2), null);
            if (ok.getSendStatus() != SendStatus.SEND_OK) {
                problems.add("4 MiB send " + ok.getSendStatus());
            }
            byte[] over = Arrays.copyOf(big, limit + 1);
            String client = "accepted";
            try {
                p.send(new Message(topic, "TagA", "over", over));
            } catch (MQClientException e) {
                client = "MQClientException code " + e.getResponseCode();
            } catch (Exception e) {
                client = e.getClass().getSimpleName();
            }
            if (!client.equals("MQClientException code 13")) {
                problems.add("client-side over-limit: " + client);
            }
            p.setMaxMessageSize(limit * 2);
            String broker = "accepted";
            try {
                p.send(new Message(topic, "TagA", "over", over));
            } catch (MQBrokerException e) {
                broker = "MQBrokerException code " + e.getResponseCode();
            } catch (Exception e) {
                broker = e.toString();
            }
            if (!broker.equals("MQBrokerException code 13")) {
                problems.add("broker-side over-limit: " + broker);
            }
            if (!problems.isEmpty()) {
                return verdict(problems, "");
            }
        } finally {
            p.shutdown();
        }
        DefaultMQPullConsumer c = new DefaultMQPullConsumer(group(topic));
        c.setNamesrvAddr(ns);
        c.setInstanceName(instance());
        c.start();
        try {
            PullResult r = c.pull(ok.getMessageQueue(), "*", ok.getQueueOffset(), 1);
            List<MessageExt> found = r.getMsgFoundList();
            if (r.getPullStatus() != PullStatus.FOUND || found == null || found.size() != 1
                || !Arrays.equals(found.get(0).getBody(), big)) {
                problems.add("read back: " + r.getPullStatus() + " "
                    + (found == null ? "none" : found.size() + " msgs, body "
                    + (found.isEmpty() ? 0 : found.get(0).getBody().length)));
            }
            return verdict(problems, "4194304 accepted and read back; 4194305 refused by client and broker (13)");
        } finally {
            c.shutdown();
        }
    }

    private static final int RESTART_BEFORE = 100;
    private static final int RESTART_AFTER = 30;
    private static final int MAX_RESUME_DUPLICATES = 25;

    /** Send 100 (sync, acknowledged) and consume them all with group G, then stop cleanly. */
    private static String restartBefore(String topic) throws Exception {
        List<String> problems = new ArrayList<>();
        Received rec = new Received();
        DefaultMQPushConsumer c = pushConsumer(restartGroup(), topic, "*", "CLUSTERING", rec.concurrently());
        DefaultMQProducer p = producer();
        try {
            for (int i = 0; i < RESTART_BEFORE; i++) {
                SendResult r = p.send(msg(topic, "TagA", "r-" + i));
                if (r.getSendStatus() != SendStatus.SEND_OK) {
                    problems.add("r-" + i + " " + r.getSendStatus());
                }
            }
            waitFor(30, () -> rec.keys().size() == RESTART_BEFORE);
            if (rec.keys().size() != RESTART_BEFORE) {
                problems.add("consumed " + rec.keys().size() + "/" + RESTART_BEFORE);
            }
            Thread.sleep(500);
        } finally {
            p.shutdown();
            c.shutdown(); // persists the group's offsets on the broker
        }
        return verdict(problems, "sent and consumed " + rec.keys().size());
    }

    /**
     * After the broker restart: send 30 more; group G resumes at its committed offsets (gets all
     * new ones, at most a few old ones again); a new group reads all 130 acknowledged messages.
     */
    private static String restartAfter(String topic) throws Exception {
        List<String> problems = new ArrayList<>();
        DefaultMQProducer p = producer();
        try {
            for (int i = RESTART_BEFORE; i < RESTART_BEFORE + RESTART_AFTER; i++) {
                SendResult r = p.send(msg(topic, "TagA", "r-" + i));
                if (r.getSendStatus() != SendStatus.SEND_OK) {
                    problems.add("r-" + i + " " + r.getSendStatus());
                }
            }
        } finally {
            p.shutdown();
        }
        Received resumed = new Received();
        Received fresh = new Received();
        DefaultMQPushConsumer g = pushConsumer(restartGroup(), topic, "*", "CLUSTERING", resumed.concurrently());
        DefaultMQPushConsumer f = pushConsumer(restartGroup() + "_fresh", topic, "*", "CLUSTERING",
            fresh.concurrently());
        Set<String> newKeys = new TreeSet<>();
        Set<String> allKeys = new TreeSet<>();
        for (int i = 0; i < RESTART_BEFORE + RESTART_AFTER; i++) {
            allKeys.add("r-" + i);
            if (i >= RESTART_BEFORE) {
                newKeys.add("r-" + i);
            }
        }
        try {
            waitFor(40, () -> resumed.keys().containsAll(newKeys) && fresh.keys().containsAll(allKeys));
            Thread.sleep(1000);
        } finally {
            g.shutdown();
            f.shutdown();
        }
        Set<String> missingNew = new TreeSet<>(newKeys);
        missingNew.removeAll(resumed.keys());
        Set<String> old = new TreeSet<>(resumed.keys());
        old.removeAll(newKeys);
        Set<String> missingAll = new TreeSet<>(allKeys);
        missingAll.removeAll(fresh.keys());
        if (!missingNew.isEmpty()) {
            problems.add("resumed group missing " + missingNew);
        }
        // Offsets are committed one-way (and piggy-backed on pulls), so a few of the last
        // consumed messages may come again; resuming from the start would re-deliver all 100.
        if (old.size() > MAX_RESUME_DUPLICATES) {
            problems.add("resumed group re-consumed " + old.size() + " old messages (bound "
                + MAX_RESUME_DUPLICATES + ")");
        }
        if (!missingAll.isEmpty()) {
            problems.add("acknowledged messages lost: " + missingAll);
        }
        return verdict(problems, "resumed group new=" + (newKeys.size() - missingNew.size()) + "/" + newKeys.size()
            + " old=" + old.size() + " fresh group=" + (allKeys.size() - missingAll.size()) + "/" + allKeys.size());
    }

    // ------------------------------------------------------------------ helpers

    private static String topic(String name) throws Exception {
        String t = prefix + name;
        createTopic(t);
        return t;
    }

    private static String restartTopic(boolean create) throws Exception {
        String t = prefix + "Restart";
        if (create) {
            createTopic(t);
        }
        return t;
    }

    private static String restartGroup() {
        return "g_" + prefix + "Restart";
    }

    private static String group(String topic) {
        return "g_" + topic;
    }

    /** UPDATE_AND_CREATE_TOPIC (8 queues, perm 6) on the broker, then wait for the route. */
    private static void createTopic(String topic) throws Exception {
        if (admin == null) {
            admin = Support.startAdmin(ns, instance());
        }
        Support.createTopic(admin, brokerAddr, topic, 8);
    }

    /** viewMessage(offsetMsgId) (4.x) or viewMessage(topic, offsetMsgId) (5.x): VIEW_MESSAGE_BY_ID. */
    private static MessageExt viewMessage(DefaultMQProducer p, String topic, String offsetMsgId) throws Exception {
        try {
            return (MessageExt) DefaultMQProducer.class.getMethod("viewMessage", String.class).invoke(p, offsetMsgId);
        } catch (NoSuchMethodException e) {
            return (MessageExt) DefaultMQProducer.class.getMethod("viewMessage", String.class, String.class)
                .invoke(p, topic, offsetMsgId);
        }
    }

    private static String instance() {
        return "compat-" + prefix + "-" + INSTANCE.incrementAndGet();
    }

    private static DefaultMQProducer producer() throws MQClientException {
        DefaultMQProducer p = new DefaultMQProducer("pg_" + prefix + INSTANCE.get());
        p.setNamesrvAddr(ns);
        p.setInstanceName(instance());
        p.setPollNameServerInterval(POLL_NS);
        p.setHeartbeatBrokerInterval(HEARTBEAT);
        p.start();
        return p;
    }

    private static void configure(DefaultMQPushConsumer c) {
        c.setNamesrvAddr(ns);
        c.setInstanceName(instance());
        c.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
        c.setPollNameServerInterval(POLL_NS);
        c.setHeartbeatBrokerInterval(HEARTBEAT);
    }

    private static DefaultMQPushConsumer pushConsumer(String group, String topic, String expr, String model,
        MessageListenerConcurrently listener) throws Exception {
        DefaultMQPushConsumer c = new DefaultMQPushConsumer(group);
        configure(c);
        setModel(c, model);
        c.subscribe(topic, expr);
        c.registerMessageListener(listener);
        c.start();
        return c;
    }

    /** consumer.setMessageModel(MessageModel.X), whichever package MessageModel is in. */
    @SuppressWarnings({"unchecked", "rawtypes"})
    private static void setModel(DefaultMQPushConsumer consumer, String model) throws Exception {
        for (java.lang.reflect.Method m : DefaultMQPushConsumer.class.getMethods()) {
            if ("setMessageModel".equals(m.getName()) && m.getParameterCount() == 1) {
                Class<? extends Enum> type = (Class<? extends Enum>) m.getParameterTypes()[0];
                m.invoke(consumer, Enum.valueOf(type, model));
                return;
            }
        }
        throw new IllegalStateException("DefaultMQPushConsumer.setMessageModel not found");
    }

    @SuppressWarnings("deprecation")
    private static Set<MessageQueue> assigned(DefaultMQPushConsumer c) {
        Set<MessageQueue> s = new HashSet<>();
        c.getDefaultMQPushConsumerImpl().getRebalanceImpl().getProcessQueueTable().forEach((mq, pq) -> {
            if (!pq.isDropped() && !mq.getTopic().startsWith("%RETRY%")) {
                s.add(mq);
            }
        });
        return s;
    }

    private static Message msg(String topic, String tag, String key) {
        return new Message(topic, tag, key, body(key));
    }

    private static byte[] body(String key) {
        return ("body-" + key + "-" + prefix).getBytes(StandardCharsets.UTF_8);
    }

    private static Set<String> union(Received a, Received b) {
        Set<String> u = new TreeSet<>(a.keys());
        u.addAll(b.keys());
        return u;
    }

    /** Keys received (checked against the body) and how often. */
    private static final class Received {
        private final Map<String, AtomicInteger> counts = new ConcurrentHashMap<>();
        private final List<String> bad = Collections.synchronizedList(new ArrayList<>());

        MessageListenerConcurrently concurrently() {
            return (msgs, ctx) -> {
                for (MessageExt m : msgs) {
                    add(m);
                }
                return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
            };
        }

        void add(MessageExt m) {
            String k = m.getKeys();
            if (k == null || !Arrays.equals(m.getBody(), body(k))) {
                bad.add(k);
                return;
            }
            counts.computeIfAbsent(k, x -> new AtomicInteger()).incrementAndGet();
        }

        Set<String> keys() {
            return new HashSet<>(counts.keySet());
        }

        int duplicates() {
            int d = 0;
            for (AtomicInteger n : counts.values()) {
                d += n.get() - 1;
            }
            return d + bad.size() * 1000;
        }
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
        setDefault("rocketmq.client.logRoot", root);
        setDefault("rocketmq.client.logLevel", "WARN");
        setDefault("rocketmq.log.root", root);
        setDefault("rocketmq.log.level", "WARN");
        setDefault("rmq.logback.configurationFile", "rmq.client.logback.xml");
        setDefault("rocketmq.client.rebalance.waitInterval", "2000");
        return dir;
    }

    private static void setDefault(String key, String value) {
        if (value != null && System.getProperty(key) == null) {
            System.setProperty(key, value);
        }
    }

    private static void deleteTree(Path dir) {
        try (Stream<Path> s = Files.walk(dir)) {
            s.sorted(Comparator.reverseOrder()).map(Path::toFile).forEach(File::delete);
        } catch (IOException ignored) {
            // best effort
        }
    }
}
