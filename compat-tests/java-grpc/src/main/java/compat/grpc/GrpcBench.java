package compat.grpc;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

import org.apache.rocketmq.client.apis.ClientServiceProvider;
import org.apache.rocketmq.client.apis.consumer.FilterExpression;
import org.apache.rocketmq.client.apis.consumer.FilterExpressionType;
import org.apache.rocketmq.client.apis.consumer.SimpleConsumer;
import org.apache.rocketmq.client.apis.message.Message;
import org.apache.rocketmq.client.apis.message.MessageView;
import org.apache.rocketmq.client.apis.producer.Producer;

/**
 * Throughput driver of the official RocketMQ 5 gRPC Java client, used by
 * {@code compat-tests/src/bin/bench_grpc.rs}. One mode per run:
 *
 * <pre>
 *   send ENDPOINT TOPIC COUNT THREADS BODY_BYTES
 *   recv ENDPOINT TOPIC GROUP COUNT THREADS [TIMEOUT_SECONDS]
 * </pre>
 *
 * send: THREADS threads share one Producer and make COUNT synchronous sends
 * of a BODY_BYTES body between them, after an untimed warm-up (so that both
 * the client's and the server's code is compiled and every connection open
 * before the clock starts). Each send's latency is recorded. Prints
 * {@code SEND count=.. secs=.. tps=.. p50us=.. p99us=.. maxus=.. errors=.. warmup=..},
 * where tps counts only the sends that succeeded and cpums is this JVM's
 * CPU time over the timed phase.
 *
 * recv: THREADS threads share one SimpleConsumer and each loops receive (32
 * messages at most, 30 s invisible) then acks what it got, until COUNT
 * distinct messages were acked or TIMEOUT_SECONDS (default 600) passed.
 * Prints {@code RECV count=.. secs=.. tps=.. dup=.. errors=.. cpums=..}:
 * count is the distinct messages acked, dup the deliveries of a message
 * already seen.
 *
 * Ends with {@code DONE} (exit 0) or {@code FAIL reason} (exit 1).
 */
public final class GrpcBench {
    private static final ClientServiceProvider PROVIDER = ClientServiceProvider.loadService();

    private GrpcBench() {
    }

    public static void main(String[] args) {
        try {
            switch (args[0]) {
                case "send":
                    send(args[1], args[2], Integer.parseInt(args[3]), Integer.parseInt(args[4]),
                        Integer.parseInt(args[5]));
                    break;
                case "recv":
                    recv(args[1], args[2], args[3], Integer.parseInt(args[4]), Integer.parseInt(args[5]),
                        args.length > 6 ? Integer.parseInt(args[6]) : 600);
                    break;
                default:
                    throw new IllegalArgumentException("unknown mode " + args[0]);
            }
            GrpcScenarios.out("DONE");
            System.exit(0);
        } catch (Throwable t) {
            GrpcScenarios.out("FAIL " + t.toString().replace('\n', ' '));
            t.printStackTrace(System.out);
            System.exit(1);
        }
    }

    /**
     * This JVM's CPU time so far in milliseconds (all threads, the gRPC
     * client's included); -1 where the JVM does not say.
     */
    static long cpuMs() {
        java.lang.management.OperatingSystemMXBean os = java.lang.management.ManagementFactory.getOperatingSystemMXBean();
        if (os instanceof com.sun.management.OperatingSystemMXBean) {
            return ((com.sun.management.OperatingSystemMXBean) os).getProcessCpuTime() / 1_000_000;
        }
        return -1;
    }

    /** Runs `body` on `threads` threads and waits for all of them. */
    private static void onThreads(int threads, Runnable body) throws InterruptedException {
        List<Thread> ts = new ArrayList<>();
        for (int i = 0; i < threads; i++) {
            Thread t = new Thread(body, "bench-" + i);
            t.start();
            ts.add(t);
        }
        for (Thread t : ts) {
            t.join();
        }
    }

