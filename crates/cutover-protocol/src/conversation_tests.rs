//! Conversations built from the packet shapes real clients and servers send (MariaDB 10.11,
//! Connector/J, libmariadb), checked record by record: every answer goes to its own command.

use cutover_workload::{Command, ParamValue, Record};
use mysql_common::constants::{CapabilityFlags as C, StatusFlags};
use mysql_common::packets::{HandshakePacket, HandshakeResponse};
use mysql_common::proto::MySerialize;
use proptest::prelude::*;

use crate::framing::encode_packet;
use crate::Recorder;

fn caps(compress: bool) -> C {
    let mut c = C::CLIENT_PROTOCOL_41
        | C::CLIENT_SECURE_CONNECTION
        | C::CLIENT_PLUGIN_AUTH
        | C::CLIENT_DEPRECATE_EOF
        | C::CLIENT_MULTI_STATEMENTS
        | C::CLIENT_MULTI_RESULTS
        | C::CLIENT_PS_MULTI_RESULTS
        | C::CLIENT_TRANSACTIONS
        | C::CLIENT_LONG_PASSWORD
        | C::CLIENT_LOCAL_FILES;
    if compress {
        c |= C::CLIENT_COMPRESS;
    }
    c
}

fn greeting() -> Vec<u8> {
    let h = HandshakePacket::new(
        10,
        &b"10.11.6-MariaDB"[..],
        42,
        *b"abcdefgh",
        Some(&b"ijklmnopqrst"[..]),
        caps(true) | C::CLIENT_SSL,
        45,
        StatusFlags::SERVER_STATUS_AUTOCOMMIT,
        Some(&b"mysql_native_password"[..]),
    );
    let mut b = Vec::new();
    h.serialize(&mut b);
    encode_packet(0, &b)
}

fn login(compress: bool) -> Vec<u8> {
    login_with(caps(compress))
}

fn login_with(caps: C) -> Vec<u8> {
    let r = HandshakeResponse::new(
        Some(&[1u8; 20][..]),
        (10, 11, 6),
        Some(&b"app"[..]),
        Some(&b"shop"[..]),
        None,
        caps,
        None,
        1 << 24,
    );
    let mut b = Vec::new();
    r.serialize(&mut b);
    encode_packet(1, &b)
}

/// OK: affected rows, last insert id 0, autocommit, no warnings.
fn ok(affected: u8, status: u16) -> Vec<u8> {
    let s = status.to_le_bytes();
    vec![0x00, affected, 0, s[0], s[1], 0, 0]
}

/// The end of rows with `CLIENT_DEPRECATE_EOF`: an OK with the EOF header.
fn end(status: u16) -> Vec<u8> {
    let s = status.to_le_bytes();
    vec![0xFE, 0, 0, s[0], s[1], 0, 0]
}

fn column(name: &str, type_code: u8) -> Vec<u8> {
    let mut p = Vec::new();
    for s in ["def", "shop", "t", "t", name, name] {
        p.push(s.len() as u8);
        p.extend_from_slice(s.as_bytes());
    }
    p.extend_from_slice(&[0x0c, 45, 0, 11, 0, 0, 0, type_code, 0, 0, 0, 0, 0]);
    p
}

fn err(code: u16) -> Vec<u8> {
    let mut p = vec![0xFF];
    p.extend_from_slice(&code.to_le_bytes());
    p.extend_from_slice(b"#42S02no such table");
    p
}

fn command(code: u8, body: &[u8]) -> Vec<u8> {
    let mut p = vec![code];
    p.extend_from_slice(body);
    p
}

/// A text result set of `rows` one-column rows, its packets numbered from `seq`.
fn result_set(seq: u8, rows: u8, status: u16) -> Vec<u8> {
    let mut w = encode_packet(seq, &[1]);
    w.extend(encode_packet(seq + 1, &column("n", 3)));
    for i in 0..rows {
        w.extend(encode_packet(seq + 2 + i, &[1, b'0' + i % 10]));
    }
    w.extend(encode_packet(seq + 2 + rows, &end(status)));
    w
}

