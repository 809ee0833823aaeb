//! The checksum itself, evaluated by a real server: every single change to a row must change
//! that row's checksum, and a swap of values between rows must change a chunk's checksum.
//! (The binary's tests check whole diffs; these check that the checksum never lets a
//! difference through to "equal".)

mod random_tables;

use cutover_core::schema::{describe, TableName};
use cutover_core::{Db, Endpoint, Role, SessionOptions};
use cutover_diff::plan::{Plan, RowHash, Side};
use cutover_diff::ColumnFilter;
use cutover_sandbox::{Sandbox, Settings};
use mysql_async::prelude::Queryable;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

const TABLE: &str = "CREATE TABLE t (id INT PRIMARY KEY, a VARCHAR(40) NULL, b VARCHAR(40) NULL,
  f FLOAT, g DOUBLE, d DECIMAL(12,3), dt DATETIME(6), bin VARBINARY(16), j JSON,
  bt BIT(16), e ENUM('x','y','z'), n BIGINT)";

/// A row as SQL literals, in column order.
#[derive(Clone, Debug)]
struct Row {
    a: Option<String>,
    b: Option<String>,
    f: f32,
    g: f64,
    d: i64, // thousandths
    micros: i64,
    bin: Vec<u8>,
    j: i64,
    bt: u16,
    e: u8,
    n: i64,
}

fn lit(s: &Option<String>) -> String {
    match s {
        None => "NULL".into(),
        Some(s) => format!("X'{}'", cutover_core::value::hex(s.as_bytes())),
    }
}

impl Row {
    fn values(&self, id: i64) -> String {
        format!(
            "({id}, CONVERT({} USING utf8mb4), CONVERT({} USING utf8mb4), {:e}, {:e}, {}.{:03}, \
             '2024-01-01' + INTERVAL {} MICROSECOND, X'{}', JSON_OBJECT('v', {}), {}, {}, {})",
            lit(&self.a),
            lit(&self.b),
            self.f,
            self.g,
            self.d / 1000,
            (self.d % 1000).abs(),
            self.micros,
            cutover_core::value::hex(&self.bin),
            self.j,
            self.bt,
            self.e + 1,
            self.n
        )
        .replace("CONVERT(NULL USING utf8mb4)", "NULL")
    }
}

fn row() -> impl Strategy<Value = Row> {
    (
        proptest::option::of("[a-zA-Z# ]{0,12}"),
        proptest::option::of("[a-zA-Z# ]{0,12}"),
        -1.0e6f32..1.0e6,
        -1.0e12f64..1.0e12,
        0i64..1_000_000_000,
        0i64..1_000_000_000_000,
        proptest::collection::vec(any::<u8>(), 1..16),
        any::<i32>(),
        any::<u16>(),
        0u8..3,
        any::<i64>(),
    )
        .prop_map(|(a, b, f, g, d, micros, bin, j, bt, e, n)| Row {
            a,
            b,
            f,
            g,
            d,
            micros,
            bin,
            j: j as i64,
            bt,
            e,
            n,
        })
}

