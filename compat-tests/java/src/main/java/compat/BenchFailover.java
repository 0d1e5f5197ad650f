package compat;

import java.util.HashMap;
import java.util.Map;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.client.producer.SendStatus;
import org.apache.rocketmq.common.message.Message;

/**
 * Failover time for scripts/bench-broker.sh --dledger, on the official Java client.
 *
 * <pre>
 * BenchFailover &lt;namesrv&gt; &lt;topic&gt; &lt;brokerName&gt; &lt;addr=pid,...&gt; &lt;timeoutSecs&gt;
 * </pre>
 *
 * One producer (route poll every 100 ms, send timeout 1000 ms, no client retries) sends
 * until 50 sends are acknowledged, looks up the master address of brokerName in its route,
 * SIGKILLs the process of that address (from the addr=pid list), then sends in a loop until
 * the first acknowledged (SEND_OK) send. Prints
 * "RESULT failover ms=M errors=E old_master=ADDR" (M = SIGKILL to that acknowledgement).
 * Exit 0 on success, 1 on failure or timeout, 2 on bad usage.
 */
public final class BenchFailover {

    private BenchFailover() {
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 5) {
            System.err.println("usage: BenchFailover <namesrv> <topic> <brokerName> <addr=pid,...> <timeoutSecs>");
            System.exit(2);
        }
        Map<String, Long> pids = new HashMap<>();
        for (String kv : args[3].split(",")) {
            String[] p = kv.split("=");
            pids.put(p[0], Long.parseLong(p[1]));
        }
        long timeoutNs = Long.parseLong(args[4]) * 1_000_000_000L;
        DefaultMQProducer producer = new DefaultMQProducer("bench_failover_group");
        producer.setNamesrvAddr(args[0]);
        producer.setPollNameServerInterval(100);
        producer.setSendMsgTimeout(1000);
        producer.setRetryTimesWhenSendFailed(0);
        producer.start();
        int rc = 1;
        try {
            rc = run(producer, args[1], args[2], pids, timeoutNs);
        } finally {
            producer.shutdown();
        }
        System.exit(rc);
    }

    private static boolean sendOk(DefaultMQProducer producer, String topic) {
        try {
            byte[] body = new byte[1024];
            java.util.Arrays.fill(body, (byte) 'x');
            Message m = new Message(topic, "failover", body);
            SendResult r = producer.send(m);
            return r.getSendStatus() == SendStatus.SEND_OK;
        } catch (Exception e) {
            return false;
        }
    }

    private static int run(DefaultMQProducer producer, String topic, String brokerName,
                           Map<String, Long> pids, long timeoutNs) throws Exception {
        long deadline = System.nanoTime() + timeoutNs;
        int acks = 0;
        while (acks < 50) {
            if (System.nanoTime() > deadline) {
                System.err.println("BenchFailover: no 50 acknowledged sends before the kill");
                return 1;
            }
            if (sendOk(producer, topic)) {
                acks++;
            } else {
                Thread.sleep(10);
            }
        }
        String master = producer.getDefaultMQProducerImpl().getMqClientFactory()
            .findBrokerAddressInPublish(brokerName);
        Long pid = master == null ? null : pids.get(master);
        if (pid == null) {
            System.err.println("BenchFailover: master " + master + " of " + brokerName + " not in " + pids);
            return 1;
        }
        long t0 = System.nanoTime();
        Process kill = Runtime.getRuntime().exec(new String[] {"kill", "-KILL", Long.toString(pid)});
        if (kill.waitFor() != 0) {
            System.err.println("BenchFailover: kill -KILL " + pid + " failed");
            return 1;
        }
        int errors = 0;
        deadline = t0 + timeoutNs;
        while (!sendOk(producer, topic)) {
            errors++;
            if (System.nanoTime() > deadline) {
                System.err.println("BenchFailover: no acknowledged send after the kill");
                return 1;
            }
            Thread.sleep(5);
        }
        long ms = (System.nanoTime() - t0) / 1_000_000L;
        System.out.println("RESULT failover ms=" + ms + " errors=" + errors + " old_master=" + master);
        return 0;
    }
}