/// Bytes wrapped in one compressed-protocol frame (stored, not deflated: the protocol allows
/// both and the decoder reads both).
fn frame(seq: u8, bytes: &[u8]) -> Vec<u8> {
    let n = bytes.len();
    let mut f = vec![n as u8, (n >> 8) as u8, (n >> 16) as u8, seq, 0, 0, 0];
    f.extend_from_slice(bytes);
    f
}

const AUTOCOMMIT: u16 = 0x0002;
const MORE_RESULTS: u16 = 0x0008;

fn records(r: &mut Recorder) -> Vec<Record> {
    r.close(1_000);
    r.take()
}

fn sql_of(r: &Record) -> String {
    match &r.command {
        Command::Query { sql } | Command::Prepare { sql, .. } => sql.clone(),
        other => other.name().to_string(),
    }
}

/// Connector/J's set-up: the handshake response and its first queries in one write, before
/// the server's OK; then the answers, in order.
#[test]
fn commands_sent_before_the_login_ok_get_their_own_answers() {
    for compress in [false, true] {
        let mut r = Recorder::new(1);
        r.server(&greeting(), 1);
        let mut client = login(compress);
        let queries = [
            command(3, b"set autocommit=1"),
            command(3, b"SELECT @@max_allowed_packet"),
            command(3, b"SELECT nope FROM missing"),
        ];
        for q in &queries {
            let p = encode_packet(0, q);
            client.extend(if compress { frame(0, &p) } else { p });
        }
        r.client(&client, 2);
        let mut server = encode_packet(2, &ok(0, AUTOCOMMIT));
        let answers = [
            encode_packet(1, &ok(0, AUTOCOMMIT)),
            result_set(1, 1, AUTOCOMMIT),
            encode_packet(1, &err(1146)),
        ];
        for a in &answers {
            server.extend(if compress { frame(1, a) } else { a.clone() });
        }
        r.server(&server, 3);
        let got = records(&mut r);
        assert!(!r.undecodable(), "{:?}", r.undecodable_reason());
        let summary: Vec<(String, Option<u64>, Option<u16>)> = got
            .iter()
            .map(|x| {
                let resp = x.response.as_ref();
                (
                    sql_of(x),
                    resp.and_then(|r| r.rows),
                    resp.and_then(|r| r.error.as_ref()).map(|e| e.code),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("connect".to_string(), None, None),
                ("set autocommit=1".to_string(), None, None),
                ("SELECT @@max_allowed_packet".to_string(), Some(1), None),
                ("SELECT nope FROM missing".to_string(), None, Some(1146)),
                ("quit".to_string(), None, None),
            ],
            "compress: {compress}"
        );
    }
}

/// An auth switch (ed25519, caching_sha2): the client's reply continues the sequence and is
/// not a command; with compression pending it is read plain, and what follows compressed.
#[test]
fn an_auth_switch_reply_is_not_a_command() {
    for compress in [false, true] {
        let mut r = Recorder::new(1);
        r.server(&greeting(), 1);
        r.client(&login(compress), 2);
        let mut switch = vec![0xFE];
        switch.extend_from_slice(b"client_ed25519\0");
        switch.extend_from_slice(&[7u8; 32]);
        r.server(&encode_packet(2, &switch), 3);
        // The reply (64 bytes of signature), then a pipelined query.
        let mut client = encode_packet(3, &[9u8; 64]);
        let q = encode_packet(0, &command(3, b"SELECT 1"));
        client.extend(if compress { frame(0, &q) } else { q });
        r.client(&client, 4);
        let mut server = encode_packet(4, &ok(0, AUTOCOMMIT));
        let a = result_set(1, 1, AUTOCOMMIT);
        server.extend(if compress { frame(1, &a) } else { a });
        r.server(&server, 5);
        let got = records(&mut r);
        assert!(!r.undecodable(), "{:?}", r.undecodable_reason());
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(sql_of(&got[1]), "SELECT 1");
        assert_eq!(got[1].response.as_ref().and_then(|x| x.rows), Some(1));
    }
}

/// Logged in, as the tests below start.
fn logged_in() -> Recorder {
    let mut r = Recorder::new(1);
    r.server(&greeting(), 1);
    r.client(&login(false), 2);
    r.server(&encode_packet(2, &ok(0, AUTOCOMMIT)), 3);
    r
}

/// A prepare answer: statement `id`, `params` parameters, no result columns.
fn prepared(id: u32, params: u16) -> Vec<u8> {
    let mut ok = vec![0x00];
    ok.extend_from_slice(&id.to_le_bytes());
    ok.extend_from_slice(&[0, 0]);
    ok.extend_from_slice(&params.to_le_bytes());
    ok.extend_from_slice(&[0, 0, 0]);
    let mut w = encode_packet(1, &ok);
    for i in 0..params {
        w.extend(encode_packet(2 + i as u8, &column("?", 253)));
    }
    w
}

fn execute(
    id: u32,
    flags: u8,
    null_bitmap: u8,
    types: Option<&[(u8, u8)]>,
    values: &[u8],
) -> Vec<u8> {
    let mut p = vec![0x17];
    p.extend_from_slice(&id.to_le_bytes());
    p.push(flags);
    p.extend_from_slice(&1u32.to_le_bytes());
    p.push(null_bitmap);
    match types {
        Some(t) => {
            p.push(1);
            for (code, flag) in t {
                p.extend_from_slice(&[*code, *flag]);
            }
        }
        None => p.push(0),
    }
    p.extend_from_slice(values);
    encode_packet(0, &p)
}

fn params_of(r: &Record) -> Vec<ParamValue> {
    match &r.command {
        Command::Execute { params, .. } => params.iter().map(|p| p.value.clone()).collect(),
        other => panic!("not an execute: {other:?}"),
    }
}

/// `COM_STMT_SEND_LONG_DATA` (JDBC `setBytes`/`setBinaryStream`): the chunks are that
/// parameter's value at the next execute, whose body leaves it out; reset clears them.
#[test]
fn long_data_is_the_parameter_value_at_the_next_execute() {
    let mut r = logged_in();
    r.client(
        &encode_packet(0, &command(0x16, b"INSERT INTO t VALUES (?, ?)")),
        10,
    );
    r.server(&prepared(5, 2), 11);
    let long = |param: u16, data: &[u8]| {
        let mut p = vec![0x18];
        p.extend_from_slice(&5u32.to_le_bytes());
        p.extend_from_slice(&param.to_le_bytes());
        p.extend_from_slice(data);
        encode_packet(0, &p)
    };
    let blob: Vec<u8> = (0..=255u8).collect();
    r.client(&long(1, &blob[..100]), 12);
    r.client(&long(1, &blob[100..]), 13);
    // LONG 7; the BLOB's value is not in the body.
    r.client(
        &execute(5, 0, 0, Some(&[(3, 0), (252, 0)]), &7i32.to_le_bytes()),
        14,
    );
    r.server(&encode_packet(1, &ok(1, AUTOCOMMIT)), 15);
    // The next execute carries both values itself (types not resent).
    let mut values = 8i32.to_le_bytes().to_vec();
    values.extend_from_slice(&[2, 0xAB, 0xCD]);
    r.client(&execute(5, 0, 0, None, &values), 16);
    r.server(&encode_packet(1, &ok(1, AUTOCOMMIT)), 17);
    // Long data, then COM_STMT_RESET: dropped; the execute after it sends NULL.
    r.client(&long(1, b"dropped"), 18);
    r.client(&encode_packet(0, &command(0x1A, &5u32.to_le_bytes())), 19);
    r.server(&encode_packet(1, &ok(0, AUTOCOMMIT)), 20);
    r.client(&execute(5, 0, 0b10, None, &9i32.to_le_bytes()), 21);
    r.server(&encode_packet(1, &ok(1, AUTOCOMMIT)), 22);
    let got = records(&mut r);
    assert!(!r.undecodable(), "{:?}", r.undecodable_reason());
    let execs: Vec<&Record> = got
        .iter()
        .filter(|x| x.command.name() == "execute")
        .collect();
    assert_eq!(
        params_of(execs[0]),
        [ParamValue::Int(7), ParamValue::Bytes(blob.clone())]
    );
    assert_eq!(
        params_of(execs[1]),
        [ParamValue::Int(8), ParamValue::Bytes(vec![0xAB, 0xCD])]
    );
    assert_eq!(params_of(execs[2]), [ParamValue::Int(9), ParamValue::Null]);
    assert!(execs
        .iter()
        .all(|e| e.response.as_ref().and_then(|x| x.affected_rows) == Some(1)));
}

/// Connector/J 3 pipelines a prepare and its execute, naming the statement `0xFFFFFFFF`
/// ("the one prepared last"): the execute is decoded once the prepare's answer gives the id
/// and the parameter count.
#[test]
fn an_execute_of_the_statement_prepared_last_waits_for_its_id() {
    let mut r = logged_in();
    let mut client = encode_packet(0, &command(0x16, b"SELECT ?"));
    client.extend(execute(
        u32::MAX,
        0,
        0,
        Some(&[(8, 0x80)]),
        &u64::MAX.to_le_bytes(),
    ));
    client.extend(encode_packet(0, &command(3, b"SELECT 2")));
    r.client(&client, 10);
    let mut server = prepared(9, 1);
    server.extend(result_set(1, 1, AUTOCOMMIT));
    server.extend(result_set(1, 2, AUTOCOMMIT));
    r.server(&server, 11);
    let got = records(&mut r);
    assert!(!r.undecodable(), "{:?}", r.undecodable_reason());
    let names: Vec<String> = got.iter().map(sql_of).collect();
    assert_eq!(
        names,
        ["connect", "SELECT ?", "execute", "SELECT 2", "quit"]
    );
    assert!(matches!(got[1].command, Command::Prepare { stmt: 9, .. }));
    assert!(matches!(got[2].command, Command::Execute { stmt: 9, .. }));
    assert_eq!(params_of(&got[2]), [ParamValue::UInt(u64::MAX)]);
    assert_eq!(got[2].response.as_ref().and_then(|x| x.rows), Some(1));
    assert_eq!(got[3].response.as_ref().and_then(|x| x.rows), Some(2));
}

/// A cursor: the execute's answer ends after the column definitions (status
/// `SERVER_STATUS_CURSOR_EXISTS`), fetches bring the rows; the next command pairs.
#[test]
fn cursor_fetches_are_answered_with_rows() {
    let mut r = logged_in();
    r.client(&encode_packet(0, &command(0x16, b"SELECT n FROM t")), 10);
    let mut ok = vec![0x00];
    ok.extend_from_slice(&3u32.to_le_bytes());
    ok.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0]);
    let mut server = encode_packet(1, &ok);
    server.extend(encode_packet(2, &column("n", 3)));
    r.server(&server, 11);
    // CURSOR_TYPE_READ_ONLY
    r.client(&execute(3, 1, 0, None, &[]), 12);
    let mut server = encode_packet(1, &[1]);
    server.extend(encode_packet(2, &column("n", 3)));
    server.extend(encode_packet(3, &[0xFE, 0, 0, 0x42, 0]));
    r.server(&server, 13);
    let mut fetch = vec![0x1C];
    fetch.extend_from_slice(&3u32.to_le_bytes());
    fetch.extend_from_slice(&10u32.to_le_bytes());
    r.client(&encode_packet(0, &fetch), 14);
    let mut server = encode_packet(1, &[0, 0, 1, 0, 0, 0]);
    server.extend(encode_packet(2, &[0, 0, 2, 0, 0, 0]));
    server.extend(encode_packet(3, &end(0x82)));
    r.server(&server, 15);
    r.client(&encode_packet(0, &command(3, b"UPDATE t SET n = 1")), 16);
    r.server(&encode_packet(1, &ok_affected(4)), 17);
    let got = records(&mut r);
    assert!(!r.undecodable(), "{:?}", r.undecodable_reason());
    // The execute's rows came with the fetch, which is not recorded: the count is unknown.
    let exec = got
        .iter()
        .find(|x| x.command.name() == "execute")
        .expect("execute");
    let resp = exec.response.as_ref().expect("answered");
    assert_eq!((resp.rows, resp.status_flags), (None, Some(0x42)));
    let last = got
        .iter()
        .find(|x| sql_of(x) == "UPDATE t SET n = 1")
        .expect("update");
    assert_eq!(
        last.response.as_ref().and_then(|x| x.affected_rows),
        Some(4)
    );
}

