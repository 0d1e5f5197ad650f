package compat;

import com.alibaba.fastjson.JSON;
import io.openmessaging.storage.dledger.DLedgerConfig;
import io.openmessaging.storage.dledger.DLedgerServer;
import io.openmessaging.storage.dledger.client.DLedgerClient;
import io.openmessaging.storage.dledger.entry.DLedgerEntry;
import io.openmessaging.storage.dledger.protocol.AppendEntryRequest;
import io.openmessaging.storage.dledger.protocol.AppendEntryResponse;
import io.openmessaging.storage.dledger.protocol.GetEntriesRequest;
import io.openmessaging.storage.dledger.protocol.GetEntriesResponse;
import io.openmessaging.storage.dledger.protocol.HeartBeatRequest;
import io.openmessaging.storage.dledger.protocol.HeartBeatResponse;
import io.openmessaging.storage.dledger.protocol.LeadershipTransferRequest;
import io.openmessaging.storage.dledger.protocol.LeadershipTransferResponse;
import io.openmessaging.storage.dledger.protocol.MetadataRequest;
import io.openmessaging.storage.dledger.protocol.MetadataResponse;
import io.openmessaging.storage.dledger.protocol.PushEntryRequest;
import io.openmessaging.storage.dledger.protocol.PushEntryResponse;
import io.openmessaging.storage.dledger.protocol.VoteRequest;
import io.openmessaging.storage.dledger.protocol.VoteResponse;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import org.apache.rocketmq.remoting.netty.NettyServerConfig;

/**
 * DLedger 0.3.1.2 from the official jar, for the compat suite:
 * <pre>
 *   golden                       print "Name\tJSON" per fixed case (JSON.toJSONBytes as DLedger)
 *   parse FILE                   "Name\tJSON" lines (Name = class[.case]): JSON.parseObject into the class, print it re-serialised
 *   server --group g --id n0 --peers P --store-base-dir D [--heartbeat-ms N] [--max-heartbeat-leak N]
 *          [--min-vote-interval-ms N] [--max-vote-interval-ms N] [--data-file-size N] [--index-file-size N]
 *   append --group g --peers P --data D [--count N]        prints "RESULT &lt;json&gt;" per append
 *   get --group g --peers P --index I                      prints "RESULT &lt;json&gt;"
 *   leadershipTransfer --group g --peers P --leader L --transferee T --term N
 * </pre>
 */
public final class DLedgerWire {
    private static final String PKG = "io.openmessaging.storage.dledger.protocol.";

    private DLedgerWire() {
    }

    public static void main(String[] args) throws Exception {
        if (args.length == 0) {
            System.err.println("usage: DLedgerWire golden|parse|server|append|get|leadershipTransfer ...");
            System.exit(2);
        }
        Map<String, String> opts = options(args);
        switch (args[0]) {
            case "golden":
                for (Map.Entry<String, Object> c : cases().entrySet()) {
                    System.out.println(c.getKey() + "\t" + new String(JSON.toJSONBytes(c.getValue()), StandardCharsets.UTF_8));
                }
                break;
            case "parse":
                parse(args[1]);
                break;
            case "server":
                server(opts);
                break;
            case "append": {
                DLedgerClient client = new DLedgerClient(opt(opts, "group", "default"), opt(opts, "peers", "n0-localhost:20911"));
                client.startup();
                int count = Integer.parseInt(opt(opts, "count", "1"));
                byte[] data = opt(opts, "data", "Hello").getBytes(StandardCharsets.UTF_8);
                for (int i = 0; i < count; i++) {
                    AppendEntryResponse r = client.append(data);
                    System.out.println("RESULT " + JSON.toJSONString(r));
                }
                client.shutdown();
                break;
            }
            case "get": {
                DLedgerClient client = new DLedgerClient(opt(opts, "group", "default"), opt(opts, "peers", "n0-localhost:20911"));
                client.startup();
                GetEntriesResponse r = client.get(Long.parseLong(opt(opts, "index", "0")));
                System.out.println("RESULT " + JSON.toJSONString(r));
                client.shutdown();
                break;
            }
            case "leadershipTransfer": {
                DLedgerClient client = new DLedgerClient(opt(opts, "group", "default"), opt(opts, "peers", "n0-localhost:20911"));
                client.startup();
                LeadershipTransferResponse r = client.leadershipTransfer(opts.get("leader"),
                    opt(opts, "transferee", "n0"), Long.parseLong(opt(opts, "term", "0")));
                System.out.println("RESULT " + JSON.toJSONString(r));
                client.shutdown();
                break;
            }
            default:
                System.err.println("unknown command " + args[0]);
                System.exit(2);
        }
        System.exit(0);
    }

