package compat;

import java.util.Map;
import java.util.TreeMap;

/** Tiny JSON writer used for the drivers' machine-readable output (no library, fixed key order). */
final class Json {
    private Json() {
    }

    static void str(StringBuilder sb, String s) {
        if (s == null) {
            sb.append("null");
            return;
        }
        sb.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"':
                    sb.append("\\\"");
                    break;
                case '\\':
                    sb.append("\\\\");
                    break;
                case '\n':
                    sb.append("\\n");
                    break;
                case '\r':
                    sb.append("\\r");
                    break;
                case '\t':
                    sb.append("\\t");
                    break;
                default:
                    if (c < 0x20 || (c >= 0x7f && c <= 0x9f) || c == 0x2028 || c == 0x2029) {
                        sb.append(String.format("\\u%04x", (int) c));
                    } else {
                        sb.append(c);
                    }
            }
        }
        sb.append('"');
    }

    /**
     * Keys sorted by Unicode code point (the same order as UTF-8 bytes, i.e. Rust's
     * String/BTreeMap order; plain String.compareTo would sort by UTF-16 units), or null.
     */
    static void sortedMap(StringBuilder sb, Map<String, String> m) {
        if (m == null) {
            sb.append("null");
            return;
        }
        sb.append('{');
        boolean first = true;
        for (Map.Entry<String, String> e : sortedCopy(m).entrySet()) {
            if (!first) {
                sb.append(',');
            }
            first = false;
            str(sb, e.getKey());
            sb.append(':');
            str(sb, e.getValue());
        }
        sb.append('}');
    }

    static TreeMap<String, String> sortedCopy(Map<String, String> m) {
        TreeMap<String, String> t = new TreeMap<>(Json::compareCodePoints);
        t.putAll(m);
        return t;
    }

    static int compareCodePoints(String a, String b) {
        int i = 0;
        int j = 0;
        while (i < a.length() && j < b.length()) {
            int ca = a.codePointAt(i);
            int cb = b.codePointAt(j);
            if (ca != cb) {
                return Integer.compare(ca, cb);
            }
            i += Character.charCount(ca);
            j += Character.charCount(cb);
        }
        return Integer.compare(a.length() - i, b.length() - j);
    }
}