fn ok_affected(n: u8) -> Vec<u8> {
    ok(n, AUTOCOMMIT)
}

/// `LOAD DATA LOCAL INFILE`: the file's packets (and the empty one that ends it) are not
/// commands; the statement's answer is the OK after them.
#[test]
fn local_infile_file_packets_are_not_commands() {
    let mut r = logged_in();
    r.client(
        &encode_packet(0, &command(3, b"LOAD DATA LOCAL INFILE 'x' INTO TABLE t")),
        10,
    );
    let mut req = vec![0xFB];
    req.extend_from_slice(b"x");
    r.server(&encode_packet(1, &req), 11);
    let mut file = encode_packet(2, b"1\n2\n");
    file.extend(encode_packet(3, &command(3, b"looks like a query")));
    file.extend(encode_packet(4, b""));
    r.client(&file, 12);
    r.server(&encode_packet(5, &ok_affected(3)), 13);
    r.client(&encode_packet(0, &command(3, b"SELECT 1")), 14);
    r.server(&result_set(1, 1, AUTOCOMMIT), 15);
    let got = records(&mut r);
    assert!(!r.undecodable(), "{:?}", r.undecodable_reason());
    let names: Vec<String> = got.iter().map(sql_of).collect();
    assert_eq!(
        names,
        [
            "connect",
            "LOAD DATA LOCAL INFILE 'x' INTO TABLE t",
            "SELECT 1",
            "quit"
        ]
    );
    assert_eq!(
        got[1].response.as_ref().and_then(|x| x.affected_rows),
        Some(3)
    );
    assert_eq!(got[2].response.as_ref().and_then(|x| x.rows), Some(1));
}