/// One change to a row, chosen by `kind`; every kind is a real data difference.
fn mutate(r: &Row, kind: u8) -> Row {
    let mut m = r.clone();
    let flip_case = |s: &str| {
        let mut out: String = s.to_string();
        if let Some(i) = s.find(|c: char| c.is_ascii_alphabetic()) {
            let c = s.as_bytes()[i] as char;
            let f = if c.is_ascii_lowercase() {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            out.replace_range(i..i + 1, &f.to_string());
        } else {
            out.push('Q');
        }
        out
    };
    match kind % 14 {
        0 => m.a = Some(flip_case(r.a.as_deref().unwrap_or(""))),
        1 => m.a = Some(format!("{} ", r.a.as_deref().unwrap_or(""))),
        2 => {
            m.a = if r.a.is_some() {
                None
            } else {
                Some(String::new())
            }
        }
        3 => {
            // Separator shift: move the boundary between a and b.
            let joined = format!(
                "{}#{}",
                r.a.as_deref().unwrap_or(""),
                r.b.as_deref().unwrap_or("")
            );
            let cut = joined.len() / 2;
            m.a = Some(joined[..cut].to_string());
            m.b = Some(joined[cut..].to_string());
            if m.a == r.a && m.b == r.b {
                m.a = Some(format!("{}#", joined));
            }
        }
        4 => {
            std::mem::swap(&mut m.a, &mut m.b);
            if m.a == r.a {
                m.b = Some(format!("{}x", r.b.as_deref().unwrap_or("")));
            }
        }
        5 => m.f = f32::from_bits(r.f.to_bits() ^ 1),
        6 => m.g = f64::from_bits(r.g.to_bits() ^ 1),
        7 => m.d = r.d + 1,
        8 => m.micros = r.micros + 1,
        9 => m.bin[0] ^= 0x80,
        10 => m.j = r.j.wrapping_add(1),
        11 => m.bt = r.bt ^ 1,
        12 => m.e = (r.e + 1) % 3,
        _ => m.n = r.n.wrapping_add(1),
    }
    m
}

async fn exec(port: u16, sql: &str) {
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(port)
        .user(Some("root"))
        .prefer_socket(false);
    let mut c = mysql_async::Conn::new(opts).await.unwrap();
    c.query_drop(sql)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{sql}"));
    c.disconnect().await.unwrap();
}

async fn db(port: u16, role: Role) -> Db {
    let e = Endpoint::parse(&format!("mysql://root@127.0.0.1:{port}")).unwrap();
    Db::connect(&e, role, SessionOptions::default(), Default::default())
        .await
        .unwrap()
}

/// The two 32-bit hashes of one row's checksum.
fn halves(x: &(i64, u64, String, String), hash: RowHash) -> (u128, u128) {
    let a: u128 = x.2.parse().unwrap();
    match hash {
        RowHash::Crc32Pair | RowHash::Crc32Reversed => (a & 0xffff_ffff, a >> 32),
        // One 32-bit hash: both "halves" are it, so a change must show in it.
        RowHash::Crc32 => (a, a),
    }
}

/// Per-row checksums `(id, count, sum1, sum2)` of one side.
async fn per_row(db: &Db, plan: &Plan, side: Side, table: &str) -> Vec<(i64, u64, String, String)> {
    db.query(&format!(
        "SELECT id, {} FROM {table} GROUP BY id ORDER BY id",
        plan.checksum_select(side)
    ))
    .await
    .unwrap()
}

#[tokio::test]
async fn every_single_change_changes_the_row_checksum_and_swaps_change_the_chunk() {
    let sb = Sandbox::start_owned(&Settings::default()).unwrap();
    let (sp, tp) = (sb.source.port, sb.target.port);
    for p in [sp, tp] {
        exec(p, &format!("CREATE DATABASE c; USE c; {TABLE}")).await;
    }
    let mut runner = TestRunner::deterministic();
    let strategy = row();
    const N: i64 = 700;
    let mut src = Vec::new();
    let mut tgt = Vec::new();
    for id in 1..=N {
        let r = strategy.new_tree(&mut runner).unwrap().current();
        let m = mutate(&r, (id % 14) as u8);
        src.push(r.values(id));
        tgt.push(m.values(id));
    }
    exec(
        sp,
        &format!("USE c; INSERT INTO t VALUES {}", src.join(",")),
    )
    .await;
    exec(
        tp,
        &format!("USE c; INSERT INTO t VALUES {}", tgt.join(",")),
    )
    .await;
    // Untouched rows, to check equal data gives equal checksums.
    let same: Vec<String> = (0..50)
        .map(|i| {
            strategy
                .new_tree(&mut runner)
                .unwrap()
                .current()
                .values(10_000 + i)
        })
        .collect();
    for p in [sp, tp] {
        exec(
            p,
            &format!("USE c; INSERT INTO t VALUES {}", same.join(",")),
        )
        .await;
    }

    let (s, t) = (db(sp, Role::Source).await, db(tp, Role::Target).await);
    let name = TableName::new("c", "t");
    let mut plan = Plan::new(
        describe(&s, &name).await.unwrap().unwrap(),
        describe(&t, &name).await.unwrap().unwrap(),
        &ColumnFilter::default(),
    )
    .unwrap();
    for hash in [RowHash::Crc32Pair, RowHash::Crc32Reversed, RowHash::Crc32] {
        plan.hash = hash;
        let a = per_row(&s, &plan, Side::Source, "c.t").await;
        let b = per_row(&t, &plan, Side::Target, "c.t").await;
        assert_eq!(a.len(), b.len());
        let mut missed = Vec::new();
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.0, y.0);
            let changed = x.0 < 10_000;
            let (x1, x2) = halves(x, hash);
            let (y1, y2) = halves(y, hash);
            let differs = x1 != y1 && x2 != y2;
            if changed && !differs {
                missed.push((
                    x.0,
                    x1 == y1,
                    x2 == y2,
                    &src[(x.0 - 1) as usize],
                    &tgt[(x.0 - 1) as usize],
                ));
            }
            if !changed {
                assert_eq!(x, y, "{hash:?}: equal rows must have equal checksums");
            }
        }
        assert!(
            missed.is_empty(),
            "{hash:?}: both hashes must see every change: {missed:#?}"
        );
    }

    // Values swapped between rows: each row changes, the multiset of values does not.
    for p in [sp, tp] {
        exec(
            p,
            "USE c; CREATE TABLE w (id INT PRIMARY KEY, a VARCHAR(10), n INT);
             INSERT INTO w VALUES (1, 'alpha', 10), (2, 'beta', 20), (3, 'gamma', 30)",
        )
        .await;
    }
    exec(
        tp,
        "USE c; UPDATE w SET a = ELT(id, 'beta', 'alpha', 'gamma'), n = ELT(id, 20, 10, 30)",
    )
    .await;
    exec(tp, "USE c; UPDATE w SET a = 'gamma', n = 30 WHERE id = 3").await;
    exec(tp, "USE c; UPDATE w SET n = ELT(id, 10, 20, 30)").await;
    let wn = TableName::new("c", "w");
    let mut wplan = Plan::new(
        describe(&s, &wn).await.unwrap().unwrap(),
        describe(&t, &wn).await.unwrap().unwrap(),
        &ColumnFilter::default(),
    )
    .unwrap();
    for hash in [RowHash::Crc32Pair, RowHash::Crc32Reversed, RowHash::Crc32] {
        wplan.hash = hash;
        let sql = format!("SELECT {} FROM c.w", wplan.checksum_select(Side::Source));
        let x: Vec<(u64, String, String)> = s.query(&sql).await.unwrap();
        let sql = format!("SELECT {} FROM c.w", wplan.checksum_select(Side::Target));
        let y: Vec<(u64, String, String)> = t.query(&sql).await.unwrap();
        assert_eq!(x[0].0, y[0].0);
        assert_ne!(
            x[0].1, y[0].1,
            "{hash:?}: a swap of values between rows must change the sum"
        );
    }

    // Separator collisions: the same bytes cut at the separator in different places, in
    // text (`#`), in raw bytes and in latin1 text (0xFF, the row string's separator, is `ÿ`
    // in latin1), NULL against ''.
    for p in [sp, tp] {
        exec(
            p,
            "USE c; CREATE TABLE sep (id INT PRIMARY KEY, a VARCHAR(10) NULL, b VARCHAR(10),
               x VARBINARY(10), y VARBINARY(10) NULL, z BLOB,
               la VARCHAR(10) CHARSET latin1, lb CHAR(10) CHARSET latin1 NULL)",
        )
        .await;
    }
    exec(
        sp,
        "USE c; INSERT INTO sep VALUES (1, 'a#b', 'c', X'01', X'02', X'03', 'l', 'm'),
           (2, 'a', 'b', X'01FF02', X'03', X'04', 'l', 'm'),
           (3, NULL, 'x', X'01', X'02', X'03', 'l', 'm'),
           (4, 'q', 'r', X'01', X'02FF', X'03', 'l', 'm'),
           (5, 'q', 'r', X'01', X'02', X'03', X'61FF62', X'63'),
           (6, 'q', 'r', X'01', X'02', X'03', X'FF', ''),
           (7, 'q', 'r', X'01', X'02', X'03', X'61', X'FF'),
           (8, 'q', 'r', X'01', X'02', X'03', X'FF', 'm')",
    )
    .await;
    exec(
        tp,
        "USE c; INSERT INTO sep VALUES (1, 'a', 'b#c', X'01', X'02', X'03', 'l', 'm'),
           (2, 'a', 'b', X'01', X'02FF03', X'04', 'l', 'm'),
           (3, '', 'x', X'01', X'02', X'03', 'l', 'm'),
           (4, 'q', 'r', X'01', X'02', X'FF03', 'l', 'm'),
           (5, 'q', 'r', X'01', X'02', X'03', X'61', X'62FF63'),
           (6, 'q', 'r', X'01', X'02', X'03', '', X'FF'),
           (7, 'q', 'r', X'01', X'02', X'03', X'61FF', NULL),
           (8, 'q', 'r', X'01', X'02', X'03', X'FF20', 'm')",
    )
    .await;
    let sn = TableName::new("c", "sep");
    let mut splan = Plan::new(
        describe(&s, &sn).await.unwrap().unwrap(),
        describe(&t, &sn).await.unwrap().unwrap(),
        &ColumnFilter::default(),
    )
    .unwrap();
    for hash in [RowHash::Crc32Pair, RowHash::Crc32Reversed, RowHash::Crc32] {
        splan.hash = hash;
        let a = per_row(&s, &splan, Side::Source, "c.sep").await;
        let b = per_row(&t, &splan, Side::Target, "c.sep").await;
        for (x, y) in a.iter().zip(&b) {
            let (x1, x2) = halves(x, hash);
            let (y1, y2) = halves(y, hash);
            assert!(
                x1 != y1 && x2 != y2,
                "{hash:?}: row {} collides: {x:?} {y:?}",
                x.0
            );
        }
    }
}

