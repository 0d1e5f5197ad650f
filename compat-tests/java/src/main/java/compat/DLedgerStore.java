package compat;

import io.openmessaging.storage.dledger.DLedgerConfig;
import io.openmessaging.storage.dledger.MemberState;
import io.openmessaging.storage.dledger.entry.DLedgerEntry;
import io.openmessaging.storage.dledger.store.file.DLedgerMmapFileStore;
import java.lang.management.ManagementFactory;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Drives the real DLedger 0.3.1.2 mmap store (io.openmessaging.storage:dledger) for
 * compat-tests/tests/dledger_store_java.rs.
 *
 * <pre>
 * write &lt;storeBaseDir&gt; &lt;selfId&gt; &lt;dataFileSize&gt; &lt;indexFileSize&gt; &lt;count&gt;
 *     appends count entries as leader: entry i has term 1 + i / 50 and body(i) below;
 *     commits index count - 5; persists currterm (last term, vote = selfId); shuts down.
 * read &lt;storeBaseDir&gt; &lt;selfId&gt; &lt;dataFileSize&gt; &lt;indexFileSize&gt;
 *     opens (load + recover) and prints the whole ledger.
 * </pre>
 *
 * Output lines: {@code E index term pos size hex(body)}, {@code L begin end endTerm},
 * {@code C committedIndex committedPos}, {@code T currTerm voteFor}.
 */
public final class DLedgerStore {
    private DLedgerStore() {
    }

    /** Body of entry i: length (i * 7919) % 3000, 0 for every 9th; byte j = i * 31 + j * 17. */
    static byte[] body(int i) {
        int len = i % 9 == 0 ? 0 : (i * 7919) % 3000;
        byte[] b = new byte[len];
        for (int j = 0; j < len; j++) {
            b[j] = (byte) (i * 31 + j * 17);
        }
        return b;
    }

    static DLedgerConfig config(String[] args) {
        DLedgerConfig cfg = new DLedgerConfig();
        cfg.setStoreBaseDir(args[1]);
        cfg.setSelfId(args[2]);
        cfg.setGroup("compat");
        cfg.setPeers(args[2] + "-127.0.0.1:1");
        cfg.setMappedFileSizeForEntryData(Integer.parseInt(args[3]));
        cfg.setMappedFileSizeForEntryIndex(Integer.parseInt(args[4]));
        return cfg;
    }

    static void print(DLedgerEntry e) {
        System.out.println("E " + e.getIndex() + " " + e.getTerm() + " " + e.getPos() + " " + e.getSize() + " "
            + Hex.encode(e.getBody()));
    }

    /**
     * DLedger unmaps a file it deletes (recovery and truncation drop files) through
     * reflection into java.nio / jdk.internal.ref, which Java 9+ refuses without these
     * flags. The harness runs drivers without JVM flags, so re-run this JVM with them.
     * Returns the child's exit code, or -1 when no relaunch is needed.
     */
    static int relaunchWithOpens(String[] args) throws Exception {
        if (System.getProperty("java.specification.version").startsWith("1.")
            || System.getProperty("compat.dledger.opened") != null) {
            return -1;
        }
        List<String> cmd = new ArrayList<>();
        cmd.add(System.getProperty("java.home") + "/bin/java");
        cmd.addAll(ManagementFactory.getRuntimeMXBean().getInputArguments());
        cmd.addAll(Arrays.asList(
            "--add-opens", "java.base/java.nio=ALL-UNNAMED",
            "--add-opens", "java.base/jdk.internal.ref=ALL-UNNAMED",
            "-Dcompat.dledger.opened=true",
            "-cp", System.getProperty("java.class.path"),
            DLedgerStore.class.getName()));
        cmd.addAll(Arrays.asList(args));
        return new ProcessBuilder(cmd).inheritIO().start().waitFor();
    }

    public static void main(String[] args) throws Exception {
        int child = relaunchWithOpens(args);
        if (child >= 0) {
            System.exit(child);
        }
        if (args.length < 5) {
            System.err.println("usage: write|read <storeBaseDir> <selfId> <dataFileSize> <indexFileSize> [count]");
            System.exit(2);
        }
        DLedgerConfig cfg = config(args);
        MemberState state = new MemberState(cfg);
        DLedgerMmapFileStore store = new DLedgerMmapFileStore(cfg, state);
        store.setEnableCleanSpaceService(false);
        store.startup();
        if (args[0].equals("write")) {
            int count = Integer.parseInt(args[5]);
            long term = -1;
            for (int i = 0; i < count; i++) {
                long t = 1 + i / 50;
                if (t != term) {
                    term = t;
                    state.setCurrTermForTest(term);
                    state.changeToLeader(term);
                }
                DLedgerEntry e = new DLedgerEntry();
                e.setBody(body(i));
                DLedgerEntry out = store.appendAsLeader(e);
                if (out.getIndex() != i) {
                    throw new IllegalStateException("appended " + out.getIndex() + ", expected " + i);
                }
            }
            store.updateCommittedIndex(term, count - 5);
            state.setCurrVoteFor(cfg.getSelfId());
        }
        long begin = store.getLedgerBeginIndex();
        long end = store.getLedgerEndIndex();
        System.out.println("L " + begin + " " + end + " " + store.getLedgerEndTerm());
        if (end >= 0) {
            for (long i = begin; i <= end; i++) {
                print(store.get(i));
            }
        }
        System.out.println("C " + store.getCommittedIndex() + " " + store.getCommittedPos());
        System.out.println("T " + state.currTerm() + " " + (state.currVoteFor() == null ? "" : state.currVoteFor()));
        System.out.flush();
        if (args[0].equals("write")) {
            store.shutdown();
        }
        System.exit(0);
    }
}