/// A proxy relays an answer before it decodes it, so the client's reply (auth data, a file)
/// may reach the decoder first: the pairing is the same.
#[test]
fn replies_seen_before_the_request_they_answer() {
    for compress in [false, true] {
        let mut r = Recorder::new(1);
        r.server(&greeting(), 1);
        r.client(&login(compress), 2);
        let mut switch = vec![0xFE];
        switch.extend_from_slice(b"client_ed25519\0");
        switch.extend_from_slice(&[7u8; 32]);
        // The auth reply, then the switch request that asked for it.
        r.client(&encode_packet(3, &[9u8; 64]), 3);
        r.server(&encode_packet(2, &switch), 4);
        r.server(&encode_packet(4, &ok(0, AUTOCOMMIT)), 5);
        let wrap = |seq: u8, p: Vec<u8>| if compress { frame(seq, &p) } else { p };
        r.client(
            &wrap(
                0,
                encode_packet(0, &command(3, b"LOAD DATA LOCAL INFILE 'x' INTO TABLE t")),
            ),
            6,
        );
        // The file and its end, then the request for it, then the answer.
        let mut file = encode_packet(2, &command(3, b"1\n2\n"));
        file.extend(encode_packet(3, b""));
        r.client(&wrap(2, file), 7);
        r.server(&wrap(1, encode_packet(1, b"\xFBx")), 8);
        r.server(&wrap(4, encode_packet(4, &ok_affected(2))), 9);
        let got = records(&mut r);
        assert!(!r.undecodable(), "{:?}", r.undecodable_reason());
        let names: Vec<String> = got.iter().map(sql_of).collect();
        assert_eq!(
            names,
            ["connect", "LOAD DATA LOCAL INFILE 'x' INTO TABLE t", "quit"],
            "compress {compress}"
        );
        assert_eq!(
            got[1].response.as_ref().and_then(|x| x.affected_rows),
            Some(2)
        );
    }
}

