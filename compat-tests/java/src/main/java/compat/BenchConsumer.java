package compat;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.rocketmq.client.consumer.DefaultLitePullConsumer;
import org.apache.rocketmq.client.consumer.DefaultMQPullConsumer;
import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.PullResult;
import org.apache.rocketmq.client.consumer.PullStatus;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.consumer.listener.MessageListenerConcurrently;
import org.apache.rocketmq.common.consumer.ConsumeFromWhere;
import org.apache.rocketmq.common.message.MessageExt;
import org.apache.rocketmq.common.message.MessageQueue;

/**
 * Consume throughput for scripts/bench-broker.sh, on the official Java client.
 *
 * <pre>
 * BenchConsumer &lt;namesrv&gt; &lt;topic&gt; &lt;count&gt; &lt;brokerPid|0&gt; [timeoutSecs=300] [mode=push]
 *     [warmupCount=count/4]
 * </pre>
 *
 * Reads a topic already holding count messages, from its first offset, in a new group; only
 * counts. First a warm-up pass reads warmupCount messages the same way in another group (not
 * measured: it JIT-compiles the client's consume path, which would otherwise weigh on the first
 * seconds of the measured pass; it warms the broker alike), then the measured pass. Modes (all with batches of 32, the brokers' default maxTransferCountOnMessageInMemory
 * cap, Java's and ours alike):
 * <ul>
 * <li>push: DefaultMQPushConsumer (CLUSTERING, "*", CONSUME_FROM_FIRST_OFFSET, 20 consume
 * threads, pullBatchSize 32, consumeMessageBatchMaxSize 1), a listener that only counts.</li>
 * <li>push-batch: the same with consumeMessageBatchMaxSize 32 (one listener call, one consume
 * task, per pulled batch instead of per message).</li>
 * <li>pull: DefaultLitePullConsumer (subscribe "*", CONSUME_FROM_FIRST_OFFSET, pullBatchSize 32,
 * auto-commit), one thread calling poll() and counting, the client's recommended pull API.</li>
 * <li>pull-direct: DefaultMQPullConsumer, one thread per queue calling pull(mq, "*", offset, 32)
 * from offset 0 on (no client-side message cache or consume thread pool).</li>
 * </ul>
 * Prints "RESULT consume mode=M warmup=W received=N secs=S first_msg_after_ms=F mps=X cpu_ms=..
 * cpu_us_per_msg=.. gen_cpu_us_per_msg=..": secs from start() until count messages were
 * received, F from start() to the first message (route, rebalance, first pull), mps = N over the
 * time from the first message to the last; cpu: the broker's utime+stime delta over the whole
 * run (/proc/&lt;pid&gt;/stat); gen_cpu: this JVM's. Exit 0 when count arrived before the timeout.
 */
public final class BenchConsumer {

    private static final int BATCH = 32;

    private BenchConsumer() {
    }

    public static void main(String[] args) {
        Path logs = BenchProducer.quietClientLogs();
        int rc;
        try {
            if (args.length >= 4 && args.length <= 7) {
                long count = Long.parseLong(args[2]);
                rc = run(args[0], args[1], count, Integer.parseInt(args[3]),
                    args.length >= 5 ? Integer.parseInt(args[4]) : 300, args.length >= 6 ? args[5] : "push",
                    args.length == 7 ? Long.parseLong(args[6]) : count / 4);
            } else {
                System.err.println("usage: BenchConsumer <namesrv> <topic> <count> <brokerPid|0> [timeoutSecs] "
                    + "[push|pull|pull-direct] [warmupCount]");
                rc = 2;
            }
        } catch (Throwable t) {
            System.err.println("BenchConsumer: unexpected failure: " + t);
            t.printStackTrace();
            rc = 1;
        }
        BenchProducer.finishClientLogs(logs, rc);
        System.exit(rc);
    }

    /** Messages received so far, when the first arrived and when count was reached (nanoTime, 0 = not yet). */
    private static final class Counts {
        final long count;
        final AtomicLong received = new AtomicLong();
        final AtomicLong firstAt = new AtomicLong();
        final AtomicLong endAt = new AtomicLong();
        final CountDownLatch done = new CountDownLatch(1);

        Counts(long count) {
            this.count = count;
        }

        void add(int n) {
            if (n <= 0) {
                return;
            }
            long now = System.nanoTime();
            firstAt.compareAndSet(0, now);
            if (received.addAndGet(n) >= count && endAt.compareAndSet(0, now)) {
                done.countDown();
            }
        }

        boolean finished() {
            return done.getCount() == 0;
        }
    }

    private static Runnable consume(String mode, String namesrv, String topic, Counts c, long deadline)
        throws Exception {
        String group = "bench-consume-" + System.nanoTime();
        switch (mode) {
            case "push":
                return push(namesrv, topic, group, c, deadline, 1);
            case "push-batch":
                return push(namesrv, topic, group, c, deadline, BATCH);
            case "pull":
                return litePull(namesrv, topic, group, c, deadline);
            default:
                return directPull(namesrv, topic, group, c, deadline);
        }
    }

