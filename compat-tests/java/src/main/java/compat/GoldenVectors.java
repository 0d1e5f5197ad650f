package compat;

import io.netty.buffer.ByteBuf;
import io.netty.channel.embedded.EmbeddedChannel;
import java.io.BufferedReader;
import java.io.File;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.lang.reflect.Field;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;
import org.apache.rocketmq.common.MQVersion;
import org.apache.rocketmq.remoting.CommandCustomHeader;
import org.apache.rocketmq.remoting.exception.RemotingCommandException;
import org.apache.rocketmq.remoting.netty.NettyEncoder;
import org.apache.rocketmq.remoting.protocol.RemotingCommand;
import org.apache.rocketmq.remoting.protocol.SerializeType;

/**
 * Golden remoting frames, produced and checked by the official RocketMQ classes of the
 * version on the classpath.
 *
 * <pre>
 *   write  &lt;outdir&gt;   encode the fixed cases with the real NettyEncoder (JSON and ROCKETMQ
 *                       header types) into &lt;name&gt;.&lt;json|rocketmq&gt;.hex, and describe what
 *                       RemotingCommand.decode makes of each frame in
 *                       &lt;name&gt;.&lt;type&gt;.expect.json
 *   decode &lt;infile&gt;   read hex frames (one per line, whole frame incl. the length prefix),
 *                       decode each with RemotingCommand.decode, print one JSON line per
 *                       frame; exit 1 if any frame fails
 * </pre>
 *
 * The JSON description is
 * {"code":..,"language":"JAVA","version":..,"opaque":..,"flag":..,"remark":"..."|null,
 *  "extFields":{sorted keys}|null,"body":"hex"|null}.
 */
public final class GoldenVectors {

    /** Header classes moved from rocketmq-common (4.x) to rocketmq-remoting (5.x). */
    private static final String[] HEADER_PACKAGES = {
        "org.apache.rocketmq.remoting.protocol.header.", // 5.x
        "org.apache.rocketmq.common.protocol.header.",   // 4.x
    };

    /** Message property separators (MessageConst.NAME_VALUE_SEPARATOR / PROPERTY_SEPARATOR). */
    private static final char NV = '\u0001';
    private static final char PS = '\u0002';