/// A multi-statement: its results (each with MORE_RESULTS but the last) are one command's;
/// the next command gets the next answer.
#[test]
fn multi_results_belong_to_one_command() {
    let mut r = logged_in();
    let mut client = encode_packet(0, &command(3, b"SELECT 1; UPDATE t SET n = 2"));
    client.extend(encode_packet(0, &command(3, b"DELETE FROM t")));
    r.client(&client, 10);
    let mut server = result_set(1, 1, AUTOCOMMIT | MORE_RESULTS);
    server.extend(encode_packet(5, &ok_affected(2)));
    server.extend(encode_packet(1, &ok_affected(5)));
    r.server(&server, 11);
    let got = records(&mut r);
    assert!(!r.undecodable(), "{:?}", r.undecodable_reason());
    assert_eq!(got.len(), 4, "{got:?}");
    assert_eq!(got[1].response.as_ref().and_then(|x| x.rows), Some(1));
    assert_eq!(sql_of(&got[2]), "DELETE FROM t");
    assert_eq!(
        got[2].response.as_ref().and_then(|x| x.affected_rows),
        Some(5)
    );
}

/// `COM_RESET_CONNECTION` and `COM_CHANGE_USER` close the session's statements; a change of
/// user may switch the auth plugin, whose reply is not a command.
#[test]
fn reset_and_change_user() {
    let mut r = logged_in();
    r.client(&encode_packet(0, &command(0x16, b"SELECT ?")), 10);
    r.server(&prepared(1, 1), 11);
    r.client(&encode_packet(0, &[0x1F]), 12);
    r.server(&encode_packet(1, &ok(0, AUTOCOMMIT)), 13);
    // An execute of the closed statement: its parameters are not read against it.
    r.client(&execute(1, 0, 0, Some(&[(8, 0)]), &1i64.to_le_bytes()), 14);
    r.server(&encode_packet(1, &err(1243)), 15);
    let mut cu = b"\x11other\0".to_vec();
    cu.push(20);
    cu.extend_from_slice(&[3u8; 20]);
    cu.extend_from_slice(b"crm\0");
    r.client(&encode_packet(0, &cu), 16);
    let mut switch = vec![0xFE];
    switch.extend_from_slice(b"mysql_native_password\0");
    switch.extend_from_slice(&[5u8; 21]);
    r.server(&encode_packet(1, &switch), 17);
    r.client(&encode_packet(2, &[6u8; 20]), 18);
    r.server(&encode_packet(3, &ok(0, AUTOCOMMIT)), 19);
    r.client(&encode_packet(0, &command(3, b"SELECT 3")), 20);
    r.server(&result_set(1, 3, AUTOCOMMIT), 21);
    let got = records(&mut r);
    assert!(!r.undecodable(), "{:?}", r.undecodable_reason());
    let names: Vec<String> = got.iter().map(sql_of).collect();
    assert_eq!(
        names,
        [
            "connect",
            "SELECT ?",
            "reset",
            "execute",
            "change_user",
            "SELECT 3",
            "quit"
        ]
    );
    assert_eq!(params_of(&got[3]), Vec::<ParamValue>::new());
    assert_eq!(got[4].user.as_deref(), Some("other"));
    assert_eq!(got[4].db.as_deref(), Some("crm"));
    assert_eq!(got[5].response.as_ref().and_then(|x| x.rows), Some(3));
}

