// The scripted driver session (../session.tsv) with MariaDB Connector/J behind a HikariCP pool
// of 4 connections: server-side prepared statements (binary protocol), pipelined auth (the
// driver's default), with or without compression; binary values bound with setBytes and, for
// "streampattern" parameters, setBinaryStream. Prints one JSON line per step: what was sent
// and the answer seen (rows hashed).
//
// java -cp JARS Session.java HOST PORT USER DB compress|plain [URL-OPTIONS] SPEC
// (URL-OPTIONS: more Connector/J options, `&`-separated, e.g. usePipelineAuth=false)

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import java.io.ByteArrayInputStream;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.SQLWarning;
import java.sql.Statement;
import java.sql.Timestamp;
import java.sql.Types;
import java.util.ArrayList;
import java.util.List;

public class Session {
    static byte[] pattern(int n) {
        // The same bytes in every client: byte i is (i * 31 + 7) mod 256 (holds 0x00 and 0xFF).
        byte[] b = new byte[n];
        for (int i = 0; i < n; i++) b[i] = (byte) ((i * 31 + 7) % 256);
        return b;
    }

    static byte[] hex(String s) {
        byte[] b = new byte[s.length() / 2];
        for (int i = 0; i < b.length; i++) b[i] = (byte) Integer.parseInt(s.substring(2 * i, 2 * i + 2), 16);
        return b;
    }

    static String toHex(byte[] b) {
        StringBuilder sb = new StringBuilder();
        for (byte x : b) sb.append(String.format("%02x", x & 0xff));
        return sb.toString();
    }