/// CRC-32 as `CRC32()` computes it (reflected, IEEE polynomial).
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for b in bytes {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// `r` with bit 0 of byte `flip` flipped and the 4 bytes at `patch` changed so that its
/// CRC32 stays the same: two differences whose CRC32s cancel. (CRC32 is affine: the change
/// of the CRC is a linear map of the change of the bytes, invertible on 4 bytes.)
fn cancel_crc32(r: &[u8], flip: usize, patch: usize) -> Vec<u8> {
    let zeros = crc32(&vec![0; r.len()]);
    let effect = |bit: usize| {
        let mut e = vec![0u8; r.len()];
        e[patch + bit / 8] ^= 1 << (bit % 8);
        crc32(&e) ^ zeros
    };
    let mut m = r.to_vec();
    m[flip] ^= 1;
    // Solve Σ x_b · effect(b) = crc32(m) ^ crc32(r) by elimination over GF(2).
    let mut rows: Vec<(u32, u32)> = (0..32).map(|b| (effect(b), 1u32 << b)).collect();
    let mut want = (crc32(&m) ^ crc32(r), 0u32);
    for bit in (0..32).rev() {
        let Some(i) = rows.iter().position(|(v, _)| v >> bit & 1 == 1) else {
            panic!("4 consecutive bytes always reach every CRC");
        };
        let pivot = rows.swap_remove(i);
        for row in rows.iter_mut().filter(|(v, _)| v >> bit & 1 == 1) {
            *row = (row.0 ^ pivot.0, row.1 ^ pivot.1);
        }
        if want.0 >> bit & 1 == 1 {
            want = (want.0 ^ pivot.0, want.1 ^ pivot.1);
        }
    }
    for b in 0..32 {
        if want.1 >> b & 1 == 1 {
            m[patch + b / 8] ^= 1 << (b % 8);
        }
    }
    assert_eq!(crc32(&m), crc32(r));
    assert_ne!(m, r);
    m
}

/// The portable row hash's second half sees what its first half misses, and the other way
/// round: rows changed by two differences whose CRC32s cancel, planted on real servers.
#[tokio::test]
async fn the_portable_halves_see_what_one_crc32_misses() {
    let sb = Sandbox::start_owned(&Settings::default()).unwrap();
    let (sp, tp) = (sb.source.port, sb.target.port);
    for p in [sp, tp] {
        exec(
            p,
            "CREATE DATABASE f; USE f;
             CREATE TABLE t (id INT PRIMARY KEY, v VARBINARY(64) NOT NULL)",
        )
        .await;
    }
    let mut runner = TestRunner::deterministic();
    let payload = proptest::collection::vec(any::<u8>(), 40..48);
    let (mut src, mut tgt) = (Vec::new(), Vec::new());
    for id in 1..=40u32 {
        let v = payload.new_tree(&mut runner).unwrap().current();
        // The row string: the key, the separator, the one binary field (no length).
        let mut r = format!("{id}").into_bytes();
        r.push(0xff);
        let head = r.len();
        r.extend(&v);
        let flip = head + (id as usize * 7) % 16;
        let patch = head + 20 + id as usize % 12;
        let changed = if id <= 20 {
            // CRC32(R) misses the change.
            cancel_crc32(&r, flip, patch)
        } else {
            // CRC32(REVERSE(R)) misses it.
            let rev: Vec<u8> = r.iter().rev().copied().collect();
            let n = r.len();
            let forged = cancel_crc32(&rev, n - 1 - flip, n - 1 - (patch + 3));
            forged.into_iter().rev().collect()
        };
        let hex = |b: &[u8]| cutover_core::value::hex(&b[head..]);
        src.push(format!("({id}, X'{}')", hex(&r)));
        tgt.push(format!("({id}, X'{}')", hex(&changed)));
    }
    exec(
        sp,
        &format!("USE f; INSERT INTO t VALUES {}", src.join(",")),
    )
    .await;
    exec(
        tp,
        &format!("USE f; INSERT INTO t VALUES {}", tgt.join(",")),
    )
    .await;

    let (s, t) = (db(sp, Role::Source).await, db(tp, Role::Target).await);
    let name = TableName::new("f", "t");
    let mut plan = Plan::new(
        describe(&s, &name).await.unwrap().unwrap(),
        describe(&t, &name).await.unwrap().unwrap(),
        &ColumnFilter::default(),
    )
    .unwrap();
    plan.hash = RowHash::Crc32;
    let a = per_row(&s, &plan, Side::Source, "f.t").await;
    let b = per_row(&t, &plan, Side::Target, "f.t").await;
    for (x, y) in a.iter().zip(&b).take(20) {
        assert_eq!(x, y, "the planted change must be one that CRC32 misses");
    }
    for hash in [RowHash::Crc32Reversed, RowHash::Crc32Pair] {
        plan.hash = hash;
        let a = per_row(&s, &plan, Side::Source, "f.t").await;
        let b = per_row(&t, &plan, Side::Target, "f.t").await;
        assert_eq!(a.len(), 40);
        for (x, y) in a.iter().zip(&b) {
            let (x1, x2) = halves(x, hash);
            let (y1, y2) = halves(y, hash);
            if hash == RowHash::Crc32Reversed {
                // Exactly one half was cancelled; the other sees the change.
                let first_missed = x.0 <= 20;
                assert_eq!(x1 == y1, first_missed, "{hash:?} row {}", x.0);
                assert_eq!(x2 == y2, !first_missed, "{hash:?} row {}", x.0);
            } else {
                assert!(x2 != y2, "{hash:?} row {}: CRC32C must see it", x.0);
            }
        }
    }
}

/// The row string is bytes: latin1 text, utf8mb4 text and a BLOB are concatenated without
/// a conversion, and latin1's 0xFF (`ÿ`) is told from the separator by its length.
#[tokio::test]
async fn single_byte_text_enters_the_row_string_as_its_bytes() {
    let sb = Sandbox::start_owned(&Settings::default()).unwrap();
    let (sp, tp) = (sb.source.port, sb.target.port);
    let table = "CREATE TABLE t (id INT PRIMARY KEY, l VARCHAR(10) CHARSET latin1 NOT NULL,
        u VARCHAR(10) CHARSET utf8mb4 NOT NULL, b BLOB NOT NULL, m CHAR(5) CHARSET latin1 NOT NULL)";
    for p in [sp, tp] {
        exec(p, &format!("CREATE DATABASE l; USE l; {table}")).await;
    }
    // Row 2 and 3 hold the same bytes cut at the latin1 0xFF in different places.
    exec(
        sp,
        "USE l; INSERT INTO t VALUES (1, X'61FF62', X'C3A9', X'00FF', 'z'),
           (2, X'61FF', X'C3A9', X'00', X'FF62'), (3, X'FF', X'C3A9', X'00', 'q')",
    )
    .await;
    exec(
        tp,
        "USE l; INSERT INTO t VALUES (1, X'61FF62', X'C3A9', X'00FF', 'z'),
           (2, X'61', X'C3A9', X'00', X'FFFF62'), (3, '', X'C3A9', X'00', X'FF71')",
    )
    .await;
    let (s, t) = (db(sp, Role::Source).await, db(tp, Role::Target).await);
    let name = TableName::new("l", "t");
    let mut plan = Plan::new(
        describe(&s, &name).await.unwrap().unwrap(),
        describe(&t, &name).await.unwrap().unwrap(),
        &ColumnFilter::default(),
    )
    .unwrap();
    let row = plan.row_string(Side::Source);
    assert!(!row.contains("CONVERT"), "{row}");
    let got: Vec<(String, String)> = s
        .query(&format!(
            "SELECT CHARSET({row}), HEX({row}) FROM l.t WHERE id = 1"
        ))
        .await
        .unwrap();
    // id, l, u, b, m, then the lengths of l, b (m's is left out: the last field).
    assert_eq!(
        got,
        vec![(
            "binary".to_string(),
            "31FF61FF62FFC3A9FF00FFFF7AFF33FF32".to_string()
        )]
    );
    for hash in [RowHash::Crc32Pair, RowHash::Crc32Reversed, RowHash::Crc32] {
        plan.hash = hash;
        let a = per_row(&s, &plan, Side::Source, "l.t").await;
        let b = per_row(&t, &plan, Side::Target, "l.t").await;
        assert_eq!(a[0], b[0], "{hash:?}: equal rows, equal checksums");
        for (x, y) in a.iter().zip(&b).skip(1) {
            let (x1, x2) = halves(x, hash);
            let (y1, y2) = halves(y, hash);
            assert!(x1 != y1 && x2 != y2, "{hash:?}: row {} collides", x.0);
        }
    }
}

