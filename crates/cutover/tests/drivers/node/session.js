// The scripted driver session (../session.tsv) with Node's mysql2: a pool, `execute` (binary
// protocol, server-side prepared statements) or `query` (text protocol, values escaped by the
// client) for the parameterised steps, with or without compression. Prints one JSON line per
// step: what was sent and the answer seen (rows hashed).
//
// node session.js HOST PORT USER DB execute|query compress|plain SPEC
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const mysql = require('mysql2/promise');

const [host, port, user, db, mode, compression, specPath] = process.argv.slice(2);

function pattern(len) {
  // The same bytes in every client: byte i is (i * 31 + 7) mod 256 (holds 0x00 and 0xFF).
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i++) b[i] = (i * 31 + 7) % 256;
  return b;
}

function value(p) {
  const at = p.indexOf(':');
  const type = p.slice(0, at);
  const v = p.slice(at + 1);
  switch (type) {
    case 'int': return Number(v);
    case 'uint': return BigInt(v);
    case 'dec': return v;
    case 'dbl': return Number(v);
    case 'dt': return new Date(v.replace(' ', 'T') + 'Z');
    case 'str': return v;
    case 'null': return null;
    case 'hex': return Buffer.from(v, 'hex');
    case 'pattern':
    case 'streampattern': return pattern(Number(v));
    default: throw new Error('unknown parameter type ' + type);
  }
}

function describe(p) {
  const at = p.indexOf(':');
  return { type: p.slice(0, at), value: p.slice(at + 1) };
}

function text(v) {
  if (v === null || v === undefined) return 'NULL';
  if (Buffer.isBuffer(v)) return 'x' + v.toString('hex');
  if (v instanceof Date) return v.toISOString();
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

function answerOf(result, fields) {
  if (Array.isArray(result)) {
    const h = crypto.createHash('sha256');
    for (const row of result) {
      h.update(row.map(text).join('\x1f'));
      h.update('\x1e');
    }
    return {
      error: null,
      columns: (fields || []).map((f) => ({ name: f.name, type: f.columnType })),
      rows: result.length,
      hash: h.digest('hex'),
    };
  }
  return {
    error: null,
    affected: result.affectedRows,
    insert_id: result.insertId,
    warnings: result.warningStatus,
  };
}

function errorOf(e) {
  if (e && e.errno) return { error: e.errno, sqlstate: e.sqlState };
  throw e;
}

async function main() {
  const pool = mysql.createPool({
    host, port: Number(port), user, database: db,
    connectionLimit: 4, compress: compression === 'compress', timezone: 'Z',
    supportBigNumbers: true, bigNumberStrings: true, dateStrings: true, rowsAsArray: true,
    multipleStatements: false,
  });
  const lines = fs.readFileSync(specPath, 'utf8').split('\n').filter((l) => l && !l.startsWith('#'));
  let conn = await pool.getConnection();
  for (const line of lines) {
    const [name, kind, flags, sqlTemplate, ...params] = line.split('\t');
    const sql = (sqlTemplate || '').replace('{db}', db);
    const out = { step: name, kind, probe: flags.split(',').includes('probe') };
    if (kind === 'begin') { await conn.beginTransaction(); console.log(JSON.stringify(out)); continue; }
    if (kind === 'commit') { await conn.commit(); console.log(JSON.stringify(out)); continue; }
    if (kind === 'rollback') { await conn.rollback(); console.log(JSON.stringify(out)); continue; }
    if (kind === 'swap') {
      // A second pool connection carries the rest of the session.
      const next = await pool.getConnection();
      conn.release();
      conn = next;
      await conn.query(`USE ${db}`);
      console.log(JSON.stringify(out));
      continue;
    }
    const values = params.map(value);
    out.params = params.map(describe);
    try {
      let res;
      if (kind === 'prep' && mode === 'execute') {
        out.protocol = 'binary';
        out.sent = sql;
        res = await conn.execute({ sql, rowsAsArray: true }, values);
      } else {
        out.protocol = 'text';
        out.sent = kind === 'prep' ? conn.format(sql, values) : sql;
        res = await conn.query({ sql: out.sent, rowsAsArray: true });
      }
      out.answer = answerOf(res[0], res[1]);
    } catch (e) {
      out.answer = errorOf(e);
    }
    console.log(JSON.stringify(out));
  }
  conn.release();
  await pool.end();
}

main().catch((e) => { console.error(e); process.exit(1); });
