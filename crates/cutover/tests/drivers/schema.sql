-- The data every driver session reads and writes, loaded identically on both servers into
-- the test's own database. Statements are separated by ";" at the end of a line.
CREATE TABLE types (
  id INT PRIMARY KEY,
  i INT,
  u BIGINT UNSIGNED,
  d DECIMAL(20,6),
  f DOUBLE,
  fl FLOAT,
  dt DATETIME(6),
  dd DATE,
  tm TIME,
  vc VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,
  vb VARBINARY(32),
  bl BLOB,
  js JSON,
  en ENUM('red','green','blue')
);
INSERT INTO types VALUES
  (1, 1, 18446744073709551615, 12345.678901, 1.5, 0.25, '2024-01-01 00:00:00.000001', '2024-01-01', '00:00:01', 'plain', 0x41, 0x42, '{"k": 1}', 'red'),
  (2, -2, 0, -0.000001, -2.75, -1.5, '2024-02-29 13:45:59.123000', '2024-02-29', '13:45:59', 'zero bytes', 0x00ff00ff7f80, 0x00ff, '{"k": [1, 2]}', 'green'),
  (3, -300, 3, 3.000000, 3.125, 3.5, '2023-12-31 23:59:59.999999', '2023-12-31', '-12:00:00', 'the probe row', 0x03, 0x0303, '{"k": "three"}', 'blue'),
  (4, 4, 4000000000, 4.4, 2.5, 4.25, '2024-03-01 00:00:00.500000', '2024-03-01', '838:59:59', 'héllo wörld 🐬', 0xff, 0xffff, '{"k": null}', 'green'),
  (5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  (6, 2147483647, 9223372036854775807, 99999999999999.999999, 1e300, 3.4e38, '1970-01-01 00:00:01.000000', '1000-01-01', '-838:59:59', '', '', '', '[]', 'red'),
  (7, 7, 7, 7.000007, 7.7, 7.75, '2038-01-19 03:14:07.999999', '9999-12-31', '07:07:07', 'row seven', 0x0707, 0x07, '{"k": 7}', 'blue');
CREATE TABLE big (id INT PRIMARY KEY, v VARCHAR(40), n BIGINT);
INSERT INTO big SELECT seq, CONCAT('row-', seq), seq * 7 FROM seq_1_to_20000;
CREATE TABLE blobs (id INT PRIMARY KEY, b LONGBLOB);
CREATE TABLE kv (id INT PRIMARY KEY, v VARCHAR(20));
INSERT INTO kv VALUES (1, 'one'), (2, 'two');