    static void send(String endpoint, String topic, int count, int threads, int bodyBytes) throws Exception {
        byte[] body = new byte[bodyBytes];
        Arrays.fill(body, (byte) 'x');
        // Enough to get the JIT past its first tiers on both sides, small
        // next to the timed run.
        int warmup = Math.max(200, Math.min(5000, count / 10));
        AtomicReference<Throwable> firstError = new AtomicReference<>();
        try (Producer p = PROVIDER.newProducerBuilder()
            .setClientConfiguration(GrpcScenarios.config(endpoint))
            .setTopics(topic)
            .build()) {
            Message m = PROVIDER.newMessageBuilder().setTopic(topic).setTag("bench").setBody(body).build();
            AtomicInteger next = new AtomicInteger();
            AtomicInteger warmErrors = new AtomicInteger();
            onThreads(threads, () -> {
                while (next.getAndIncrement() < warmup) {
                    try {
                        p.send(m);
                    } catch (Throwable e) {
                        warmErrors.incrementAndGet();
                        firstError.compareAndSet(null, e);
                    }
                }
            });
            // A server that fails every send would otherwise be measured as
            // a very fast one.
            if (warmErrors.get() > warmup / 2) {
                throw new IllegalStateException(warmErrors.get() + " of " + warmup + " warm-up sends failed",
                    firstError.get());
            }
            long[] lat = new long[count];
            AtomicInteger done = new AtomicInteger();
            AtomicInteger errors = new AtomicInteger();
            next.set(0);
            long cpu0 = cpuMs();
            long start = System.nanoTime();
            onThreads(threads, () -> {
                int i;
                while ((i = next.getAndIncrement()) < count) {
                    long t0 = System.nanoTime();
                    try {
                        p.send(m);
                        // Each index is written by one thread only; join()
                        // publishes the writes to the reader below.
                        lat[i] = System.nanoTime() - t0;
                        done.incrementAndGet();
                    } catch (Throwable e) {
                        lat[i] = -1;
                        errors.incrementAndGet();
                        firstError.compareAndSet(null, e);
                    }
                }
            });
            double secs = (System.nanoTime() - start) / 1e9;
            long cpu = cpuMs() - cpu0;
            long[] ok = Arrays.stream(lat).filter(x -> x >= 0).sorted().toArray();
            if (errors.get() > 0) {
                GrpcScenarios.out("ERROR first send error: " + String.valueOf(firstError.get()).replace('\n', ' '));
            }
            GrpcScenarios.out(String.format("SEND count=%d secs=%.3f tps=%.0f p50us=%d p99us=%d maxus=%d errors=%d warmup=%d cpums=%d",
                ok.length, secs, ok.length / secs, quantileUs(ok, 0.50), quantileUs(ok, 0.99),
                ok.length == 0 ? 0 : ok[ok.length - 1] / 1000, errors.get(), warmup, cpu));
        }
    }

    /** The `q` quantile (nearest rank) of sorted nanoseconds, in microseconds. */
    static long quantileUs(long[] sorted, double q) {
        if (sorted.length == 0) {
            return 0;
        }
        int rank = (int) Math.ceil(q * sorted.length);
        return sorted[Math.max(0, Math.min(sorted.length - 1, rank - 1))] / 1000;
    }

    static void recv(String endpoint, String topic, String group, int count, int threads, int timeoutSeconds)
        throws Exception {
        Set<String> seen = ConcurrentHashMap.newKeySet();
        AtomicInteger acked = new AtomicInteger();
        AtomicLong dup = new AtomicLong();
        AtomicInteger errors = new AtomicInteger();
        AtomicReference<Throwable> firstError = new AtomicReference<>();
        try (SimpleConsumer c = PROVIDER.newSimpleConsumerBuilder()
            .setClientConfiguration(GrpcScenarios.config(endpoint))
            .setConsumerGroup(group)
            // The long-poll of an empty receive; short so that the threads
            // notice the end quickly once the topic runs dry.
            .setAwaitDuration(Duration.ofSeconds(1))
            .setSubscriptionExpressions(Collections.singletonMap(topic,
                new FilterExpression("*", FilterExpressionType.TAG)))
            .build()) {
            long cpu0 = cpuMs();
            long start = System.nanoTime();
            long deadline = start + TimeUnit.SECONDS.toNanos(timeoutSeconds);
            onThreads(threads, () -> {
                while (acked.get() < count && System.nanoTime() < deadline) {
                    List<MessageView> got;
                    try {
                        got = GrpcScenarios.receive(c, 32, Duration.ofSeconds(30));
                    } catch (Throwable e) {
                        errors.incrementAndGet();
                        firstError.compareAndSet(null, e);
                        continue;
                    }
                    // All acks of a batch in flight at once, as an
                    // application acking after processing in parallel would.
                    List<CompletableFuture<Void>> acks = new ArrayList<>(got.size());
                    boolean[] first = new boolean[got.size()];
                    for (int i = 0; i < got.size(); i++) {
                        MessageView m = got.get(i);
                        first[i] = seen.add(m.getMessageId().toString());
                        if (!first[i]) {
                            dup.incrementAndGet();
                        }
                        acks.add(c.ackAsync(m));
                    }
                    for (int i = 0; i < acks.size(); i++) {
                        try {
                            acks.get(i).get(30, TimeUnit.SECONDS);
                            if (first[i]) {
                                acked.incrementAndGet();
                            }
                        } catch (Throwable e) {
                            errors.incrementAndGet();
                            firstError.compareAndSet(null, e);
                        }
                    }
                }
            });
            double secs = (System.nanoTime() - start) / 1e9;
            long cpu = cpuMs() - cpu0;
            if (errors.get() > 0) {
                GrpcScenarios.out("ERROR first receive/ack error: " + String.valueOf(firstError.get()).replace('\n', ' '));
            }
            GrpcScenarios.out(String.format("RECV count=%d secs=%.3f tps=%.0f dup=%d errors=%d cpums=%d",
                acked.get(), secs, acked.get() / secs, dup.get(), errors.get(), cpu));
            if (acked.get() < count) {
                throw new IllegalStateException("only " + acked.get() + " of " + count + " acked in "
                    + timeoutSeconds + " s");
            }
        }
    }
}
