package compat;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Stream;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.client.producer.SendStatus;
import org.apache.rocketmq.common.message.Message;

/**
 * Load generator for scripts/bench-broker.sh, on the official Java client.
 *
 * <pre>
 * BenchProducer send &lt;namesrv&gt; &lt;topic&gt; &lt;brokerPid|0&gt; &lt;warmupSecs&gt; &lt;durationSecs&gt; &lt;threads,...&gt; &lt;bodyBytes&gt;
 * BenchProducer fill &lt;namesrv&gt; &lt;topic&gt; &lt;count&gt; &lt;bodyBytes&gt;
 * </pre>
 *
 * send: one DefaultMQProducer shared by T threads, each sending synchronously in a closed
 * loop (a new Message per send, tag "bench", random body), first a warm-up at the largest
 * thread count, then durationSecs per thread count. Every send's latency goes into a
 * log-linear histogram. Prints per thread count one line
 * "RESULT send threads=T sent=N errors=E secs=S tps=X p50_us=.. p99_us=.. p999_us=..
 * max_us=.. cpu_ms=.. cpu_us_per_msg=.. gen_cpu_us_per_msg=.." where cpu is the broker
 * process's utime+stime delta over the phase (/proc/&lt;pid&gt;/stat; 0 when pid is 0) and
 * gen_cpu this JVM's.
 *
 * fill: stores count messages in batches of 32 (16 threads), then prints
 * "RESULT fill sent=N errors=E secs=S".
 *
 * Exit 0 on success, 1 on failure, 2 on bad usage.
 */
public final class BenchProducer {

    private BenchProducer() {
    }

    public static void main(String[] args) {
        Path logs = quietClientLogs();
        int rc;
        try {
            if (args.length == 8 && "send".equals(args[0])) {
                rc = send(args[1], args[2], Integer.parseInt(args[3]), Integer.parseInt(args[4]),
                    Integer.parseInt(args[5]), args[6], Integer.parseInt(args[7]));
            } else if (args.length == 5 && "fill".equals(args[0])) {
                rc = fill(args[1], args[2], Integer.parseInt(args[3]), Integer.parseInt(args[4]));
            } else {
                System.err.println("usage: BenchProducer send <namesrv> <topic> <brokerPid|0> <warmupSecs> "
                    + "<durationSecs> <threads,...> <bodyBytes>\n"
                    + "       BenchProducer fill <namesrv> <topic> <count> <bodyBytes>");
                rc = 2;
            }
        } catch (Throwable t) {
            System.err.println("BenchProducer: unexpected failure: " + t);
            t.printStackTrace();
            rc = 1;
        }
        finishClientLogs(logs, rc);
        System.exit(rc);
    }

    // ------------------------------------------------------------------ send

    private static int send(String namesrv, String topic, int pid, int warmup, int duration,
                            String threadList, int size) throws Exception {
        List<Integer> counts = new ArrayList<>();
        for (String t : threadList.split(",")) {
            counts.add(Integer.parseInt(t.trim()));
        }
        int maxThreads = 1;
        for (int t : counts) {
            maxThreads = Math.max(maxThreads, t);
        }
        DefaultMQProducer producer = newProducer(namesrv, "bench-send");
        producer.start();
        try {
            byte[] body = body(size);
            // First send outside the clock: route lookup and connection set-up.
            firstSend(producer, topic, body);
            if (warmup > 0) {
                Phase w = runPhase(producer, topic, body, maxThreads, warmup, pid);
                System.err.println("[bench] warm-up " + maxThreads + " threads " + warmup + "s: "
                    + w.sent + " sends, " + w.errors + " errors");
            }
            boolean ok = true;
            for (int t : counts) {
                Phase p = runPhase(producer, topic, body, t, duration, pid);
                double secs = p.nanos / 1e9;
                System.out.printf(java.util.Locale.ROOT,
                    "RESULT send threads=%d sent=%d errors=%d secs=%.2f tps=%.0f p50_us=%.0f p99_us=%.0f "
                        + "p999_us=%.0f max_us=%.0f cpu_ms=%.0f cpu_us_per_msg=%.2f gen_cpu_us_per_msg=%.2f%n",
                    t, p.sent, p.errors, secs, p.sent / secs, p.hist.quantile(0.5) / 1e3,
                    p.hist.quantile(0.99) / 1e3, p.hist.quantile(0.999) / 1e3, p.hist.max / 1e3,
                    p.cpuMs, p.sent > 0 ? p.cpuMs * 1e3 / p.sent : 0.0,
                    p.sent > 0 ? p.genCpuMs * 1e3 / p.sent : 0.0);
                System.out.flush();
                ok &= p.sent > 0 && p.errors * 100 < p.sent;
            }
            return ok ? 0 : 1;
        } finally {
            producer.shutdown();
        }
    }