    static String json(String s) {
        if (s == null) return "null";
        StringBuilder sb = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"': sb.append("\\\""); break;
                case '\\': sb.append("\\\\"); break;
                case '\n': sb.append("\\n"); break;
                case '\r': sb.append("\\r"); break;
                case '\t': sb.append("\\t"); break;
                default:
                    if (c < 0x20) sb.append(String.format("\\u%04x", (int) c));
                    else sb.append(c);
            }
        }
        return sb.append('"').toString();
    }

    static void bind(PreparedStatement ps, int at, String p) throws SQLException {
        int colon = p.indexOf(':');
        String type = p.substring(0, colon), v = p.substring(colon + 1);
        switch (type) {
            case "int": ps.setInt(at, Integer.parseInt(v)); break;
            case "uint": ps.setObject(at, new BigInteger(v)); break;
            case "dec": ps.setBigDecimal(at, new BigDecimal(v)); break;
            case "dbl": ps.setDouble(at, Double.parseDouble(v)); break;
            case "dt": ps.setTimestamp(at, Timestamp.valueOf(v)); break;
            case "str": ps.setString(at, v); break;
            case "null": ps.setNull(at, Types.VARCHAR); break;
            case "hex": ps.setBytes(at, hex(v)); break;
            case "pattern": ps.setBytes(at, pattern(Integer.parseInt(v))); break;
            case "streampattern": {
                byte[] b = pattern(Integer.parseInt(v));
                ps.setBinaryStream(at, new ByteArrayInputStream(b), b.length);
                break;
            }
            default: throw new IllegalArgumentException("unknown parameter type " + type);
        }
    }

    static String answer(Statement st, boolean hasRows) throws Exception {
        int warnings = 0;
        for (SQLWarning w = st.getWarnings(); w != null; w = w.getNextWarning()) warnings++;
        if (!hasRows) {
            return "{\"error\":null,\"affected\":" + st.getUpdateCount() + ",\"warnings\":" + warnings + "}";
        }
        ResultSet rs = st.getResultSet();
        ResultSetMetaData md = rs.getMetaData();
        int n = md.getColumnCount();
        StringBuilder cols = new StringBuilder("[");
        for (int i = 1; i <= n; i++) {
            if (i > 1) cols.append(',');
            cols.append("{\"name\":").append(json(md.getColumnLabel(i)))
                .append(",\"type\":").append(json(md.getColumnTypeName(i))).append('}');
        }
        cols.append(']');
        MessageDigest h = MessageDigest.getInstance("SHA-256");
        long rows = 0;
        while (rs.next()) {
            rows++;
            StringBuilder row = new StringBuilder();
            for (int i = 1; i <= n; i++) {
                if (i > 1) row.append('\u001f');
                Object o = rs.getObject(i);
                if (o == null) row.append("NULL");
                else if (o instanceof byte[]) row.append('x').append(toHex((byte[]) o));
                else row.append(rs.getString(i));
            }
            row.append('\u001e');
            h.update(row.toString().getBytes(StandardCharsets.UTF_8));
        }
        rs.close();
        return "{\"error\":null,\"columns\":" + cols + ",\"rows\":" + rows + ",\"hash\":\"" + toHex(h.digest())
            + "\",\"warnings\":" + warnings + "}";
    }

    public static void main(String[] args) throws Exception {
        String host = args[0], port = args[1], user = args[2], db = args[3];
        boolean compress = args[4].equals("compress");
        String extra = args.length > 6 ? "&" + args[5] : "";
        String spec = args[args.length - 1];
        HikariConfig config = new HikariConfig();
        config.setJdbcUrl("jdbc:mariadb://" + host + ":" + port + "/" + db
            + "?useServerPrepStmts=true&useCompression=" + compress + extra);
        config.setUsername(user);
        config.setPassword("");
        config.setMaximumPoolSize(4);
        config.setMinimumIdle(4);
        HikariDataSource pool = new HikariDataSource(config);
        List<String> lines = new ArrayList<>();
        for (String l : Files.readAllLines(Path.of(spec), StandardCharsets.UTF_8)) {
            if (!l.isEmpty() && !l.startsWith("#")) lines.add(l);
        }
        Connection conn = pool.getConnection();
        for (String line : lines) {
            String[] f = line.split("\t", -1);
            String name = f[0], kind = f[1];
            boolean probe = List.of(f[2].split(",")).contains("probe");
            String sql = f[3].replace("{db}", db);
            StringBuilder out = new StringBuilder("{\"step\":").append(json(name))
                .append(",\"kind\":").append(json(kind)).append(",\"probe\":").append(probe);
            switch (kind) {
                case "begin": conn.setAutoCommit(false); break;
                case "commit": conn.commit(); conn.setAutoCommit(true); break;
                case "rollback": conn.rollback(); conn.setAutoCommit(true); break;
                case "swap": {
                    // A second pool connection carries the rest of the session.
                    Connection next = pool.getConnection();
                    conn.close();
                    conn = next;
                    break;
                }
                default: {
                    StringBuilder params = new StringBuilder("[");
                    for (int i = 4; i < f.length; i++) {
                        int colon = f[i].indexOf(':');
                        if (i > 4) params.append(',');
                        params.append("{\"type\":").append(json(f[i].substring(0, colon)))
                            .append(",\"value\":").append(json(f[i].substring(colon + 1))).append('}');
                    }
                    params.append(']');
                    boolean prep = kind.equals("prep");
                    out.append(",\"params\":").append(params).append(",\"protocol\":")
                        .append(prep ? "\"binary\"" : "\"text\"").append(",\"sent\":").append(json(sql));
                    String answer;
                    Statement st = null;
                    try {
                        if (prep) {
                            PreparedStatement ps = conn.prepareStatement(sql);
                            for (int i = 4; i < f.length; i++) bind(ps, i - 3, f[i]);
                            st = ps;
                            answer = answer(ps, ps.execute());
                        } else {
                            st = conn.createStatement();
                            answer = answer(st, st.execute(sql));
                        }
                    } catch (SQLException e) {
                        answer = "{\"error\":" + e.getErrorCode() + ",\"sqlstate\":" + json(e.getSQLState()) + "}";
                    } finally {
                        if (st != null) st.close();
                    }
                    out.append(",\"answer\":").append(answer);
                }
            }
            System.out.println(out.append('}'));
        }
        conn.close();
        pool.close();
    }
}