    private static int run(String namesrv, String topic, long count, int pid, int timeout, String mode,
        long warmup) throws Exception {
        if (!java.util.Arrays.asList("push", "push-batch", "pull", "pull-direct").contains(mode)) {
            System.err.println("BenchConsumer: unknown mode " + mode + " (push, push-batch, pull or pull-direct)");
            return 2;
        }
        if (warmup > 0) {
            Counts w = new Counts(Math.min(warmup, count));
            long t0 = System.nanoTime();
            consume(mode, namesrv, topic, w, t0 + TimeUnit.SECONDS.toNanos(timeout)).run();
            System.err.printf(Locale.ROOT, "[bench] consumer warm-up (%s): %d messages in %.2f s%n", mode,
                w.received.get(), (System.nanoTime() - t0) / 1e9);
            if (!w.finished()) {
                System.err.println("BenchConsumer: warm-up did not complete");
                return 1;
            }
        }
        Counts c = new Counts(count);
        double cpu0 = BenchProducer.cpuMs(pid);
        double gen0 = BenchProducer.selfCpuMs();
        long start = System.nanoTime();
        long deadline = start + TimeUnit.SECONDS.toNanos(timeout);
        Runnable stop = consume(mode, namesrv, topic, c, deadline);
        boolean ok = c.finished();
        long end = ok ? c.endAt.get() : System.nanoTime();
        double cpu = BenchProducer.cpuMs(pid) - cpu0;
        double gen = BenchProducer.selfCpuMs() - gen0;
        stop.run();
        double secs = (end - start) / 1e9;
        double flowing = c.firstAt.get() == 0 ? secs : (end - c.firstAt.get()) / 1e9;
        long n = c.received.get();
        System.out.printf(Locale.ROOT,
            "RESULT consume mode=%s warmup=%d received=%d secs=%.2f first_msg_after_ms=%.0f mps=%.0f cpu_ms=%.0f "
                + "cpu_us_per_msg=%.2f gen_cpu_us_per_msg=%.2f%n",
            mode, warmup, n, secs, (secs - flowing) * 1e3, n / flowing, cpu, n > 0 ? cpu * 1e3 / n : 0.0,
            n > 0 ? gen * 1e3 / n : 0.0);
        return ok ? 0 : 1;
    }

    private static long nanosLeft(long deadline) {
        return Math.max(0, deadline - System.nanoTime());
    }

    /**
     * Push consumer, 20 consume threads, the listener called with up to listenerBatch messages
     * (1: the client's default, one call per message); returns once count arrived or at the deadline.
     */
    private static Runnable push(String namesrv, String topic, String group, Counts c, long deadline,
                                 int listenerBatch) throws Exception {
        DefaultMQPushConsumer consumer = new DefaultMQPushConsumer(group);
        consumer.setNamesrvAddr(namesrv);
        consumer.setInstanceName(group);
        consumer.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
        consumer.setConsumeThreadMin(20);
        consumer.setConsumeThreadMax(20);
        consumer.setPullBatchSize(BATCH);
        consumer.setConsumeMessageBatchMaxSize(listenerBatch);
        consumer.subscribe(topic, "*");
        consumer.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
            c.add(msgs.size());
            return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
        });
        consumer.start();
        c.done.await(nanosLeft(deadline), TimeUnit.NANOSECONDS);
        return consumer::shutdown;
    }

    /** Lite pull consumer (the client's pull threads fill per-queue caches), one thread polling. */
    private static Runnable litePull(String namesrv, String topic, String group, Counts c, long deadline)
        throws Exception {
        DefaultLitePullConsumer consumer = new DefaultLitePullConsumer(group);
        consumer.setNamesrvAddr(namesrv);
        consumer.setInstanceName(group);
        consumer.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
        consumer.setPullBatchSize(BATCH);
        consumer.setAutoCommit(true);
        consumer.subscribe(topic, "*");
        consumer.start();
        // Bounded: every poll waits at most 200 ms and the loop stops at the deadline.
        while (!c.finished() && System.nanoTime() < deadline) {
            List<MessageExt> msgs = consumer.poll(200);
            c.add(msgs == null ? 0 : msgs.size());
        }
        return consumer::shutdown;
    }

    /**
     * DefaultMQPullConsumer: one thread per queue, synchronous pull of 32 from offset 0 on, until
     * the queues together delivered count or the deadline passed (a drained queue is re-asked
     * every 20 ms meanwhile).
     */
    @SuppressWarnings("deprecation")
    private static Runnable directPull(String namesrv, String topic, String group, Counts c, long deadline)
        throws Exception {
        DefaultMQPullConsumer consumer = new DefaultMQPullConsumer(group);
        consumer.setNamesrvAddr(namesrv);
        consumer.setInstanceName(group);
        consumer.start();
        Collection<MessageQueue> mqs = consumer.fetchSubscribeMessageQueues(topic);
        List<Thread> threads = new ArrayList<>();
        final AtomicLong failures = new AtomicLong();
        for (MessageQueue mq : mqs) {
            Thread t = new Thread(() -> {
                long offset = 0;
                while (!c.finished() && System.nanoTime() < deadline) {
                    try {
                        PullResult r = consumer.pull(mq, "*", offset, BATCH, 3000);
                        if (r.getPullStatus() == PullStatus.FOUND) {
                            c.add(r.getMsgFoundList().size());
                            offset = r.getNextBeginOffset();
                        } else if (r.getPullStatus() == PullStatus.NO_NEW_MSG) {
                            // Drained (or not yet dispatched): the other queues may still be going.
                            Thread.sleep(20);
                        } else {
                            offset = r.getNextBeginOffset();
                        }
                    } catch (Exception e) {
                        if (failures.incrementAndGet() > 100) {
                            System.err.println("BenchConsumer: pull keeps failing: " + e);
                            return;
                        }
                    }
                }
            }, "bench-pull-" + mq.getQueueId());
            threads.add(t);
            t.start();
        }
        for (Thread t : threads) {
            t.join(Math.max(1, TimeUnit.NANOSECONDS.toMillis(nanosLeft(deadline)) + 1000));
        }
        return consumer::shutdown;
    }
}
