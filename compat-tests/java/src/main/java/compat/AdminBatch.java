package compat;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.apache.rocketmq.tools.command.MQAdminStartup;
import org.apache.rocketmq.tools.command.offset.GetConsumerStatusCommand;

/**
 * Runs several mqadmin subcommands in one JVM, each exactly as the mqadmin script would
 * (MQAdminStartup.main0), so a test can run a matrix of commands without paying a JVM
 * start per command.
 *
 * <pre>
 * AdminBatch &lt;subcommand&gt; &lt;args...&gt; [;; &lt;subcommand&gt; &lt;args...&gt;]...
 * </pre>
 *
 * Before each command it prints "@@@ BEGIN i subcommand" and after it "@@@ END i", with the
 * command's stdout and stderr (System.err is redirected to System.out) in between. Exit 0.
 * getConsumerStatus, whose class ships with the tools but is not registered in
 * MQAdminStartup (4.9.8 and 5.3.3), is registered here so it can be run the same way.
 */
public final class AdminBatch {

    private AdminBatch() {
    }

    public static void main(String[] args) {
        // What the mqadmin script passes on 5.x (tools logging config), harmless on 4.9.x.
        if (System.getProperty("rmq.logback.configurationFile") == null) {
            System.setProperty("rmq.logback.configurationFile", "rmq.tools.logback.xml");
        }
        System.setErr(System.out);
        MQAdminStartup.initCommand(new GetConsumerStatusCommand());
        List<List<String>> commands = new ArrayList<>();
        List<String> current = new ArrayList<>();
        for (String a : args) {
            if (";;".equals(a)) {
                commands.add(current);
                current = new ArrayList<>();
            } else {
                current.add(a);
            }
        }
        commands.add(current);
        int i = 0;
        for (List<String> c : commands) {
            if (c.isEmpty()) {
                continue;
            }
            System.out.println("@@@ BEGIN " + i + " " + c.get(0));
            System.out.flush();
            long t0 = System.currentTimeMillis();
            try {
                MQAdminStartup.main0(c.toArray(new String[0]), null);
            } catch (Throwable t) {
                t.printStackTrace(System.out);
            }
            // Some commands end without a newline.
            System.out.println();
            System.out.println("@@@ END " + i + " (" + (System.currentTimeMillis() - t0) + " ms) " + Arrays.toString(c.toArray()));
            System.out.flush();
            i++;
        }
        System.exit(0);
    }
}
