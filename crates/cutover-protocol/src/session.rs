//! One connection, decoded passively from both directions: the handshake, then each
//! command and a summary of its response.
//!
//! Feed the client's bytes with [`Session::client`] and the server's with
//! [`Session::server`], in the order they were seen (a proxy relays them; a packet capture
//! reassembles them); each returns the [`Event`]s the bytes completed. Packet bodies are
//! parsed with `mysql_common` (the handshake, OK/ERR, column definitions, prepared
//! statements); this module keeps the conversation's state: capabilities, the command whose
//! response is coming, result sets and multi-results, prepared statements' parameter counts,
//! the switch to the compressed protocol, and a switch to TLS (after which nothing can be
//! decoded: the session says so). A packet it cannot parse marks the session and is
//! skipped; decoding never panics and never stops the bytes.

use std::collections::HashMap;

use mysql_common::constants::{CapabilityFlags, ColumnType, StatusFlags};
use mysql_common::io::ParseBuf;
use mysql_common::packets::{
    Column, CommonOkPacket, ErrPacket, HandshakePacket, HandshakeResponse, OkPacketDeserializer,
    ResultSetTerminator, StmtPacket,
};
use serde::Serialize;

use crate::framing::{CompressedReader, FrameError, PacketReader};

/// A client command, as far as a workload needs it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Command {
    Query {
        sql: String,
    },
    InitDb {
        db: String,
    },
    Prepare {
        sql: String,
    },
    /// `params`: each parameter's type and value as text (`None`: NULL); empty when the
    /// statement's parameter count is unknown (prepared before the capture began).
    Execute {
        stmt_id: u32,
        params: Vec<Param>,
    },
    SendLongData {
        stmt_id: u32,
        param: u16,
        bytes: usize,
    },
    Close {
        stmt_id: u32,
    },
    ResetStmt {
        stmt_id: u32,
    },
    ChangeUser {
        user: String,
        db: Option<String>,
    },
    ResetConnection,
    Ping,
    Quit,
    /// Anything else (by command byte): relayed, not interpreted.
    Other {
        code: u8,
    },
}

/// A parameter's type as bound: the type code and whether it is unsigned.
type ParamType = (u8, bool);

/// A bound parameter of `COM_STMT_EXECUTE`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Param {
    /// The MySQL type code (`MYSQL_TYPE_*`).
    pub type_code: u8,
    pub unsigned: bool,
    /// The value as SQL text would write it; `None` is NULL.
    pub value: Option<String>,
}

/// A column definition, as a driver sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ColumnDef {
    pub name: String,
    pub type_code: u8,
    pub flags: u16,
    pub decimals: u8,
    pub charset: u16,
}

/// The server's answer to one command (one result of a multi-result).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Response {
    Ok {
        affected_rows: u64,
        last_insert_id: u64,
        status: u16,
        warnings: u16,
        info: String,
        /// Session-state changes the server reported (session tracking), rendered by
        /// [`session_state`].
        session_state: Vec<String>,
    },
    Err {
        code: u16,
        state: String,
        message: String,
    },
    ResultSet {
        columns: Vec<ColumnDef>,
        rows: u64,
        /// A hash of the rows in order, and the sum of each row's xxh3 (order-free).
        ordered_hash: u64,
        multiset_hash: u64,
        status: u16,
        warnings: u16,
        /// Whether the rows came in the binary protocol (a prepared statement).
        binary: bool,
    },
    Prepared {
        stmt_id: u32,
        params: u16,
        columns: Vec<ColumnDef>,
        warnings: u16,
    },
    /// `LOAD DATA LOCAL INFILE`: the server asked the client for a file.
    LocalInfile { file: String },
}

impl Response {
    /// Whether another result of the same command follows.
    pub fn more_results(&self) -> bool {
        let status = match self {
            Response::Ok { status, .. } | Response::ResultSet { status, .. } => *status,
            _ => 0,
        };
        StatusFlags::from_bits_truncate(status).contains(StatusFlags::SERVER_MORE_RESULTS_EXISTS)
    }
}

/// What a session saw.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The server's greeting.
    Greeting {
        server_version: String,
        connection_id: u32,
    },
    /// The client's handshake response: who logs in, to which database.
    Login {
        user: String,
        db: Option<String>,
        compress: bool,
    },
    /// Authentication ended (`ok` false: refused).
    Authenticated {
        ok: bool,
    },
    /// The client asked for TLS: nothing after this can be decoded.
    Tls,
    Command(Command),
    Response(Response),
    /// A packet that could not be decoded, and why; decoding goes on with the next command.
    Undecodable {
        from_client: bool,
        reason: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Greeting,
    HandshakeResponse,
    Auth,
    Commands,
    Tls,
}

