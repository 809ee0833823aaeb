//! The data the demo plants: the shop schema and its rows, the drift let into the target,
//! the transaction the replica loses, the workload, and the application's sessions.

use anyhow::Result;
use cutover_core::Db;
use cutover_diff::report::DiffKind;

/// The sample schema; `{cs}` is the table options of the side (charset and collation).
pub(super) const SCHEMA: &str = "
CREATE TABLE customers (
  id INT PRIMARY KEY,
  name VARCHAR(64) NOT NULL,
  email VARCHAR(128),
  country CHAR(2) NOT NULL,
  balance DECIMAL(12,2) NOT NULL,
  created_at DATETIME(6) NOT NULL
) {cs};
CREATE TABLE products (
  id INT PRIMARY KEY,
  sku VARCHAR(32) NOT NULL,
  price DECIMAL(10,2) NOT NULL,
  weight FLOAT,
  attrs JSON
) {cs};
CREATE TABLE orders (
  id BIGINT UNSIGNED PRIMARY KEY,
  customer_id INT NOT NULL,
  status ENUM('new','paid','shipped','cancelled') NOT NULL,
  total DECIMAL(14,2) NOT NULL,
  placed_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  note TEXT,
  KEY (customer_id)
) {cs};
CREATE TABLE sessions (
  id BIGINT PRIMARY KEY,
  token VARBINARY(16) NOT NULL,
  flags BIT(8) NOT NULL,
  seen TIME(3)
) {cs};
CREATE TABLE order_items (
  order_id BIGINT UNSIGNED NOT NULL,
  line SMALLINT NOT NULL,
  sku VARCHAR(32) NOT NULL,
  qty INT NOT NULL,
  PRIMARY KEY (order_id, line)
) {cs};
CREATE TABLE coupons (
  code VARCHAR(32) PRIMARY KEY,
  percent TINYINT NOT NULL
) {cs};
CREATE TABLE WORKER_NODE (
  ID BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  HOST_NAME VARCHAR(64) NOT NULL,
  PORT VARCHAR(64) NOT NULL,
  TYPE INT NOT NULL,
  LAUNCH_DATE DATE NOT NULL,
  MODIFIED TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
  CREATED TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
) AUTO_INCREMENT = 4150000 {cs};
CREATE TABLE audit_log (
  at DATETIME NOT NULL,
  event VARCHAR(40) NOT NULL
) {cs}";

/// Data, the same on both sides. `{n}` is the size of the largest table.
pub(super) const DATA: &str = "
INSERT INTO customers SELECT seq, CONCAT(ELT(1 + seq % 5, 'Ana', 'Björn', 'Chen', 'Dmitri', 'Eve'), ' ', seq),
  IF(seq % 17 = 0, NULL, CONCAT('user', seq, '@example.com')), ELT(1 + seq % 4, 'DE', 'SE', 'CN', 'US'),
  (seq % 10000) / 100, '2020-01-01' + INTERVAL seq MINUTE + INTERVAL seq % 1000000 MICROSECOND
  FROM seq_1_to_{n4};
INSERT INTO products SELECT seq, CONCAT('SKU-', LPAD(seq, 6, '0')), 1 + (seq % 5000) / 100, seq / 7,
  JSON_OBJECT('color', ELT(1 + seq % 3, 'red', 'green', 'blue'), 'size', seq % 50)
  FROM seq_1_to_2000;
INSERT INTO orders (id, customer_id, status, total, placed_at, note) SELECT seq, 1 + seq % {n4},
  ELT(1 + seq % 4, 'new', 'paid', 'shipped', 'cancelled'), (seq % 100000) / 100,
  '2024-01-01' + INTERVAL seq SECOND, IF(seq % 3 = 0, NULL, IF(seq % 3 = 1, '', 'gift wrap'))
  FROM seq_1_to_{n};
INSERT INTO sessions SELECT seq, UNHEX(MD5(seq)), seq % 256, SEC_TO_TIME(seq % 86400)
  FROM seq_1_to_{n4};
