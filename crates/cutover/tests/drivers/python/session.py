"""The scripted driver session (../session.tsv) with a Python driver, printing one JSON line
per step: what was sent and the answer seen (rows hashed).

    python session.py HOST PORT USER DB pymysql|connector SPEC

pymysql: PyMySQL, text protocol, parameters escaped into the statement by the client.
connector: mysql-connector-python (pure Python), a prepared cursor (binary protocol).
Both without TLS: a proxy without a certificate relays TLS unchanged and cannot record it.
"""

import datetime
import decimal
import hashlib
import json
import sys


def pattern(n):
    # The same bytes in every client: byte i is (i * 31 + 7) mod 256 (holds 0x00 and 0xFF).
    return bytes((i * 31 + 7) % 256 for i in range(n))


def value(p):
    kind, _, v = p.partition(":")
    if kind == "int" or kind == "uint":
        return int(v)
    if kind == "dec":
        return decimal.Decimal(v)
    if kind == "dbl":
        return float(v)
    if kind == "dt":
        return datetime.datetime.strptime(v, "%Y-%m-%d %H:%M:%S.%f")
    if kind == "str":
        return v
    if kind == "null":
        return None
    if kind == "hex":
        return bytes.fromhex(v)
    if kind in ("pattern", "streampattern"):
        return pattern(int(v))
    raise ValueError("unknown parameter type " + kind)


def text(v):
    if v is None:
        return "NULL"
    if isinstance(v, (bytes, bytearray)):
        return "x" + bytes(v).hex()
    return str(v)


def answer_of(cur, warnings):
    if cur.description is not None:
        rows = cur.fetchall()
        h = hashlib.sha256()
        for row in rows:
            h.update("\x1f".join(text(v) for v in row).encode("utf-8", "surrogateescape"))
            h.update(b"\x1e")
        return {
            "error": None,
            "columns": [{"name": d[0], "type": d[1]} for d in cur.description],
            "rows": len(rows),
            "hash": h.hexdigest(),
            "warnings": warnings(),
        }
    return {
        "error": None,
        "affected": cur.rowcount,
        "insert_id": cur.lastrowid or 0,
        "warnings": warnings(),
    }


def put_sent(out, sent):
    if isinstance(sent, (bytes, bytearray)):
        try:
            out["sent"] = bytes(sent).decode("utf-8")
        except UnicodeDecodeError:
            out["sent_hex"] = bytes(sent).hex()
    else:
        out["sent"] = sent


def main():
    host, port, user, db, driver, spec = sys.argv[1:7]
    if driver == "pymysql":
        import pymysql

        conn = pymysql.connect(host=host, port=int(port), user=user, database=db,
                               charset="utf8mb4", autocommit=True, ssl_disabled=True)
        errors = (pymysql.MySQLError,)

        def err_code(e):
            return {"error": e.args[0]}

        def warnings():
            return conn._result.warning_count if conn._result else None
    else:
        import mysql.connector

        conn = mysql.connector.connect(host=host, port=int(port), user=user, database=db,
                                       charset="utf8mb4", use_pure=True, autocommit=True,
                                       ssl_disabled=True)
        errors = (mysql.connector.Error,)

        def err_code(e):
            return {"error": e.errno, "sqlstate": e.sqlstate}

        def warnings():
            return conn.warning_count if hasattr(conn, "warning_count") else None

    with open(spec, encoding="utf-8") as f:
        lines = [l.rstrip("\n") for l in f if l.strip() and not l.startswith("#")]
    for line in lines:
        name, kind, flags, sql_template, *params = line.split("\t")
        sql = sql_template.replace("{db}", db)
        out = {"step": name, "kind": kind, "probe": "probe" in flags.split(",")}
        if kind == "begin":
            conn.start_transaction() if driver == "connector" else conn.begin()
        elif kind == "commit":
            conn.commit()
        elif kind == "rollback":
            conn.rollback()
        elif kind == "swap":
            pass  # one connection: nothing to swap
        else:
            values = [value(p) for p in params]
            out["params"] = [{"type": p.partition(":")[0], "value": p.partition(":")[2]} for p in params]
            try:
                if driver == "pymysql":
                    cur = conn.cursor()
                    out["protocol"] = "text"
                    if kind == "prep":
                        sent = cur.mogrify(sql.replace("?", "%s"), values)
                    else:
                        sent = sql
                    put_sent(out, sent)
                    cur.execute(sent)
                elif kind == "prep":
                    cur = conn.cursor(prepared=True)
                    out["protocol"] = "binary"
                    out["sent"] = sql
                    cur.execute(sql, values)
                else:
                    cur = conn.cursor()
                    out["protocol"] = "text"
                    out["sent"] = sql
                    cur.execute(sql)
                out["answer"] = answer_of(cur, warnings)
                cur.close()
            except errors as e:
                out["answer"] = err_code(e)
        print(json.dumps(out, ensure_ascii=False), flush=True)
    conn.close()


main()