    private GoldenVectors() {
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 2 || !("write".equals(args[0]) || "decode".equals(args[0]))) {
            System.err.println("usage: GoldenVectors write <outdir> | decode <infile|->");
            System.exit(2);
        }
        // 5.x: log to stderr only (otherwise rmq.tools.logback.xml writes ~/logs/rocketmqlogs).
        if (System.getProperty("rmq.logback.configurationFile") == null) {
            System.setProperty("rmq.logback.configurationFile", "rmq.compat.logback.xml");
        }
        // Netty logs through java.util.logging here (INFO+ only), so no SLF4J provider lookup.
        io.netty.util.internal.logging.InternalLoggerFactory.setDefaultFactory(
            io.netty.util.internal.logging.JdkLoggerFactory.INSTANCE);
        // What MQClientAPIImpl / BrokerStartup do: commands carry this version's ordinal.
        System.setProperty(RemotingCommand.REMOTING_VERSION_KEY, Integer.toString(MQVersion.CURRENT_VERSION));
        PrintStream out = new PrintStream(System.out, true, "UTF-8");
        int rc = "write".equals(args[0]) ? write(new File(args[1]), out) : decodeFile(args[1], out);
        out.flush();
        System.exit(rc);
    }

    // ------------------------------------------------------------------ cases

    static Map<String, Supplier<RemotingCommand>> cases() {
        Map<String, Supplier<RemotingCommand>> m = new LinkedHashMap<>();

        // Request without custom header and without body.
        m.put("get_broker_cluster_info", () -> {
            RemotingCommand c = RemotingCommand.createRequestCommand(106, null); // GET_BROKER_CLUSTER_INFO
            c.setOpaque(1001);
            return c;
        });

        // Request with a custom header (reflection path: makeCustomHeaderToNet).
        m.put("get_route_info_by_topic", () -> {
            CommandCustomHeader h = newHeader("namesrv.GetRouteInfoRequestHeader");
            set(h, "topic", "TopicTest");
            RemotingCommand c = RemotingCommand.createRequestCommand(105, h); // GET_ROUTEINFO_BY_TOPIC
            c.setOpaque(1002);
            return c;
        });

        // Request with a body (what a 4.9 client's heartbeat looks like: no header).
        m.put("heart_beat", () -> {
            RemotingCommand c = RemotingCommand.createRequestCommand(34, null); // HEART_BEAT
            c.setOpaque(1003);
            c.setBody(("{\"clientID\":\"127.0.0.1@4242#1700000000000\",\"consumerDataSet\":[],"
                + "\"producerDataSet\":[{\"groupName\":\"CLIENT_INNER_PRODUCER\"},{\"groupName\":\"PG\"}]}")
                .getBytes(StandardCharsets.UTF_8));
            return c;
        });

        // Request with a custom header that has no fields (5.x heartbeat style):
        // JSON "extFields":{} vs binary ext_len 0.
        m.put("empty_custom_header", () -> {
            RemotingCommand c = RemotingCommand.createRequestCommand(34, new EmptyHeader());
            c.setOpaque(1004);
            return c;
        });

        // Ext fields with non-ASCII keys/values and property separators.
        m.put("ext_fields_unicode", () -> {
            RemotingCommand c = RemotingCommand.createRequestCommand(100, null); // PUT_KV_CONFIG
            c.setOpaque(1005);
            c.addExtField("namespace", "ORDER_TOPIC_CONFIG");
            c.addExtField("key", "主题-Topic-🚀");
            c.addExtField("value", "a" + NV + "b" + PS + "c" + NV + "消息" + PS);
            c.addExtField("键😀", "值 \"quoted\" \\ back/slash\ttab\nnewline");
            // control characters and a BMP private-use char (sorts after the emoji by UTF-16
            // units but before it by code point)
            c.addExtField("ctl", "\u0000\u001b\u001f\u007f\u0085\u2028\ue000");
            c.addExtField("\ue000", "private-use key");
            return c;
        });

        // Responses: empty remark, null remark, error remark.
        m.put("response_empty_remark", () -> {
            RemotingCommand c = RemotingCommand.createResponseCommand(0, "");
            c.setOpaque(1006);
            return c;
        });
        m.put("response_null_remark", () -> {
            RemotingCommand c = RemotingCommand.createResponseCommand(0, null);
            c.setOpaque(1007);
            return c;
        });
        m.put("response_error_remark", () -> {
            RemotingCommand c = RemotingCommand.createResponseCommand(17, // TOPIC_NOT_EXIST
                "No topic route info in name server for the topic: TopicTest\n"
                    + "See http://rocketmq.apache.org/docs/faq/ for further details.");
            c.setOpaque(1008);
            return c;
        });

        // SEND_MESSAGE_V2 with every field of SendMessageRequestHeaderV2 (FastCodesHeader).
        m.put("send_message_v2", () -> {
            CommandCustomHeader h = newHeader("SendMessageRequestHeaderV2");
            set(h, "a", "ProducerGroupA");
            set(h, "b", "TopicTest");
            set(h, "c", "TBW102");
            set(h, "d", 4);
            set(h, "e", 3);
            set(h, "f", 0);
            set(h, "g", 1700000000123L);
            set(h, "h", 0);
            set(h, "i", "KEYS" + NV + "k-1" + PS + "TAGS" + NV + "TagA" + PS
                + "UNIQ_KEY" + NV + "7F00000110A418B4AAC2720000000000" + PS + "WAIT" + NV + "true" + PS);
            set(h, "j", 0);
            set(h, "k", Boolean.FALSE);
            set(h, "l", 16);
            set(h, "m", Boolean.FALSE);
            set(h, "n", "broker-a");
            RemotingCommand c = RemotingCommand.createRequestCommand(310, h); // SEND_MESSAGE_V2
            c.setOpaque(1009);
            c.setBody("Hello RocketMQ 你好".getBytes(StandardCharsets.UTF_8));
            return c;
        });

        // Broker's answer to a send: SendMessageResponseHeader (FastCodesHeader) + ext fields.
        m.put("send_message_response", () -> {
            Class<? extends CommandCustomHeader> cls = headerClass("SendMessageResponseHeader");
            RemotingCommand c = RemotingCommand.createResponseCommand(cls);
            CommandCustomHeader h = c.readCustomHeader();
            set(h, "msgId", "7F00000100004E9F0000000000000ABC");
            set(h, "queueId", 3);
            set(h, "queueOffset", 42L);
            c.addExtField("MSG_REGION", "DefaultRegion");
            c.addExtField("TRACE_ON", "true");
            c.setCode(0);
            c.setRemark(null);
            c.setOpaque(1009);
            return c;
        });

        // One-way request (flag bit 1), ext fields only.
        m.put("oneway_update_consumer_offset", () -> {
            RemotingCommand c = RemotingCommand.createRequestCommand(15, null); // UPDATE_CONSUMER_OFFSET
            c.addExtField("consumerGroup", "GroupA");
            c.addExtField("topic", "TopicTest");
            c.addExtField("queueId", "1");
            c.addExtField("commitOffset", "100");
            c.markOnewayRPC();
            c.setOpaque(1010);
            return c;
        });
        return m;
    }

    /** A custom header without fields. */
    public static final class EmptyHeader implements CommandCustomHeader {
        @Override
        public void checkFields() throws RemotingCommandException {
        }
    }

    // ------------------------------------------------------------------ write

    static int write(File dir, PrintStream out) throws IOException, RemotingCommandException {
        if (!dir.isDirectory() && !dir.mkdirs()) {
            throw new IOException("cannot create " + dir);
        }
        int files = 0;
        int problems = 0;
        for (Map.Entry<String, Supplier<RemotingCommand>> e : cases().entrySet()) {
            for (SerializeType type : new SerializeType[] {SerializeType.JSON, SerializeType.ROCKETMQ}) {
                RemotingCommand cmd = e.getValue().get();
                cmd.setSerializeTypeCurrentRPC(type);
                byte[] frame = encodeWithNetty(cmd);
                String base = e.getKey() + "." + type.name().toLowerCase();
                Files.write(new File(dir, base + ".hex").toPath(),
                    (Hex.encode(frame) + "\n").getBytes(StandardCharsets.US_ASCII));
                RemotingCommand back = decodeFrame(frame);
                Files.write(new File(dir, base + ".expect.json").toPath(),
                    (describe(back) + "\n").getBytes(StandardCharsets.UTF_8));
                files += 2;
                if (back.getSerializeTypeCurrentRPC() != type) {
                    System.err.println(base + ": decoded serialize type " + back.getSerializeTypeCurrentRPC());
                    problems++;
                }
            }
        }
        out.println("wrote " + files + " files to " + dir + " (RocketMQ remoting version "
            + MQVersion.CURRENT_VERSION + " = " + MQVersion.getVersionDesc(MQVersion.CURRENT_VERSION) + ")");
        return problems == 0 ? 0 : 1;
    }

    /** The bytes the broker/client pipeline puts on the wire: the real NettyEncoder. */
    static byte[] encodeWithNetty(RemotingCommand cmd) {
        EmbeddedChannel ch = new EmbeddedChannel(new NettyEncoder());
        try {
            ch.writeOutbound(cmd);
            ByteBuf buf = ch.readOutbound();
            if (buf == null) {
                throw new IllegalStateException("NettyEncoder produced nothing (encode exception?) for " + cmd);
            }
            try {
                byte[] b = new byte[buf.readableBytes()];
                buf.readBytes(b);
                if (ch.readOutbound() != null) {
                    throw new IllegalStateException("NettyEncoder produced more than one buffer");
                }
                return b;
            } finally {
                buf.release();
            }
        } finally {
            ch.finishAndReleaseAll();
        }
    }

    // ------------------------------------------------------------------ decode

    static int decodeFile(String path, PrintStream out) throws IOException {
        List<String> lines = new ArrayList<>();
        try (BufferedReader r = "-".equals(path)
            ? new BufferedReader(new InputStreamReader(System.in, StandardCharsets.US_ASCII))
            : Files.newBufferedReader(new File(path).toPath(), StandardCharsets.US_ASCII)) {
            String line;
            while ((line = r.readLine()) != null) {
                lines.add(line);
            }
        }
        int frames = 0;
        int failed = 0;
        int lineNo = 0;
        for (String line : lines) {
            lineNo++;
            String t = line.trim();
            if (t.isEmpty() || t.startsWith("#")) {
                continue;
            }
            frames++;
            try {
                out.println(describe(decodeFrame(Hex.decode(t))));
            } catch (Throwable ex) {
                failed++;
                String msg = ex.getClass().getName() + ": " + ex.getMessage();
                System.err.println("line " + lineNo + ": decode failed: " + msg);
                StringBuilder sb = new StringBuilder("{\"error\":");
                Json.str(sb, msg);
                out.println(sb.append('}'));
            }
        }
        if (frames == 0) {
            System.err.println("no frames in " + path);
            return 1;
        }
        return failed == 0 ? 0 : 1;
    }

    /**
     * Whole frame (with the 4-byte length prefix) to command, the way NettyDecoder does it:
     * the length field frames the bytes and is stripped, then RemotingCommand.decode.
     */
    static RemotingCommand decodeFrame(byte[] frame) throws RemotingCommandException {
        if (frame.length < 8) {
            throw new IllegalArgumentException("frame shorter than 8 bytes: " + frame.length);
        }
        int total = ByteBuffer.wrap(frame, 0, 4).getInt();
        if (total != frame.length - 4) {
            throw new IllegalArgumentException("length prefix " + total + " but " + (frame.length - 4)
                + " bytes follow it");
        }
        RemotingCommand cmd = RemotingCommand.decode(ByteBuffer.wrap(frame, 4, frame.length - 4).slice());
        if (cmd == null) {
            throw new IllegalArgumentException("RemotingCommand.decode returned null");
        }
        return cmd;
    }

    static String describe(RemotingCommand c) {
        StringBuilder sb = new StringBuilder(256);
        sb.append("{\"code\":").append(c.getCode());
        sb.append(",\"language\":");
        Json.str(sb, c.getLanguage() == null ? null : c.getLanguage().name());
        sb.append(",\"version\":").append(c.getVersion());
        sb.append(",\"opaque\":").append(c.getOpaque());
        sb.append(",\"flag\":").append(c.getFlag());
        sb.append(",\"remark\":");
        Json.str(sb, c.getRemark());
        sb.append(",\"extFields\":");
        Json.sortedMap(sb, c.getExtFields());
        sb.append(",\"body\":");
        if (c.getBody() == null) {
            sb.append("null");
        } else {
            sb.append('"').append(Hex.encode(c.getBody())).append('"');
        }
        return sb.append('}').toString();
    }

    // ------------------------------------------------------------------ reflection helpers

    static Class<? extends CommandCustomHeader> headerClass(String simpleName) {
        for (String p : HEADER_PACKAGES) {
            try {
                return Class.forName(p + simpleName).asSubclass(CommandCustomHeader.class);
            } catch (ClassNotFoundException ignored) {
                // try the next package
            }
        }
        throw new IllegalStateException("header class not found: " + simpleName);
    }

    static CommandCustomHeader newHeader(String simpleName) {
        try {
            return headerClass(simpleName).getDeclaredConstructor().newInstance();
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Sets a declared field (own class or superclass); Field.set unboxes for primitive fields. */
    static void set(Object target, String name, Object value) {
        for (Class<?> k = target.getClass(); k != null; k = k.getSuperclass()) {
            try {
                Field f = k.getDeclaredField(name);
                f.setAccessible(true);
                f.set(target, value);
                return;
            } catch (NoSuchFieldException ignored) {
                // look in the superclass
            } catch (IllegalAccessException e) {
                throw new IllegalStateException(e);
            }
        }
        throw new IllegalStateException("no field " + name + " in " + target.getClass());
    }
}