    private static void firstSend(DefaultMQProducer producer, String topic, byte[] body) throws Exception {
        long deadline = System.currentTimeMillis() + 30_000;
        while (true) {
            try {
                SendResult r = producer.send(new Message(topic, "bench", body));
                if (r.getSendStatus() == SendStatus.SEND_OK) {
                    return;
                }
            } catch (Exception e) {
                if (System.currentTimeMillis() > deadline) {
                    throw e;
                }
            }
            if (System.currentTimeMillis() > deadline) {
                throw new IllegalStateException("no successful send within 30 s");
            }
            Thread.sleep(200);
        }
    }

    static final class Phase {
        long sent;
        long errors;
        long nanos;
        double cpuMs;
        double genCpuMs;
        final Histogram hist = new Histogram();
    }

    private static Phase runPhase(final DefaultMQProducer producer, final String topic, final byte[] body,
                                  int threads, int seconds, int pid) throws InterruptedException {
        final long start = System.nanoTime();
        final long end = start + seconds * 1_000_000_000L;
        final Histogram[] hists = new Histogram[threads];
        final long[] sent = new long[threads];
        final long[] errors = new long[threads];
        Thread[] ts = new Thread[threads];
        double cpu0 = cpuMs(pid);
        double gen0 = selfCpuMs();
        for (int i = 0; i < threads; i++) {
            final int idx = i;
            hists[i] = new Histogram();
            ts[i] = new Thread(() -> {
                Histogram h = hists[idx];
                long now = System.nanoTime();
                while (now < end) {
                    long t0 = now;
                    boolean ok;
                    try {
                        SendResult r = producer.send(new Message(topic, "bench", body));
                        ok = r.getSendStatus() == SendStatus.SEND_OK;
                    } catch (Exception e) {
                        ok = false;
                    }
                    now = System.nanoTime();
                    if (ok) {
                        sent[idx]++;
                        h.record(now - t0);
                    } else {
                        errors[idx]++;
                    }
                }
            }, "bench-send-" + i);
            ts[i].start();
        }
        for (Thread t : ts) {
            t.join();
        }
        Phase p = new Phase();
        p.nanos = System.nanoTime() - start;
        p.cpuMs = cpuMs(pid) - cpu0;
        p.genCpuMs = selfCpuMs() - gen0;
        for (int i = 0; i < threads; i++) {
            p.sent += sent[i];
            p.errors += errors[i];
            p.hist.merge(hists[i]);
        }
        return p;
    }

    // ------------------------------------------------------------------ fill

    private static int fill(String namesrv, String topic, final int count, int size) throws Exception {
        final DefaultMQProducer producer = newProducer(namesrv, "bench-fill");
        producer.start();
        try {
            final byte[] body = body(size);
            firstSend(producer, topic, body);
            final int batch = 32;
            final AtomicLong next = new AtomicLong(1); // the first send above counts
            final AtomicLong errors = new AtomicLong();
            final java.util.concurrent.atomic.AtomicBoolean gaveUp = new java.util.concurrent.atomic.AtomicBoolean();
            long start = System.nanoTime();
            Thread[] ts = new Thread[16];
            for (int i = 0; i < ts.length; i++) {
                ts[i] = new Thread(() -> {
                    int failures = 0;
                    while (failures < 1000) {
                        long from = next.getAndAdd(batch);
                        if (from >= count) {
                            return;
                        }
                        int n = (int) Math.min(batch, count - from);
                        List<Message> msgs = new ArrayList<>(n);
                        for (int k = 0; k < n; k++) {
                            msgs.add(new Message(topic, "bench", body));
                        }
                        // Retry the same batch until stored (bounded by the failure budget).
                        while (true) {
                            boolean ok;
                            try {
                                ok = producer.send(msgs).getSendStatus() == SendStatus.SEND_OK;
                            } catch (Exception e) {
                                ok = false;
                            }
                            if (ok) {
                                break;
                            }
                            errors.incrementAndGet();
                            if (++failures >= 1000) {
                                gaveUp.set(true);
                                return;
                            }
                        }
                    }
                }, "bench-fill-" + i);
                ts[i].start();
            }
            for (Thread t : ts) {
                t.join();
            }
            double secs = (System.nanoTime() - start) / 1e9;
            System.out.printf(java.util.Locale.ROOT, "RESULT fill sent=%d errors=%d secs=%.2f%n",
                count, errors.get(), secs);
            return gaveUp.get() ? 1 : 0;
        } finally {
            producer.shutdown();
        }
    }