    private static Map<String, String> options(String[] args) {
        Map<String, String> m = new HashMap<>();
        for (int i = 1; i + 1 < args.length; i += 2) {
            String k = args[i];
            while (k.startsWith("-")) {
                k = k.substring(1);
            }
            m.put(k, args[i + 1]);
        }
        return m;
    }

    private static String opt(Map<String, String> m, String k, String dflt) {
        String v = m.get(k);
        return v == null ? dflt : v;
    }

    private static void server(Map<String, String> opts) throws Exception {
        DLedgerConfig config = new DLedgerConfig();
        config.setGroup(opt(opts, "group", "default"));
        config.setSelfId(opt(opts, "id", "n0"));
        config.setPeers(opt(opts, "peers", "n0-localhost:20911"));
        config.setStoreBaseDir(opt(opts, "store-base-dir", "/tmp/dledgerstore"));
        if (opts.containsKey("heartbeat-ms")) {
            config.setHeartBeatTimeIntervalMs(Integer.parseInt(opts.get("heartbeat-ms")));
        }
        if (opts.containsKey("max-heartbeat-leak")) {
            config.setMaxHeartBeatLeak(Integer.parseInt(opts.get("max-heartbeat-leak")));
        }
        if (opts.containsKey("min-vote-interval-ms")) {
            config.setMinVoteIntervalMs(Integer.parseInt(opts.get("min-vote-interval-ms")));
        }
        if (opts.containsKey("max-vote-interval-ms")) {
            config.setMaxVoteIntervalMs(Integer.parseInt(opts.get("max-vote-interval-ms")));
        }
        if (opts.containsKey("data-file-size")) {
            config.setMappedFileSizeForEntryData(Integer.parseInt(opts.get("data-file-size")));
        }
        if (opts.containsKey("index-file-size")) {
            config.setMappedFileSizeForEntryIndex(Integer.parseInt(opts.get("index-file-size")));
        }
        config.init();
        NettyServerConfig netty = new NettyServerConfig();
        try {
            // RocketMQ 5 remoting: keep the test servers on loopback.
            NettyServerConfig.class.getMethod("setBindAddress", String.class).invoke(netty, "127.0.0.1");
        } catch (NoSuchMethodException e) {
            // 4.x remoting binds every interface; nothing to do.
        }
        DLedgerServer server = new DLedgerServer(config, netty);
        server.startup();
        System.out.println("STARTED " + config.getSelfId());
        CountDownLatch done = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            server.shutdown();
            done.countDown();
        }));
        done.await();
    }

    private static void parse(String file) throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(new java.io.FileInputStream(file), StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            int tab = line.indexOf('\t');
            if (tab < 0) {
                continue;
            }
            String name = line.substring(0, tab);
            int dot = name.indexOf('.');
            Class<?> cls = Class.forName(PKG + (dot < 0 ? name : name.substring(0, dot)));
            Object o = JSON.parseObject(line.substring(tab + 1).getBytes(StandardCharsets.UTF_8), cls);
            System.out.println(name + "\t" + new String(JSON.toJSONBytes(o), StandardCharsets.UTF_8));
        }
    }

    private static DLedgerEntry entry(long index, long term, long pos, String body) {
        DLedgerEntry e = new DLedgerEntry();
        e.setIndex(index);
        e.setTerm(term);
        e.setPos(pos);
        e.setMagic(1);
        e.setBody(body.getBytes(StandardCharsets.UTF_8));
        e.setSize(48 + e.getBody().length);
        return e;
    }

    /** Fixed cases; the Rust test builds the same values under the same names. */
    private static Map<String, Object> cases() {
        Map<String, Object> m = new LinkedHashMap<>();

        MetadataRequest metaReq = new MetadataRequest();
        metaReq.setGroup("g1");
        metaReq.setRemoteId("n1");
        m.put("MetadataRequest", metaReq);

        MetadataResponse metaResp = new MetadataResponse();
        metaResp.setGroup("g1");
        metaResp.setLeaderId("n0");
        metaResp.setPeers(Collections.singletonMap("n0", "127.0.0.1:40911"));
        m.put("MetadataResponse", metaResp);

        AppendEntryRequest appendReq = new AppendEntryRequest();
        appendReq.setGroup("g1");
        appendReq.setRemoteId("n0");
        appendReq.setBody(new byte[] {'h', 'i', 0, (byte) 0xff, (byte) 0xfe});
        m.put("AppendEntryRequest", appendReq);

        AppendEntryResponse appendResp = new AppendEntryResponse();
        appendResp.setGroup("g1");
        appendResp.setLeaderId("n0");
        appendResp.setTerm(3);
        appendResp.setIndex(5);
        appendResp.setPos(9007199254740993L);
        m.put("AppendEntryResponse", appendResp);

        m.put("AppendEntryResponse.default", new AppendEntryResponse());

        GetEntriesRequest getReq = new GetEntriesRequest();
        getReq.setGroup("g1");
        getReq.setRemoteId("n0");
        getReq.setBeginIndex(7L);
        m.put("GetEntriesRequest", getReq);

        GetEntriesResponse getResp = new GetEntriesResponse();
        getResp.setGroup("g1");
        getResp.setEntries(Collections.singletonList(entry(7, 2, 336, "abc")));
        m.put("GetEntriesResponse", getResp);

        VoteRequest voteReq = new VoteRequest();
        voteReq.setGroup("g1");
        voteReq.setIds("n1", "n2", "n1");
        voteReq.setTerm(9);
        voteReq.setLedgerEndIndex(100);
        voteReq.setLedgerEndTerm(8);
        m.put("VoteRequest", voteReq);

        VoteResponse voteResp = new VoteResponse(voteReq);
        voteResp.setTerm(8);
        voteResp.setVoteResult(VoteResponse.RESULT.REJECT_TERM_NOT_READY);
        m.put("VoteResponse", voteResp);

        HeartBeatRequest hbReq = new HeartBeatRequest();
        hbReq.setGroup("g1");
        hbReq.setIds("n0", "n1", "n0");
        hbReq.setTerm(7);
        m.put("HeartBeatRequest", hbReq);

        m.put("HeartBeatResponse", new HeartBeatResponse().term(7).code(409));

        PushEntryRequest pushAppend = new PushEntryRequest();
        pushAppend.setGroup("g1");
        pushAppend.setIds("n0", "n1", "n0");
        pushAppend.setTerm(4);
        pushAppend.setCommitIndex(5);
        pushAppend.setType(PushEntryRequest.Type.APPEND);
        pushAppend.setEntry(entry(6, 4, 300, "six"));
        m.put("PushEntryRequest.append", pushAppend);

        PushEntryRequest pushBatch = new PushEntryRequest();
        pushBatch.setGroup("g1");
        pushBatch.setIds("n0", "n1", "n0");
        pushBatch.setTerm(4);
        pushBatch.setCommitIndex(5);
        pushBatch.setType(PushEntryRequest.Type.APPEND);
        pushBatch.addEntry(entry(6, 4, 300, "six"));
        pushBatch.addEntry(entry(7, 4, 351, "seven"));
        m.put("PushEntryRequest.batch", pushBatch);

        PushEntryRequest pushCommit = new PushEntryRequest();
        pushCommit.setGroup("g1");
        pushCommit.setIds("n0", "n1", "n0");
        pushCommit.setTerm(4);
        pushCommit.setCommitIndex(10);
        pushCommit.setType(PushEntryRequest.Type.COMMIT);
        m.put("PushEntryRequest.commit", pushCommit);

        PushEntryRequest pushTruncate = new PushEntryRequest();
        pushTruncate.setGroup("g1");
        pushTruncate.setIds("n0", "n1", "n0");
        pushTruncate.setTerm(4);
        pushTruncate.setType(PushEntryRequest.Type.TRUNCATE);
        pushTruncate.setEntry(entry(0, 1, 0, ""));
        m.put("PushEntryRequest.truncate", pushTruncate);

        PushEntryResponse pushResp = new PushEntryResponse();
        pushResp.setGroup("g1");
        pushResp.setTerm(4);
        pushResp.setIndex(6L);
        pushResp.setCount(1);
        pushResp.setBeginIndex(0);
        pushResp.setEndIndex(6);
        pushResp.setCode(406);
        m.put("PushEntryResponse", pushResp);

        PushEntryResponse pushCommitResp = new PushEntryResponse();
        pushCommitResp.setGroup("g1");
        pushCommitResp.setTerm(4);
        pushCommitResp.setBeginIndex(-1);
        pushCommitResp.setEndIndex(-1);
        m.put("PushEntryResponse.commit", pushCommitResp);

        LeadershipTransferRequest transferReq = new LeadershipTransferRequest();
        transferReq.setGroup("g1");
        transferReq.setRemoteId("n0");
        transferReq.setTransferId("n0");
        transferReq.setTransfereeId("n1");
        transferReq.setTerm(3);
        transferReq.setTakeLeadershipLedgerIndex(12);
        m.put("LeadershipTransferRequest", transferReq);

        m.put("LeadershipTransferResponse", new LeadershipTransferResponse().term(3).code(418));
        return m;
    }
}