INSERT INTO order_items SELECT 1 + seq DIV 3, seq % 3, CONCAT('SKU-', LPAD(1 + seq % 2000, 6, '0')), 1 + seq % 4
  FROM seq_0_to_{n4};
INSERT INTO WORKER_NODE (HOST_NAME, PORT, TYPE, LAUNCH_DATE)
  SELECT CONCAT('app-', seq), '8080', 1, '2024-01-01' FROM seq_1_to_4;
INSERT INTO coupons SELECT CONCAT('SAVE', seq), seq % 50 FROM seq_1_to_5000;
INSERT INTO audit_log SELECT '2024-01-01' + INTERVAL (seq DIV 3) MINUTE, ELT(1 + seq % 2, 'login', 'logout')
  FROM seq_1_to_30000";

/// Drift on the target: each line is one difference the diff must find, with its key.
pub(super) const DRIFT: &[(&str, &str, DiffKind, &str)] = &[
    ("UPDATE customers SET name = LOWER(name) WHERE id = 4242", "customers", DiffKind::Mismatched, r#"{"id":4242}"#),
    ("UPDATE customers SET email = '' WHERE id = 17 * 300", "customers", DiffKind::Mismatched, r#"{"id":5100}"#),
    ("UPDATE products SET weight = weight + 0.001 WHERE id = 1500", "products", DiffKind::Mismatched, r#"{"id":1500}"#),
    ("UPDATE orders SET note = CONCAT(note, ' ') WHERE id = 100001", "orders", DiffKind::Mismatched, r#"{"id":100001}"#),
    ("DELETE FROM orders WHERE id = 150000", "orders", DiffKind::MissingInTarget, r#"{"id":150000}"#),
    ("INSERT INTO orders (id, customer_id, status, total, placed_at) VALUES (999999999, 1, 'new', 1, '2024-01-01')", "orders", DiffKind::ExtraInTarget, r#"{"id":999999999}"#),
    // A composite key: one line of an order changed, another lost.
    ("UPDATE order_items SET qty = qty + 1 WHERE order_id = 2024 AND line = 1", "order_items", DiffKind::Mismatched, r#"{"order_id":2024,"line":1}"#),
    ("DELETE FROM order_items WHERE order_id = 9001 AND line = 2", "order_items", DiffKind::MissingInTarget, r#"{"order_id":9001,"line":2}"#),
    ("UPDATE sessions SET token = UNHEX('00FF00FF00FF00FF00FF00FF00FF00FF') WHERE id = 777", "sessions", DiffKind::Mismatched, r#"{"id":777}"#),
    // A string key whose case changes: a different row, even where the collation says equal.
    ("UPDATE coupons SET code = 'save42' WHERE code = 'SAVE42'", "coupons", DiffKind::MissingInTarget, r#"{"code":"SAVE42"}"#),
    ("UPDATE coupons SET code = 'save42' WHERE code = 'SAVE42'", "coupons", DiffKind::ExtraInTarget, r#"{"code":"save42"}"#),
    // A keyless table: one of three identical rows lost.
    ("DELETE FROM audit_log WHERE at = '2024-01-01 00:10:00' AND event = 'logout' LIMIT 1", "audit_log", DiffKind::MissingInTarget, r#"{"at":"2024-01-01 00:10:00","event":"logout"}"#),
];

/// The transaction the replica loses, and what verify must confirm for it (table, kind, key).
pub(super) const LOST_TXN: &str = "BEGIN; \
    UPDATE shop.orders SET status = 'shipped', note = 'lost on the replica' WHERE id = 4711; \
    DELETE FROM shop.coupons WHERE code = 'SAVE777'; \
    INSERT INTO shop.customers (id, name, email, country, balance, created_at) \
      VALUES (900001, 'Frida 900001', NULL, 'SE', 0, '2024-06-01 12:00:00'); \
    COMMIT";
pub(super) const LOST: &[(&str, DiffKind, &str)] = &[
    ("shop.orders", DiffKind::Mismatched, r#"{"id":4711}"#),
    (
        "shop.coupons",
        DiffKind::ExtraInTarget,
        r#"{"code":"SAVE777"}"#,
    ),
    (
        "shop.customers",
        DiffKind::MissingInTarget,
        r#"{"id":900001}"#,
    ),
];

/// A workload transaction on the source: new orders and their lines, paid orders, balances.
pub(super) fn workload_txn(i: u64) -> String {
    let order = 5_000_000 + i;
    format!(
        "BEGIN; \
         INSERT INTO shop.orders (id, customer_id, status, total, note) \
           VALUES ({order}, {c}, 'new', {t}.50, 'demo workload'); \
         INSERT INTO shop.order_items VALUES ({order}, 0, 'SKU-000042', 2), ({order}, 1, 'SKU-000007', 1); \
         UPDATE shop.orders SET status = 'paid' WHERE id = {paid}; \
         UPDATE shop.customers SET balance = balance + 1 WHERE id = {c}; \
         DELETE FROM shop.sessions WHERE id = {s}; \
         COMMIT",
        c = 1 + i % 1000,
        t = 10 + i % 90,
        paid = 1 + (i * 7919) % 100_000,
        s = 1 + i,
    )
}

/// The application's sessions: (session, statement). The two `name` lookups depend on the
/// collation (`utf8mb4_general_ci` on the source, `utf8mb4_bin` on the target). Session 4
/// locks a range, checks it and inserts into it, and session 2 takes a shared lock: both
/// behave differently on TiDB, and `check --workload` must say so.
pub(super) const SESSIONS: &[(usize, &str)] = &[
    (0, "SELECT name, email FROM customers WHERE id = 7"),
    (1, "SELECT COUNT(*) FROM customers WHERE name LIKE 'ana%'"),
    (3, "BEGIN"),
    (
        3,
        "SELECT COUNT(*) FROM orders WHERE customer_id BETWEEN 7 AND 9 FOR UPDATE",
    ),
    (3, RANGE_INSERT),
    (3, "COMMIT"),
    (
        1,
        "SELECT balance FROM customers WHERE id = 7 LOCK IN SHARE MODE",
    ),
    (2, "BEGIN"),
    (2, "SELECT total FROM orders WHERE id = 42 FOR UPDATE"),
    (0, "SELECT COUNT(*) FROM orders WHERE customer_id = 7"),
    (2, "UPDATE orders SET note = 'gift' WHERE id = 42"),
    (2, "COMMIT"),
    (1, "SELECT id FROM customers WHERE name = 'chen 2'"),
    (
        0,
        "SELECT id, total FROM orders WHERE customer_id = 7 ORDER BY id",
    ),
];
/// The insert after the range lock (it reaches the target too, as replication would carry it).
pub(super) const RANGE_INSERT: &str =
    "INSERT INTO orders (id, customer_id, status, total, placed_at) \
     VALUES (800000001, 8, 'new', 9.50, '2024-06-01 12:00:00')";
/// The application's connection pool prepares this statement, executes it and closes it
/// again for every lookup (a JDBC pool with `useServerPrepStmts` and no statement cache).
pub(super) const POOLED: &str = "SELECT name, balance FROM customers WHERE id = ?";
pub(super) const POOLED_LOOKUPS: i64 = 8;

pub(super) async fn load(db: &Db, table_options: &str, n: u64) -> Result<()> {
    db.execute("DROP DATABASE IF EXISTS shop; CREATE DATABASE shop")
        .await?;
    let schema = SCHEMA.replace("{cs}", table_options);
    db.execute(&format!("USE shop; {schema}")).await?;
    let data = DATA
        .replace("{n4}", &(n / 4).to_string())
        .replace("{n}", &n.to_string());
    db.execute(&format!("USE shop; {data}")).await?;
    Ok(())
}