    // --------------------------------------------------------------- helpers

    private static DefaultMQProducer newProducer(String namesrv, String group) {
        DefaultMQProducer producer = new DefaultMQProducer(group + "-" + System.nanoTime());
        producer.setNamesrvAddr(namesrv);
        producer.setInstanceName(group + "-" + System.nanoTime());
        producer.setSendMsgTimeout(10_000);
        producer.setRetryTimesWhenSendFailed(0);
        producer.setMaxMessageSize(4 * 1024 * 1024);
        return producer;
    }

    private static byte[] body(int size) {
        byte[] b = new byte[size];
        Random r = new Random(42);
        for (int i = 0; i < size; i++) {
            b[i] = (byte) ('a' + r.nextInt(26));
        }
        return b;
    }

    /** utime + stime of a process in milliseconds (0 for pid 0 or when unreadable). */
    static double cpuMs(int pid) {
        return pid > 0 ? cpuMs("/proc/" + pid + "/stat") : 0;
    }

    /** utime + stime of this JVM (the load generator) in milliseconds. */
    static double selfCpuMs() {
        return cpuMs("/proc/self/stat");
    }

    private static double cpuMs(String path) {
        try {
            String stat = new String(Files.readAllBytes(Paths.get(path)),
                StandardCharsets.US_ASCII);
            String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
            long ticks = Long.parseLong(f[11]) + Long.parseLong(f[12]);
            return ticks * 1000.0 / clockTicks();
        } catch (IOException | RuntimeException e) {
            return 0;
        }
    }

    /** USER_HZ; 100 on every Linux this runs on (getconf CLK_TCK, passed in by the script). */
    static long clockTicks() {
        return Long.getLong("bench.clkTck", 100L);
    }

    /** Must run before any RocketMQ client class is loaded. Returns the temp log dir or null. */
    static Path quietClientLogs() {
        Path dir = null;
        try {
            dir = Files.createTempDirectory("bench-rmq-client-logs-");
        } catch (IOException e) {
            dir = null;
        }
        if (dir != null) {
            setDefault("rocketmq.client.logRoot", dir.toString());
            setDefault("rocketmq.log.root", dir.toString());
        }
        setDefault("rocketmq.client.logLevel", "WARN");
        setDefault("rocketmq.log.level", "WARN");
        setDefault("rmq.logback.configurationFile", "rmq.client.logback.xml");
        return dir;
    }

    /** Names the client log folder after a failure; removes it after a success. */
    static void finishClientLogs(Path dir, int rc) {
        if (dir == null) {
            return;
        }
        if (rc != 0) {
            System.err.println("client logs: " + dir);
            return;
        }
        try (Stream<Path> s = Files.walk(dir)) {
            s.sorted(Comparator.reverseOrder()).map(Path::toFile).forEach(File::delete);
        } catch (IOException ignored) {
            // best effort: a folder left in the temp dir
        }
    }

    private static void setDefault(String key, String value) {
        if (value != null && System.getProperty(key) == null) {
            System.setProperty(key, value);
        }
    }

    /**
     * Log-linear histogram of nanosecond values: exact below 256, then 128 sub-buckets per
     * power of two (relative error below 0.4 %).
     */
    static final class Histogram {
        private static final int SUB_BITS = 8;
        private static final int HALF = 1 << (SUB_BITS - 1);
        final long[] counts = new long[(64 - SUB_BITS + 2) * HALF];
        long total;
        long max;

        private static int index(long v) {
            if (v < (1L << SUB_BITS)) {
                return (int) Math.max(v, 0);
            }
            int msb = 63 - Long.numberOfLeadingZeros(v);
            int shift = msb - (SUB_BITS - 1);
            return shift * HALF + (int) (v >>> shift);
        }

        private static long valueOf(int idx) {
            if (idx < 2 * HALF) {
                return idx;
            }
            int shift = idx / HALF - 1;
            long mant = idx - (long) shift * HALF;
            return (mant << shift) + ((1L << shift) >> 1);
        }

        void record(long v) {
            counts[index(v)]++;
            total++;
            max = Math.max(max, v);
        }

        void merge(Histogram o) {
            for (int i = 0; i < counts.length; i++) {
                counts[i] += o.counts[i];
            }
            total += o.total;
            max = Math.max(max, o.max);
        }

        double quantile(double q) {
            if (total == 0) {
                return 0;
            }
            long target = Math.max(1, Math.min(total, (long) Math.ceil(q * total)));
            long seen = 0;
            for (int i = 0; i < counts.length; i++) {
                seen += counts[i];
                if (seen >= target) {
                    return Math.min(valueOf(i), max);
                }
            }
            return max;
        }
    }
}