/// MariaDB's metadata cache (libmariadb, sysbench): an execute's result set leaves its column
/// definitions out, but without `CLIENT_DEPRECATE_EOF` the EOF that ends them still comes
/// before the rows.
#[test]
fn skipped_metadata_still_has_its_eof() {
    let mut r = Recorder::new(1);
    r.server(&greeting(), 1);
    r.client(&login_with(caps(false) - C::CLIENT_DEPRECATE_EOF), 2);
    r.server(&encode_packet(2, &ok(0, AUTOCOMMIT)), 3);
    r.client(
        &encode_packet(0, &command(0x16, b"SELECT c FROM t WHERE id = ?")),
        4,
    );
    let mut ok = vec![0x00];
    ok.extend_from_slice(&2u32.to_le_bytes());
    ok.extend_from_slice(&[1, 0, 1, 0, 0, 0, 0]);
    let mut server = encode_packet(1, &ok);
    server.extend(encode_packet(2, &column("?", 253)));
    server.extend(encode_packet(3, &[0xFE, 0, 0, 2, 0]));
    server.extend(encode_packet(4, &column("c", 254)));
    server.extend(encode_packet(5, &[0xFE, 0, 0, 2, 0]));
    r.server(&server, 5);
    r.client(&execute(2, 0, 0, Some(&[(3, 0)]), &7i32.to_le_bytes()), 6);
    // One column, "metadata follows" 0; the EOF; two rows; the EOF.
    let mut server = encode_packet(1, &[1, 0]);
    server.extend(encode_packet(2, &[0xFE, 0, 0, 2, 0]));
    server.extend(encode_packet(3, &[0, 0, 1, b'x']));
    server.extend(encode_packet(4, &[0, 0, 1, b'y']));
    server.extend(encode_packet(5, &[0xFE, 0, 0, 2, 0]));
    r.server(&server, 7);
    let got = records(&mut r);
    assert!(!r.undecodable(), "{:?}", r.undecodable_reason());
    let exec = got
        .iter()
        .find(|x| x.command.name() == "execute")
        .expect("execute");
    let resp = exec.response.as_ref().expect("answer");
    assert_eq!(resp.rows, Some(2));
    // The prepare's column stands in for the definitions left out.
    assert_eq!(resp.columns.as_ref().map(|c| c[0].name.as_str()), Some("c"));
}