/// What the server is answering.
#[derive(Clone, Debug, PartialEq)]
enum Awaiting {
    Nothing,
    /// OK, ERR, a result set (text or binary) or LOCAL INFILE.
    Results {
        binary: bool,
    },
    /// A result set in progress.
    Columns {
        binary: bool,
        left: u64,
        columns: Vec<ColumnDef>,
    },
    ColumnsEof {
        binary: bool,
        columns: Vec<ColumnDef>,
    },
    Rows {
        binary: bool,
        columns: Vec<ColumnDef>,
        rows: u64,
        ordered: u64,
        multiset: u64,
    },
    /// `COM_STMT_PREPARE`: the OK, then parameter and column definitions.
    Prepare,
    PrepareDefs {
        stmt: (u32, u16, u16, u16),
        params_left: u16,
        columns_left: u16,
        columns: Vec<ColumnDef>,
        eofs_left: u8,
    },
    /// A single OK or ERR.
    OkOrErr,
    /// A string (`COM_STATISTICS`) or anything not interpreted: skipped until the next command.
    Skip,
}

/// One side of the wire, with its framing.
#[derive(Debug, Default)]
struct Direction {
    packets: PacketReader,
    compressed: Option<CompressedReader>,
}

impl Direction {
    fn push(&mut self, bytes: &[u8]) -> Result<(), FrameError> {
        match self.compressed.as_mut() {
            Some(c) => {
                c.push(bytes);
                let inflated = c.drain()?;
                self.packets.push(&inflated);
            }
            None => self.packets.push(bytes),
        }
        Ok(())
    }
}

/// The decoder of one connection.
#[derive(Debug)]
pub struct Session {
    phase: Phase,
    caps: CapabilityFlags,
    server_caps: CapabilityFlags,
    compress_after_auth: bool,
    client: Direction,
    server: Direction,
    awaiting: Awaiting,
    /// Prepared statements: id → parameter count, and the parameter types the driver bound
    /// last (an execute resends them only when they change).
    statements: HashMap<u32, (u16, Option<Vec<ParamType>>)>,
    /// Undecodable packets so far.
    pub problems: u64,
    /// Whether the handshake was seen (a capture that began mid-session did not).
    pub saw_handshake: bool,
    /// Whether the client's `CLIENT_DEPRECATE_EOF` is unknown (mid-stream): EOF packets are
    /// then taken where they come and never waited for.
    eof_unknown: bool,
}

impl Default for Session {
    fn default() -> Self {
        Session::new()
    }
}

fn lenenc(buf: &[u8]) -> Option<(u64, usize)> {
    match *buf.first()? {
        x @ 0..=0xFA => Some((u64::from(x), 1)),
        0xFC => Some((
            u64::from(u16::from_le_bytes(buf.get(1..3)?.try_into().ok()?)),
            3,
        )),
        0xFD => {
            let b = buf.get(1..4)?;
            Some((
                u64::from(b[0]) | u64::from(b[1]) << 8 | u64::from(b[2]) << 16,
                4,
            ))
        }
        0xFE => Some((u64::from_le_bytes(buf.get(1..9)?.try_into().ok()?), 9)),
        _ => None,
    }
}

/// A column definition; MariaDB's extended metadata (a length-encoded string after
/// `org_name`, sent to clients with `MARIADB_CLIENT_EXTENDED_METADATA`, e.g. libmariadb's
/// `mariadb` client) is skipped.
fn parse_column(p: &[u8]) -> std::io::Result<Column> {
    let first = ParseBuf(p).parse::<Column>(());
    if first.is_ok() {
        return first;
    }
    // catalog, schema, table, org_table, name, org_name
    let mut at = 0usize;
    for _ in 0..6 {
        let Some((n, used)) = p.get(at..).and_then(lenenc) else {
            return first;
        };
        at = at.saturating_add(used).saturating_add(n as usize);
    }
    match p.get(at) {
        Some(0x0c) | None => first,
        Some(_) => {
            let Some((n, used)) = p.get(at..).and_then(lenenc) else {
                return first;
            };
            let Some(rest) = p.get(at.saturating_add(used).saturating_add(n as usize)..) else {
                return first;
            };
            let mut plain = p[..at].to_vec();
            plain.extend_from_slice(rest);
            ParseBuf(&plain).parse::<Column>(())
        }
    }
}

