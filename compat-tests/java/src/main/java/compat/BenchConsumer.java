package compat;

import java.nio.file.Path;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.consumer.listener.MessageListenerConcurrently;
import org.apache.rocketmq.common.consumer.ConsumeFromWhere;

/**
 * Consume throughput for scripts/bench-broker.sh, on the official Java client.
 *
 * <pre>
 * BenchConsumer &lt;namesrv&gt; &lt;topic&gt; &lt;count&gt; &lt;brokerPid|0&gt; [timeoutSecs=300]
 * </pre>
 *
 * A push consumer in a new group (CLUSTERING, "*", CONSUME_FROM_FIRST_OFFSET, 20 consume
 * threads, pull batches of 32) reads a topic already holding count messages; the listener
 * only counts. Prints "RESULT consume received=N secs=S first_msg_after_ms=F mps=X cpu_ms=..
 * cpu_us_per_msg=.. gen_cpu_us_per_msg=..": secs from start() until count messages were delivered, F from start()
 * to the first delivery (route, rebalance, first pull), mps = N over the time from the first
 * delivery to the last; cpu: the broker's utime+stime delta over the whole run
 * (/proc/&lt;pid&gt;/stat); gen_cpu: this JVM's. Exit 0 when count arrived before the timeout.
 */
public final class BenchConsumer {

    private BenchConsumer() {
    }

    public static void main(String[] args) {
        Path logs = BenchProducer.quietClientLogs();
        int rc;
        try {
            if (args.length == 4 || args.length == 5) {
                rc = run(args[0], args[1], Long.parseLong(args[2]), Integer.parseInt(args[3]),
                    args.length == 5 ? Integer.parseInt(args[4]) : 300);
            } else {
                System.err.println("usage: BenchConsumer <namesrv> <topic> <count> <brokerPid|0> [timeoutSecs]");
                rc = 2;
            }
        } catch (Throwable t) {
            System.err.println("BenchConsumer: unexpected failure: " + t);
            t.printStackTrace();
            rc = 1;
        }
        if (rc != 0 && logs != null) {
            System.err.println("client logs: " + logs);
        }
        System.exit(rc);
    }

    private static int run(String namesrv, String topic, final long count, int pid, int timeout) throws Exception {
        final AtomicLong received = new AtomicLong();
        final CountDownLatch done = new CountDownLatch(1);
        final AtomicLong firstAt = new AtomicLong();
        DefaultMQPushConsumer consumer = new DefaultMQPushConsumer("bench-consume-" + System.nanoTime());
        consumer.setNamesrvAddr(namesrv);
        consumer.setInstanceName("bench-consume-" + System.nanoTime());
        consumer.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
        consumer.setConsumeThreadMin(20);
        consumer.setConsumeThreadMax(20);
        consumer.setPullBatchSize(32);
        consumer.subscribe(topic, "*");
        consumer.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
            firstAt.compareAndSet(0, System.nanoTime());
            if (received.addAndGet(msgs.size()) >= count) {
                done.countDown();
            }
            return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
        });
        double cpu0 = BenchProducer.cpuMs(pid);
        double gen0 = BenchProducer.selfCpuMs();
        long start = System.nanoTime();
        consumer.start();
        boolean ok = done.await(timeout, TimeUnit.SECONDS);
        long end = System.nanoTime();
        double secs = (end - start) / 1e9;
        double flowing = firstAt.get() == 0 ? secs : (end - firstAt.get()) / 1e9;
        double cpu = BenchProducer.cpuMs(pid) - cpu0;
        double gen = BenchProducer.selfCpuMs() - gen0;
        consumer.shutdown();
        long n = received.get();
        System.out.printf(java.util.Locale.ROOT,
            "RESULT consume received=%d secs=%.2f first_msg_after_ms=%.0f mps=%.0f cpu_ms=%.0f "
                + "cpu_us_per_msg=%.2f gen_cpu_us_per_msg=%.2f%n",
            n, secs, (secs - flowing) * 1e3, n / flowing, cpu, n > 0 ? cpu * 1e3 / n : 0.0,
            n > 0 ? gen * 1e3 / n : 0.0);
        return ok ? 0 : 1;
    }
}