/// Every rendering of one row hash gives the same sums for the same data: the portable form
/// with and without its user variable, with the plain separator (all text latin1) and with
/// the binary one (latin1 and utf8mb4 text mixed), on rows that hold 0xFF in latin1 text.
/// The sides of one plan may use different renderings (a MariaDB source, a TiDB target), so
/// a rendering that changed the bytes would be a difference on every row.
#[tokio::test]
async fn every_rendering_of_a_row_hash_gives_the_same_sums() {
    let sb = Sandbox::start_owned(&Settings::default()).unwrap();
    let sp = sb.source.port;
    exec(
        sp,
        "CREATE DATABASE r; USE r;
         CREATE TABLE lat (id INT PRIMARY KEY, c CHAR(20) CHARSET latin1 NOT NULL,
           v VARCHAR(20) CHARSET latin1, n INT);
         INSERT INTO lat VALUES (1, X'61FF62', X'FF', 7), (2, 'abc', NULL, NULL),
           (3, X'FFFF', '', 0), (4, X'E9', X'6A', -1);
         CREATE TABLE mix (id INT PRIMARY KEY, c CHAR(20) CHARSET latin1 NOT NULL,
           u VARCHAR(20) CHARSET utf8mb4, b VARBINARY(8));
         INSERT INTO mix VALUES (1, X'61FF62', X'C3A9', X'00FF'), (2, 'abc', NULL, NULL),
           (3, X'FF', 'x', '');",
    )
    .await;
    let s = db(sp, Role::Source).await;
    for (table, plain) in [("lat", true), ("mix", false)] {
        let name = TableName::new("r", table);
        let d = describe(&s, &name).await.unwrap().unwrap();
        let mut plan = Plan::new(d.clone(), d, &ColumnFilter::default()).unwrap();
        plan.hash = RowHash::Crc32Reversed;
        assert_eq!(
            plan.row_string(Side::Source)
                .starts_with("CONCAT_WS(CHAR(255), "),
            plain,
            "{table}: {}",
            plan.row_string(Side::Source)
        );
        // Source with the variable, target without: the same table on one server.
        plan.row_variable = (true, false);
        let with = per_row(&s, &plan, Side::Source, &format!("r.{table}")).await;
        let without = per_row(&s, &plan, Side::Target, &format!("r.{table}")).await;
        assert_eq!(with, without, "{table}: the variable changed the sums");
        // The binary separator gives the same sums as the plain one.
        let row = plan.row_string(Side::Target).replacen(
            "CONCAT_WS(CHAR(255), ",
            "CONCAT_WS(CAST(CHAR(255) AS BINARY), ",
            1,
        );
        let binary = format!(
            "SELECT id, COUNT(*), SUM(CRC32({row}) + (CRC32(REVERSE({row})) << 32)), 0 \
             FROM r.{table} GROUP BY id ORDER BY id"
        );
        let by_binary: Vec<(i64, u64, String, String)> = s.query(&binary).await.unwrap();
        let got: Vec<(i64, String)> = without.iter().map(|r| (r.0, r.2.clone())).collect();
        let want: Vec<(i64, String)> = by_binary.iter().map(|r| (r.0, r.2.clone())).collect();
        assert_eq!(got, want, "{table}: plain and binary separators differ");
    }
}