/// What the decoder cannot delimit ends the recording of the connection, with the reason.
#[test]
fn unprovable_pairing_is_said_and_stops_the_recording() {
    // A command whose answer has no known end (a binlog dump).
    let mut r = logged_in();
    r.client(&encode_packet(0, &command(0x12, &[0; 10])), 10);
    r.client(&encode_packet(0, &command(3, b"SELECT 1")), 11);
    r.server(&result_set(1, 1, AUTOCOMMIT), 12);
    let got = records(&mut r);
    assert!(got.iter().all(|x| sql_of(x) != "SELECT 1"), "{got:?}");
    assert!(r.undecodable_reason().is_some_and(|w| w.contains("0x12")));
    // An answer nobody asked for.
    let mut r = logged_in();
    r.server(&encode_packet(1, &ok(1, AUTOCOMMIT)), 10);
    r.client(&encode_packet(0, &command(3, b"SELECT 1")), 11);
    r.server(&result_set(1, 1, AUTOCOMMIT), 12);
    let got = records(&mut r);
    assert!(got.iter().all(|x| sql_of(x) != "SELECT 1"), "{got:?}");
    assert!(r.undecodable());
    // A batch execute (COM_STMT_BULK_EXECUTE) is paired but has no workload form: the
    // recording says it is incomplete, and the next command still gets its own answer.
    let mut r = logged_in();
    let mut bulk = vec![0xFA];
    bulk.extend_from_slice(&1u32.to_le_bytes());
    bulk.extend_from_slice(&[0, 0]);
    r.client(&encode_packet(0, &bulk), 10);
    r.server(&encode_packet(1, &ok_affected(3)), 11);
    r.client(&encode_packet(0, &command(3, b"SELECT 1")), 12);
    r.server(&result_set(1, 1, AUTOCOMMIT), 13);
    let got = records(&mut r);
    assert!(r.undecodable_reason().is_some_and(|w| w.contains("BULK")));
    let q = got
        .iter()
        .find(|x| sql_of(x) == "SELECT 1")
        .expect("recorded");
    assert_eq!(q.response.as_ref().and_then(|x| x.rows), Some(1));
    // An ERR the server sends on its own before closing (killed): not a pairing problem.
    let mut r = logged_in();
    r.server(&encode_packet(0, &err(1927)), 10);
    assert!(!r.undecodable());
}