fn column_def(c: &Column) -> ColumnDef {
    ColumnDef {
        name: c.name_str().into_owned(),
        type_code: c.column_type() as u8,
        flags: c.flags().bits(),
        decimals: c.decimals(),
        charset: c.character_set(),
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl Session {
    /// A session seen from its start (the server's greeting comes first).
    pub fn new() -> Session {
        Session {
            phase: Phase::Greeting,
            caps: CapabilityFlags::empty(),
            server_caps: CapabilityFlags::empty(),
            compress_after_auth: false,
            client: Direction::default(),
            server: Direction::default(),
            awaiting: Awaiting::Nothing,
            statements: HashMap::new(),
            problems: 0,
            saw_handshake: false,
            eof_unknown: false,
        }
    }

    /// A session whose handshake the capture missed: commands are decoded with the usual
    /// capabilities of current clients (protocol 4.1, deprecated EOF unknown: both handled).
    pub fn mid_stream() -> Session {
        let mut s = Session::new();
        s.phase = Phase::Commands;
        s.caps = CapabilityFlags::CLIENT_PROTOCOL_41
            | CapabilityFlags::CLIENT_TRANSACTIONS
            | CapabilityFlags::CLIENT_SECURE_CONNECTION
            | CapabilityFlags::CLIENT_MULTI_RESULTS
            | CapabilityFlags::CLIENT_PS_MULTI_RESULTS;
        s.eof_unknown = true;
        s
    }

    /// Whether the connection switched to TLS (nothing more can be decoded).
    pub fn encrypted(&self) -> bool {
        self.phase == Phase::Tls
    }

    /// Bytes from the client.
    pub fn client(&mut self, bytes: &[u8]) -> Vec<Event> {
        let mut out = Vec::new();
        if self.phase == Phase::Tls {
            return out;
        }
        if let Err(e) = self.client.push(bytes) {
            self.problem(&mut out, true, e.to_string());
            self.client = Direction::default();
            return out;
        }
        loop {
            match self.client.packets.next_packet() {
                Ok(Some(p)) => self.on_client(&p.payload, &mut out),
                Ok(None) => break,
                Err(e) => {
                    self.problem(&mut out, true, e.to_string());
                    self.client.packets = PacketReader::default();
                    break;
                }
            }
            if self.phase == Phase::Tls {
                break;
            }
        }
        out
    }

    /// Bytes from the server.
    pub fn server(&mut self, bytes: &[u8]) -> Vec<Event> {
        let mut out = Vec::new();
        if self.phase == Phase::Tls {
            return out;
        }
        if let Err(e) = self.server.push(bytes) {
            self.problem(&mut out, false, e.to_string());
            self.server = Direction::default();
            return out;
        }
        loop {
            match self.server.packets.next_packet() {
                Ok(Some(p)) => self.on_server(&p.payload, &mut out),
                Ok(None) => break,
                Err(e) => {
                    self.problem(&mut out, false, e.to_string());
                    self.server.packets = PacketReader::default();
                    break;
                }
            }
        }
        out
    }

    fn problem(&mut self, out: &mut Vec<Event>, from_client: bool, reason: String) {
        self.problems += 1;
        out.push(Event::Undecodable {
            from_client,
            reason,
        });
    }

    fn deprecate_eof(&self) -> bool {
        self.caps.contains(CapabilityFlags::CLIENT_DEPRECATE_EOF)
    }

    fn on_client(&mut self, p: &[u8], out: &mut Vec<Event>) {
        match self.phase {
            Phase::Greeting => {
                // The client spoke first: the capture missed the greeting.
                self.phase = Phase::Commands;
                self.caps = Session::mid_stream().caps;
                self.eof_unknown = true;
                self.on_client(p, out);
            }
            Phase::HandshakeResponse => {
                // An SSL request is the first 32 bytes of a response, with CLIENT_SSL.
                let caps = p
                    .get(..4)
                    .and_then(|b| b.try_into().ok())
                    .map(u32::from_le_bytes)
                    .map(CapabilityFlags::from_bits_truncate)
                    .unwrap_or_else(CapabilityFlags::empty);
                if caps.contains(CapabilityFlags::CLIENT_SSL) && p.len() == 32 {
                    self.phase = Phase::Tls;
                    out.push(Event::Tls);
                    return;
                }
                match ParseBuf(p).parse::<HandshakeResponse<'_>>(()) {
                    Ok(r) => {
                        self.caps = r.capabilities() & self.server_caps_or_all();
                        let compress = self.caps.contains(CapabilityFlags::CLIENT_COMPRESS);
                        self.compress_after_auth = compress;
                        out.push(Event::Login {
                            user: text(r.user()),
                            db: r.db_name().map(text),
                            compress,
                        });
                        self.phase = Phase::Auth;
                    }
                    Err(e) => {
                        self.problem(out, true, format!("handshake response: {e}"));
                        self.phase = Phase::Auth;
                    }
                }
            }
            // Auth switch responses, passwords, public-key requests: not recorded.
            Phase::Auth => {}
            Phase::Tls => {}
            Phase::Commands => self.on_command(p, out),
        }
    }

    fn server_caps_or_all(&self) -> CapabilityFlags {
        if self.server_caps.is_empty() {
            CapabilityFlags::all()
        } else {
            self.server_caps
        }
    }

    fn on_command(&mut self, p: &[u8], out: &mut Vec<Event>) {
        let Some((&code, body)) = p.split_first() else {
            self.problem(out, true, "an empty command packet".into());
            return;
        };
        let u32_at = |b: &[u8], at: usize| {
            b.get(at..at + 4)
                .and_then(|x| x.try_into().ok())
                .map(u32::from_le_bytes)
        };
        let (command, awaiting) = match code {
            0x01 => (Command::Quit, Awaiting::Nothing),
            0x02 => (Command::InitDb { db: text(body) }, Awaiting::OkOrErr),
            0x03 => (
                Command::Query { sql: text(body) },
                Awaiting::Results { binary: false },
            ),
            0x0E => (Command::Ping, Awaiting::OkOrErr),
            0x11 => {
                let user_end = body.iter().position(|&b| b == 0).unwrap_or(body.len());
                let user = text(&body[..user_end]);
                // After the user: the auth data (length-prefixed with 4.1), then the database.
                let rest = body.get(user_end + 1..).unwrap_or_default();
                let db = rest.first().and_then(|&n| {
                    let db = rest.get(1 + usize::from(n)..)?;
                    let end = db.iter().position(|&b| b == 0).unwrap_or(db.len());
                    (end > 0).then(|| text(&db[..end]))
                });
                self.phase = Phase::Auth;
                (Command::ChangeUser { user, db }, Awaiting::Nothing)
            }
            0x16 => (Command::Prepare { sql: text(body) }, Awaiting::Prepare),
            0x17 => {
                let Some(stmt_id) = u32_at(body, 0) else {
                    self.problem(out, true, "a short COM_STMT_EXECUTE".into());
                    return;
                };
                let params = self.execute_params(stmt_id, body);
                (
                    Command::Execute { stmt_id, params },
                    Awaiting::Results { binary: true },
                )
            }
            0x18 => {
                let stmt_id = u32_at(body, 0).unwrap_or(0);
                let param = body
                    .get(4..6)
                    .map(|b| u16::from_le_bytes([b[0], b[1]]))
                    .unwrap_or(0);
                (
                    Command::SendLongData {
                        stmt_id,
                        param,
                        bytes: body.len().saturating_sub(6),
                    },
                    Awaiting::Nothing,
                )
            }
            0x19 => {
                let stmt_id = u32_at(body, 0).unwrap_or(0);
                self.statements.remove(&stmt_id);
                (Command::Close { stmt_id }, Awaiting::Nothing)
            }
            0x1A => (
                Command::ResetStmt {
                    stmt_id: u32_at(body, 0).unwrap_or(0),
                },
                Awaiting::OkOrErr,
            ),
            0x1F => (Command::ResetConnection, Awaiting::OkOrErr),
            other => (Command::Other { code: other }, Awaiting::Skip),
        };
        if code == 0x11 {
            // The auth exchange of COM_CHANGE_USER ends with OK or ERR, like a login.
            self.awaiting = Awaiting::Nothing;
        } else {
            self.awaiting = awaiting;
        }
        out.push(Event::Command(command));
    }

    /// The parameters of `COM_STMT_EXECUTE` (types are sent when `new_params_bound`; a
    /// statement prepared before the capture began has an unknown count: none decoded).
    fn execute_params(&mut self, stmt_id: u32, body: &[u8]) -> Vec<Param> {
        let Some((n, bound)) = self.statements.get_mut(&stmt_id) else {
            return Vec::new();
        };
        let n = usize::from(*n);
        if n == 0 {
            return Vec::new();
        }
        // stmt_id 4, flags 1, iteration count 4, NULL bitmap, new_params_bound 1, types, values.
        let bitmap_len = n.div_ceil(8);
        let Some(bitmap) = body.get(9..9 + bitmap_len) else {
            return Vec::new();
        };
        let mut at = 9 + bitmap_len;
        let types: Vec<ParamType> = if body.get(at) == Some(&1) {
            at += 1;
            let Some(types) = body.get(at..at + 2 * n) else {
                return Vec::new();
            };
            at += 2 * n;
            let types: Vec<ParamType> = types
                .chunks_exact(2)
                .map(|t| (t[0], t[1] & 0x80 != 0))
                .collect();
            *bound = Some(types.clone());
            types
        } else {
            at += 1;
            match bound {
                Some(types) if types.len() == n => types.clone(),
                // Bound before the capture began: the values cannot be read.
                _ => return Vec::new(),
            }
        };
        let mut params = Vec::with_capacity(n);
        for (i, &(type_code, unsigned)) in types.iter().enumerate() {
            if bitmap[i / 8] & (1 << (i % 8)) != 0 {
                params.push(Param {
                    type_code,
                    unsigned,
                    value: None,
                });
                continue;
            }
            let Some((value, used)) =
                binary_value(&body[at.min(body.len())..], type_code, unsigned)
            else {
                return params;
            };
            at += used;
            params.push(Param {
                type_code,
                unsigned,
                value: Some(value),
            });
        }
        params
    }

    fn on_server(&mut self, p: &[u8], out: &mut Vec<Event>) {
        let first = p.first().copied();
        match self.phase {
            Phase::Greeting => match ParseBuf(p).parse::<HandshakePacket<'_>>(()) {
                Ok(h) => {
                    self.server_caps = h.capabilities();
                    self.saw_handshake = true;
                    out.push(Event::Greeting {
                        server_version: h.server_version_str().into_owned(),
                        connection_id: h.connection_id(),
                    });
                    self.phase = Phase::HandshakeResponse;
                }
                Err(e) => {
                    // Mid-stream: a server packet before any greeting is a response.
                    self.phase = Phase::Commands;
                    self.caps = Session::mid_stream().caps;
                    self.eof_unknown = true;
                    self.problem(out, false, format!("no greeting: {e}"));
                }
            },
            Phase::HandshakeResponse | Phase::Tls => {}
            Phase::Auth => match first {
                Some(0x00) => {
                    out.push(Event::Authenticated { ok: true });
                    self.phase = Phase::Commands;
                    if self.compress_after_auth {
                        self.compress_after_auth = false;
                        // Both directions are compressed from the next packet on; bytes that
                        // were already read past this packet are compressed frames too.
                        let mut failed = None;
                        for dir in [&mut self.client, &mut self.server] {
                            let mut c = CompressedReader::default();
                            c.push(&dir.packets.take_raw());
                            match c.drain() {
                                Ok(bytes) => dir.packets.push(&bytes),
                                Err(e) => failed = Some(e.to_string()),
                            }
                            dir.compressed = Some(c);
                        }
                        if let Some(e) = failed {
                            self.problem(out, false, e);
                        }
                    }
                }
                Some(0xFF) => {
                    out.push(Event::Authenticated { ok: false });
                    self.phase = Phase::Commands;
                }
                // Auth switch (0xFE), more data (0x01): the exchange goes on.
                _ => {}
            },
            Phase::Commands => self.on_response(p, out),
        }
    }

    fn ok(&self, p: &[u8], terminator: bool) -> Option<Response> {
        let caps = self.caps;
        let ok = if terminator {
            ParseBuf(p)
                .parse::<OkPacketDeserializer<'_, ResultSetTerminator>>(caps)
                .ok()?
                .into_inner()
        } else {
            ParseBuf(p)
                .parse::<OkPacketDeserializer<'_, CommonOkPacket>>(caps)
                .ok()?
                .into_inner()
        };
        Some(Response::Ok {
            affected_rows: ok.affected_rows(),
            last_insert_id: ok.last_insert_id().unwrap_or(0),
            status: ok.status_flags().bits(),
            warnings: ok.warnings(),
            info: ok.info_ref().map(text).unwrap_or_default(),
            session_state: session_state(&ok),
        })
    }

    fn err(&self, p: &[u8]) -> Option<Response> {
        match ParseBuf(p).parse::<ErrPacket<'_>>(self.caps).ok()? {
            ErrPacket::Error(e) => Some(Response::Err {
                code: e.error_code(),
                state: e
                    .sql_state_ref()
                    .map(|s| s.as_str().into_owned())
                    .unwrap_or_default(),
                message: e.message_str().into_owned(),
            }),
            // A progress report (MariaDB): not an answer.
            ErrPacket::Progress(_) => None,
        }
    }

    /// An EOF packet (`0xFE`, shorter than 9 bytes): warnings and status.
    fn eof(p: &[u8]) -> Option<(u16, u16)> {
        (p.first() == Some(&0xFE) && p.len() < 9 && p.len() >= 5).then(|| {
            (
                u16::from_le_bytes([p[1], p[2]]),
                u16::from_le_bytes([p[3], p[4]]),
            )
        })
    }

    fn emit(&mut self, out: &mut Vec<Event>, r: Response) {
        let more = r.more_results();
        self.awaiting = match (&self.awaiting, more) {
            (_, true) => Awaiting::Results {
                binary: matches!(r, Response::ResultSet { binary: true, .. }),
            },
            _ => Awaiting::Nothing,
        };
        out.push(Event::Response(r));
    }

    fn on_response(&mut self, p: &[u8], out: &mut Vec<Event>) {
        let first = p.first().copied();
        let awaiting = std::mem::replace(&mut self.awaiting, Awaiting::Nothing);
        match awaiting {
            Awaiting::Nothing | Awaiting::Skip => {
                self.awaiting = awaiting;
            }
            Awaiting::OkOrErr => {
                let r = match first {
                    Some(0x00) => self.ok(p, false),
                    Some(0xFF) => self.err(p),
                    _ => None,
                };
                match r {
                    Some(r) => self.emit(out, r),
                    None => self.problem(out, false, "expected OK or ERR".into()),
                }
            }
            Awaiting::Results { binary } => match first {
                Some(0x00) => match self.ok(p, false) {
                    Some(r) => self.emit(out, r),
                    None => self.problem(out, false, "a malformed OK".into()),
                },
                Some(0xFF) => match self.err(p) {
                    Some(r) => self.emit(out, r),
                    None => self.awaiting = Awaiting::Results { binary },
                },
                Some(0xFB) => {
                    self.emit(
                        out,
                        Response::LocalInfile {
                            file: text(&p[1..]),
                        },
                    );
                }
                // The column count; with MySQL's optional result set metadata or MariaDB's
                // metadata cache, one more byte says whether the definitions follow.
                _ => match lenenc(p) {
                    Some((n, used)) if n > 0 && p.len() <= used + 1 => {
                        let follow = p.get(used).is_none_or(|&b| b != 0);
                        self.awaiting = if follow {
                            Awaiting::Columns {
                                binary,
                                left: n,
                                columns: Vec::new(),
                            }
                        } else {
                            Awaiting::Rows {
                                binary,
                                columns: Vec::new(),
                                rows: 0,
                                ordered: 0,
                                multiset: 0,
                            }
                        };
                    }
                    _ => self.problem(out, false, "expected a result".into()),
                },
            },
            Awaiting::Columns {
                binary,
                left,
                mut columns,
            } => {
                match parse_column(p) {
                    Ok(c) => columns.push(column_def(&c)),
                    Err(e) => {
                        self.problem(out, false, format!("column definition: {e}"));
                        return;
                    }
                }
                self.awaiting = if left > 1 {
                    Awaiting::Columns {
                        binary,
                        left: left - 1,
                        columns,
                    }
                } else if self.deprecate_eof() {
                    Awaiting::Rows {
                        binary,
                        columns,
                        rows: 0,
                        ordered: 0,
                        multiset: 0,
                    }
                } else {
                    Awaiting::ColumnsEof { binary, columns }
                };
            }
            Awaiting::ColumnsEof { binary, columns } => {
                self.awaiting = Awaiting::Rows {
                    binary,
                    columns,
                    rows: 0,
                    ordered: 0,
                    multiset: 0,
                };
                if Session::eof(p).is_none() {
                    // No EOF after all (the flag was not seen): this is already a row.
                    self.on_response(p, out);
                }
            }
            Awaiting::Rows {
                binary,
                columns,
                rows,
                ordered,
                multiset,
            } => {
                // The end: EOF, or an OK with the EOF header (CLIENT_DEPRECATE_EOF), or ERR.
                let end = first == Some(0xFE) && p.len() < 0xFF_FFFF;
                if end {
                    let (warnings, status) = if self.deprecate_eof() {
                        match self.ok(p, true) {
                            Some(Response::Ok {
                                status, warnings, ..
                            }) => (warnings, status),
                            _ => Session::eof(p).unwrap_or_default(),
                        }
                    } else {
                        Session::eof(p).unwrap_or_default()
                    };
                    let r = Response::ResultSet {
                        columns,
                        rows,
                        ordered_hash: ordered,
                        multiset_hash: multiset,
                        status,
                        warnings,
                        binary,
                    };
                    self.emit(out, r);
                    return;
                }
                if first == Some(0xFF) {
                    // An error in the middle of the rows (no row starts with 0xFF: not a
                    // length prefix in text rows, and binary rows start with 0x00).
                    if let Some(r) = self.err(p) {
                        self.emit(out, r);
                        return;
                    }
                }
                // Each row's hash seeds the next: the order is part of `ordered`.
                let h = xxhash_rust::xxh3::xxh3_64(p);
                let ordered = xxhash_rust::xxh3::xxh3_64_with_seed(p, ordered ^ h);
                self.awaiting = Awaiting::Rows {
                    binary,
                    columns,
                    rows: rows + 1,
                    ordered,
                    multiset: multiset.wrapping_add(h),
                };
            }
            Awaiting::Prepare => match first {
                Some(0x00) => match ParseBuf(p).parse::<StmtPacket>(()) {
                    Ok(s) => {
                        let (id, cols, params) =
                            (s.statement_id(), s.num_columns(), s.num_params());
                        self.statements.insert(id, (params, None));
                        let eofs = if self.deprecate_eof() || self.eof_unknown {
                            0
                        } else {
                            u8::from(params > 0) + u8::from(cols > 0)
                        };
                        let stmt = (id, params, cols, s.warning_count());
                        if params == 0 && cols == 0 {
                            self.emit(
                                out,
                                Response::Prepared {
                                    stmt_id: id,
                                    params,
                                    columns: Vec::new(),
                                    warnings: stmt.3,
                                },
                            );
                        } else {
                            self.awaiting = Awaiting::PrepareDefs {
                                stmt,
                                params_left: params,
                                columns_left: cols,
                                columns: Vec::new(),
                                eofs_left: eofs,
                            };
                        }
                    }
                    Err(e) => self.problem(out, false, format!("prepare OK: {e}")),
                },
                Some(0xFF) => {
                    if let Some(r) = self.err(p) {
                        self.emit(out, r);
                    }
                }
                _ => self.problem(out, false, "expected the prepare OK".into()),
            },
            Awaiting::PrepareDefs {
                stmt,
                mut params_left,
                mut columns_left,
                mut columns,
                mut eofs_left,
            } => {
                // Definitions never start with 0xFE: an EOF-shaped packet is an EOF (when the
                // client's EOF capability is unknown, one not counted on).
                if Session::eof(p).is_some() {
                    eofs_left = eofs_left.saturating_sub(1);
                } else if params_left > 0 {
                    params_left -= 1;
                } else if columns_left > 0 {
                    columns_left -= 1;
                    if let Ok(c) = parse_column(p) {
                        columns.push(column_def(&c));
                    }
                }
                if params_left == 0 && columns_left == 0 && eofs_left == 0 {
                    self.emit(
                        out,
                        Response::Prepared {
                            stmt_id: stmt.0,
                            params: stmt.1,
                            columns,
                            warnings: stmt.3,
                        },
                    );
                } else {
                    self.awaiting = Awaiting::PrepareDefs {
                        stmt,
                        params_left,
                        columns_left,
                        columns,
                        eofs_left,
                    };
                }
            }
        }
    }
}

