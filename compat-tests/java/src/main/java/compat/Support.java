package compat;

import java.util.List;
import java.util.function.BooleanSupplier;
import org.apache.rocketmq.client.consumer.DefaultMQPullConsumer;
import org.apache.rocketmq.client.consumer.PullResult;
import org.apache.rocketmq.client.consumer.PullStatus;
import org.apache.rocketmq.common.TopicConfig;
import org.apache.rocketmq.common.message.MessageQueue;
import org.apache.rocketmq.tools.admin.DefaultMQAdminExt;

/** Helpers shared by the scenario drivers (Scenarios, DelayTx, FilterTraceCompress, OrderlyFailure). */
final class Support {
    private Support() {
    }

    /** One scenario of a driver: returns "ok ..." or "FAIL ...". */
    interface Scenario {
        String run(String name) throws Exception;
    }

    /**
     * Runs each named scenario, printing {@code scenario=<name> <verdict> (<ms> ms)}; an
     * exception is a FAIL verdict. Returns whether every verdict starts with "ok".
     */
    static boolean runScenarios(String[] names, Scenario scenario) {
        boolean allOk = true;
        for (String s : names) {
            long t0 = System.currentTimeMillis();
            String verdict;
            try {
                verdict = scenario.run(s);
            } catch (Throwable t) {
                t.printStackTrace();
                verdict = "FAIL exception " + t;
            }
            allOk &= verdict.startsWith("ok");
            System.out.println("scenario=" + s + " " + verdict + " (" + (System.currentTimeMillis() - t0) + " ms)");
            System.out.flush();
        }
        return allOk;
    }

    /** A started admin client on the given name server. */
    static DefaultMQAdminExt startAdmin(String ns, String instanceName) throws Exception {
        DefaultMQAdminExt admin = new DefaultMQAdminExt();
        admin.setNamesrvAddr(ns);
        admin.setInstanceName(instanceName);
        admin.start();
        return admin;
    }

    /**
     * UPDATE_AND_CREATE_TOPIC (read = write = {@code queues}, perm 6) on the broker, then wait
     * up to 20 s until the name server's route for the topic lists queue data.
     */
    static void createTopic(DefaultMQAdminExt admin, String brokerAddr, String topic, int queues) throws Exception {
        TopicConfig tc = new TopicConfig(topic);
        tc.setReadQueueNums(queues);
        tc.setWriteQueueNums(queues);
        tc.setPerm(6);
        admin.createAndUpdateTopicConfig(brokerAddr, tc);
        long deadline = System.currentTimeMillis() + 20000;
        while (true) {
            try {
                // TopicRouteData moved packages between 4.x and 5.x: reach it by reflection.
                Object route = admin.examineTopicRouteInfo(topic);
                List<?> qd = (List<?>) route.getClass().getMethod("getQueueDatas").invoke(route);
                if (qd != null && !qd.isEmpty()) {
                    return;
                }
            } catch (Exception e) {
                if (System.currentTimeMillis() > deadline) {
                    throw e;
                }
            }
            if (System.currentTimeMillis() > deadline) {
                throw new IllegalStateException("no route for " + topic);
            }
            Thread.sleep(200);
        }
    }

    /** Polls {@code cond} every 100 ms for up to {@code seconds}; returns its last value. */
    static boolean waitFor(long seconds, BooleanSupplier cond) throws InterruptedException {
        long deadline = System.currentTimeMillis() + seconds * 1000L;
        while (System.currentTimeMillis() < deadline) {
            if (cond.getAsBoolean()) {
                return true;
            }
            Thread.sleep(100);
        }
        return cond.getAsBoolean();
    }

    /**
     * Pulls up to 32 messages of {@code mq} from offset 0 every 300 ms for up to {@code seconds}
     * (a pull fails while the route is not there yet) until one is FOUND; returns the last result
     * (null if every pull failed).
     */
    static PullResult pullFound(DefaultMQPullConsumer pc, MessageQueue mq, long seconds)
            throws InterruptedException {
        PullResult pr = null;
        long deadline = System.currentTimeMillis() + seconds * 1000L;
        while (System.currentTimeMillis() < deadline) {
            try {
                pr = pc.pull(mq, "*", 0, 32);
                if (pr.getPullStatus() == PullStatus.FOUND) {
                    break;
                }
            } catch (Exception e) {
                // route not there yet
            }
            Thread.sleep(300);
        }
        return pr;
    }

    /** "ok summary", or "FAIL summary problems: p1; p2; ..." with at most 20 problems. */
    static String verdict(List<String> problems, String summary) {
        if (problems.isEmpty()) {
            return "ok " + summary;
        }
        List<String> shown = problems.subList(0, Math.min(problems.size(), 20));
        return "FAIL " + summary + " problems: " + String.join("; ", shown);
    }
}