/// One command of a generated conversation: a query answered with `n` rows, or an update
/// answered with `n` affected rows.
fn conversation(
    commands: &[(bool, u8)],
    compress: bool,
) -> (Vec<u8>, Vec<usize>, Vec<u8>, Vec<usize>) {
    // Client bytes, and where each command ends (the login first).
    let mut client = login(compress);
    let mut client_ends = vec![client.len()];
    // Server bytes, and where each answer ends (the login's OK first).
    let mut server = encode_packet(2, &ok(0, AUTOCOMMIT));
    let mut server_ends = vec![server.len()];
    for &(select, n) in commands {
        let (q, a) = if select {
            (format!("SELECT {n}"), result_set(1, n, AUTOCOMMIT))
        } else {
            (format!("UPDATE {n}"), encode_packet(1, &ok_affected(n)))
        };
        let q = encode_packet(0, &command(3, q.as_bytes()));
        client.extend(if compress { frame(0, &q) } else { q });
        client_ends.push(client.len());
        server.extend(if compress { frame(1, &a) } else { a });
        server_ends.push(server.len());
    }
    (client, client_ends, server, server_ends)
}

proptest! {
    /// Commands pipelined from the handshake response on (before the login's OK), with or
    /// without compression, the bytes of both directions cut anywhere and interleaved in any
    /// order the server could answer in: every command is recorded with its own answer.
    #[test]
    fn pipelined_answers_pair_with_their_own_commands(
        commands in proptest::collection::vec((any::<bool>(), 0u8..5), 1..8),
        compress in any::<bool>(),
        steps in proptest::collection::vec((any::<bool>(), 1usize..40), 1..200),
    ) {
        let (client, client_ends, server, server_ends) = conversation(&commands, compress);
        let mut r = Recorder::new(1);
        r.server(&greeting(), 0);
        let (mut c, mut s) = (0usize, 0usize);
        let mut t = 1;
        let mut steps = steps.into_iter().cycle();
        while c < client.len() || s < server.len() {
            let (client_turn, n) = steps.next().unwrap_or((true, 1));
            // The server may answer only commands it has received whole.
            let sent = client_ends.iter().filter(|&&e| e <= c).count();
            let limit = if sent == 0 { 0 } else { server_ends[sent - 1] };
            if (client_turn || s >= limit) && c < client.len() {
                let to = (c + n).min(client.len());
                r.client(&client[c..to], t);
                c = to;
            } else if s < limit {
                let to = (s + n).min(limit);
                r.server(&server[s..to], t);
                s = to;
            }
            t += 1;
        }
        let got = records(&mut r);
        prop_assert!(!r.undecodable(), "{:?}", r.undecodable_reason());
        let queries: Vec<&Record> = got.iter().filter(|x| x.command.name() == "query").collect();
        prop_assert_eq!(queries.len(), commands.len());
        for (rec, &(select, n)) in queries.iter().zip(&commands) {
            let resp = rec.response.as_ref();
            if select {
                prop_assert_eq!(sql_of(rec), format!("SELECT {n}"));
                prop_assert_eq!(resp.and_then(|x| x.rows), Some(u64::from(n)));
            } else {
                prop_assert_eq!(sql_of(rec), format!("UPDATE {n}"));
                prop_assert_eq!(resp.and_then(|x| x.affected_rows), Some(u64::from(n)));
            }
        }
    }
}