/// The protocol's name of a column type code (`MYSQL_TYPE_LONG`), as `mysql_common` spells it.
/// The session-state changes of an OK packet (session tracking: system variables, schema,
/// transaction state, …), one text each. The replayer renders its own answers with this
/// function too, so a recorded and a replayed change compare equal exactly when they are.
pub fn session_state(ok: &mysql_common::packets::OkPacket<'_>) -> Vec<String> {
    match ok.session_state_info() {
        Ok(infos) => infos
            .iter()
            .map(|i| match i.decode() {
                Ok(change) => format!("{change:?}"),
                Err(_) => format!("{:?} {}", i.data_type(), text(i.data_ref())),
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

pub fn type_name(code: u8) -> String {
    match ColumnType::try_from(code) {
        Ok(t) => format!("{t:?}"),
        Err(_) => format!("MYSQL_TYPE_{code}"),
    }
}

/// One binary-protocol value as SQL text, and the bytes it took.
fn binary_value(b: &[u8], type_code: u8, unsigned: bool) -> Option<(String, usize)> {
    use ColumnType::*;
    let t = ColumnType::try_from(type_code).ok()?;
    let int = |n: usize| -> Option<(String, usize)> {
        let bytes = b.get(..n)?;
        let mut v = [0u8; 8];
        v[..n].copy_from_slice(bytes);
        let u = u64::from_le_bytes(v);
        let s = if unsigned {
            u.to_string()
        } else {
            let shift = 64 - 8 * n as u32;
            (((u << shift) as i64) >> shift).to_string()
        };
        Some((s, n))
    };
    match t {
        MYSQL_TYPE_TINY => int(1),
        MYSQL_TYPE_SHORT | MYSQL_TYPE_YEAR => int(2),
        MYSQL_TYPE_LONG | MYSQL_TYPE_INT24 => int(4),
        MYSQL_TYPE_LONGLONG => int(8),
        MYSQL_TYPE_FLOAT => {
            let v = f32::from_le_bytes(b.get(..4)?.try_into().ok()?);
            Some((format!("{v:?}"), 4))
        }
        MYSQL_TYPE_DOUBLE => {
            let v = f64::from_le_bytes(b.get(..8)?.try_into().ok()?);
            Some((format!("{v:?}"), 8))
        }
        MYSQL_TYPE_NULL => Some((String::new(), 0)),
        MYSQL_TYPE_DATE | MYSQL_TYPE_DATETIME | MYSQL_TYPE_TIMESTAMP => {
            let n = usize::from(*b.first()?);
            let d = b.get(1..1 + n)?;
            let (y, mo, da) = if n >= 4 {
                (u16::from_le_bytes([d[0], d[1]]), d[2], d[3])
            } else {
                (0, 0, 0)
            };
            let mut s = format!("{y:04}-{mo:02}-{da:02}");
            if n >= 7 {
                s.push_str(&format!(" {:02}:{:02}:{:02}", d[4], d[5], d[6]));
            }
            if n >= 11 {
                let us = u32::from_le_bytes(d[7..11].try_into().ok()?);
                s.push_str(&format!(".{us:06}"));
            }
            Some((s, 1 + n))
        }
        MYSQL_TYPE_TIME => {
            let n = usize::from(*b.first()?);
            let d = b.get(1..1 + n)?;
            if n < 8 {
                return Some(("00:00:00".into(), 1 + n));
            }
            let neg = d[0] == 1;
            let days = u32::from_le_bytes(d[1..5].try_into().ok()?);
            let hours = days * 24 + u32::from(d[5]);
            let mut s = format!(
                "{}{hours:02}:{:02}:{:02}",
                if neg { "-" } else { "" },
                d[6],
                d[7]
            );
            if n >= 12 {
                let us = u32::from_le_bytes(d[8..12].try_into().ok()?);
                s.push_str(&format!(".{us:06}"));
            }
            Some((s, 1 + n))
        }
        // Strings, decimals, blobs, JSON, BIT, ENUM, SET: length-encoded bytes.
        _ => {
            let (len, used) = lenenc(b)?;
            let len = usize::try_from(len).ok()?;
            let v = b.get(used..used.checked_add(len)?)?;
            Some((text(v), used + len))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::encode_packet;
    use proptest::prelude::*;

    /// Mid-stream, whether the client asked for `CLIENT_DEPRECATE_EOF` is unknown: a prepare
    /// response decodes whether its definitions end with an EOF or not, and the next answer
    /// goes to the next command.
    #[test]
    fn mid_stream_prepare_with_or_without_eof() {
        for with_eof in [false, true] {
            let mut s = Session::mid_stream();
            let mut events = Vec::new();
            let mut prepare = vec![0x16];
            prepare.extend_from_slice(b"INSERT INTO t VALUES (?)");
            events.extend(s.client(&encode_packet(0, &prepare)));
            // OK, statement 7, 0 columns, 1 parameter, filler, 0 warnings.
            let ok = [0x00, 7, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0];
            let mut param = Vec::new();
            for x in ["def", "", "", "", "?", ""] {
                param.push(x.len() as u8);
                param.extend_from_slice(x.as_bytes());
            }
            param.extend_from_slice(&[0x0c, 63, 0, 0, 0, 0, 0, 0xfd, 0x80, 0, 0, 0, 0]);
            let mut server = encode_packet(1, &ok);
            server.extend(encode_packet(2, &param));
            if with_eof {
                server.extend(encode_packet(3, &[0xfe, 0, 0, 2, 0]));
            }
            events.extend(s.server(&server));
            events.extend(s.client(&encode_packet(0, &[0x0e])));
            events.extend(s.server(&encode_packet(1, &[0x00, 0, 0, 2, 0, 0, 0])));
            let kinds: Vec<String> = events
                .iter()
                .map(|e| match e {
                    Event::Command(c) => format!("{c:?}")
                        .split([' ', '{'])
                        .next()
                        .unwrap_or("")
                        .to_string(),
                    Event::Response(Response::Prepared { stmt_id, .. }) => {
                        format!("prepared {stmt_id}")
                    }
                    Event::Response(Response::Ok { .. }) => "ok".into(),
                    other => format!("{other:?}"),
                })
                .collect();
            assert_eq!(
                kinds,
                ["Prepare", "prepared 7", "Ping", "ok"],
                "with EOF: {with_eof}"
            );
        }
    }

    #[test]
    fn mariadb_extended_metadata_in_column_definitions_is_skipped() {
        let mut plain = Vec::new();
        for s in ["def", "db", "t", "t", "doc", "doc"] {
            plain.push(s.len() as u8);
            plain.extend_from_slice(s.as_bytes());
        }
        let fixed = [0x0c, 45, 0, 0xff, 0xff, 0xff, 0xff, 0xfc, 0x90, 0, 0, 0, 0];
        let mut extended = plain.clone();
        // type info: format name "json"
        extended.extend_from_slice(&[6, 1, 4, b'j', b's', b'o', b'n']);
        plain.extend_from_slice(&fixed);
        extended.extend_from_slice(&fixed);
        let a = column_def(&parse_column(&plain).unwrap());
        let b = column_def(&parse_column(&extended).unwrap());
        assert_eq!(a, b);
        assert_eq!((a.name.as_str(), a.type_code, a.charset), ("doc", 0xfc, 45));
        assert!(parse_column(&extended[..20]).is_err());
    }

    proptest! {
        /// Any bytes, in any order of directions, never panic the decoder.
        #[test]
        fn arbitrary_conversations_never_panic(
            chunks in proptest::collection::vec((any::<bool>(), proptest::collection::vec(any::<u8>(), 0..200)), 0..40),
            mid in any::<bool>(),
        ) {
            let mut s = if mid { Session::mid_stream() } else { Session::new() };
            for (client, bytes) in chunks {
                let _ = if client { s.client(&bytes) } else { s.server(&bytes) };
            }
        }

        /// Well-framed packets with arbitrary bodies, after a mid-stream start: the first
        /// client packet is a command event or an undecodable one; nothing panics.
        #[test]
        fn framed_garbage_is_reported_not_fatal(
            packets in proptest::collection::vec((any::<bool>(), proptest::collection::vec(any::<u8>(), 1..120)), 0..40),
        ) {
            let mut s = Session::mid_stream();
            let mut first_client = true;
            for (client, body) in packets {
                let wire = encode_packet(0, &body);
                let ev = if client { s.client(&wire) } else { s.server(&wire) };
                if client && first_client {
                    prop_assert!(!ev.is_empty());
                    first_client = false;
                }
            }
        }
    }

    #[test]
    fn binary_values_decode() {
        assert_eq!(binary_value(&[0xFF], 1, false), Some(("-1".into(), 1)));
        assert_eq!(binary_value(&[0xFF], 1, true), Some(("255".into(), 1)));
        assert_eq!(
            binary_value(&[3, b'a', b'b', b'c'], 253, false),
            Some(("abc".into(), 4))
        );
        assert_eq!(
            binary_value(&[4, 0xE8, 0x07, 1, 2], 10, false),
            Some(("2024-01-02".into(), 5))
        );
        assert_eq!(binary_value(&[5, b'a'], 253, false), None);
    }
}
