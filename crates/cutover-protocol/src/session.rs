//! One connection, decoded passively from both directions: the handshake, then each
//! command and a summary of its response.
//!
//! Feed the client's bytes with [`Session::client`] and the server's with
//! [`Session::server`], in the order they were seen (a proxy relays them; a packet capture
//! reassembles them); each returns the [`Event`]s the bytes completed. Packet bodies are
//! parsed with `mysql_common` (the handshake, OK/ERR, column definitions, prepared
//! statements); this module keeps the conversation's state: capabilities, the answers still
//! to come, result sets and multi-results, prepared statements' parameter counts and long
//! data, the switch to the compressed protocol, and a switch to TLS (after which nothing can
//! be decoded: the session says so).
//!
//! # Pairing answers with commands
//!
//! A client may send its next commands before the answers to the previous ones (pipelining:
//! MariaDB Connector/J sends its session set-up queries back to back, and may send commands
//! before the authentication's OK); the server answers in order. So every command whose
//! answer the protocol defines appends what it expects to a queue, and server packets are
//! read against the front of that queue. A command starts with sequence id 0; client packets
//! with another sequence id continue the exchange in progress (the authentication, the file of
//! a `LOAD DATA LOCAL INFILE`) and are not commands, whichever direction the decoder saw
//! first. With compression negotiated, commands
//! sent before the login's OK are already compressed frames (the server switches both
//! directions right after its OK), so the client's bytes after the handshake response are
//! left unread until the authentication ends, except one plain packet for each request the
//! server makes during it (an auth switch, more data).
//!
//! A command that names a statement not yet known (MariaDB's statement id `0xFFFFFFFF`, "the
//! statement prepared last", or an id whose prepare is still unanswered) is decoded, with every
//! command after it, once the answers before it are in; its event then comes after those
//! answers (and its time is when it was decoded).
//!
//! When pairing can no longer be proven (a packet that does not parse, an answer the queue
//! does not expect, a command whose answer cannot be delimited, a broken frame), the session
//! reports one [`Event::Undecodable`] and decodes nothing more: answers are never guessed.
//! Decoding never panics and never stops the bytes.

use std::collections::{HashMap, VecDeque};

use cutover_workload::{Param, ParamValue};
use mysql_common::constants::{CapabilityFlags, ColumnType, StatusFlags};
use mysql_common::io::ParseBuf;
use mysql_common::packets::{
    Column, CommonOkPacket, ErrPacket, HandshakePacket, HandshakeResponse, OkPacketDeserializer,
    ResultSetTerminator, StmtPacket,
};
use serde::Serialize;

use crate::framing::{CompressedReader, FrameError, Packet, PacketReader};

/// MariaDB's statement id for "the statement prepared last" (pipelined prepare + execute).
pub const LAST_PREPARED: u32 = u32::MAX;

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
    /// `params`: each parameter with its wire type and value (values sent before with
    /// `COM_STMT_SEND_LONG_DATA` included); empty when the statement's parameter count is
    /// unknown (prepared before the capture began).
    Execute {
        stmt_id: u32,
        params: Vec<Param>,
    },
    SendLongData {
        stmt_id: u32,
        param: u16,
        bytes: usize,
    },
    /// `COM_STMT_FETCH`: more rows of an execute's cursor.
    Fetch {
        stmt_id: u32,
        rows: u32,
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
    /// Another command whose answer the decoder can delimit (`COM_STATISTICS`,
    /// `COM_FIELD_LIST`, `COM_SET_OPTION`, …): relayed, not interpreted. `answered`: a
    /// [`Response`] event will come for it (OK, ERR or a result set).
    Other {
        code: u8,
        answered: bool,
    },
}

/// A parameter's type as bound: the type code and whether it is unsigned.
type ParamType = (u8, bool);

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
    /// An authentication ended (`ok` false: refused): the login's, or `COM_CHANGE_USER`'s.
    Authenticated {
        ok: bool,
    },
    /// The client asked for TLS: nothing after this can be decoded.
    Tls,
    Command(Command),
    Response(Response),
    /// Something that could not be decoded, and why. `lost`: the pairing of answers with
    /// commands can no longer be proven, and the session decodes nothing more.
    Undecodable {
        from_client: bool,
        reason: String,
        lost: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Greeting,
    HandshakeResponse,
    Commands,
    Tls,
    /// Pairing lost: nothing more is decoded.
    Lost,
}

/// What the server is answering.
#[derive(Clone, Debug, PartialEq)]
enum Awaiting {
    Nothing,
    /// An authentication exchange: the login's, or `COM_CHANGE_USER`'s.
    Auth {
        change_user: bool,
    },
    /// OK, ERR, a result set (text or binary) or a LOCAL INFILE request.
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
    /// Any one packet, not interpreted (`COM_STATISTICS`' text, `COM_SET_OPTION`'s EOF).
    OnePacket,
    /// `COM_FIELD_LIST`: column definitions up to an EOF (or ERR), not interpreted.
    FieldList,
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

/// A prepared statement, as far as its executes need it.
#[derive(Debug)]
struct Statement {
    params: u16,
    /// The parameter types the driver bound last (an execute resends them only when they
    /// change).
    bound: Option<Vec<ParamType>>,
}

/// A command whose decoding waits for the answers before it (see the module doc).
#[derive(Debug)]
struct Held {
    payload: Vec<u8>,
    /// How many answers must be complete before it is decoded.
    after: u64,
}

/// The decoder of one connection.
#[derive(Debug)]
pub struct Session {
    phase: Phase,
    caps: CapabilityFlags,
    server_caps: CapabilityFlags,
    compress_after_auth: bool,
    /// While the login's auth exchange runs with compression pending: how many plain client
    /// packets the server has asked for and the decoder may read.
    auth_packets_allowed: u32,
    client: Direction,
    server: Direction,
    /// The answer in progress (or `Nothing`), then those of later commands, in order.
    awaiting: Awaiting,
    queue: VecDeque<Awaiting>,
    /// Answers expected so far (each command with an answer counts one) and completed.
    expected: u64,
    answered: u64,
    held: VecDeque<Held>,
    statements: HashMap<u32, Statement>,
    /// The statement the last successful prepare answered with.
    last_prepared: Option<u32>,
    /// `COM_STMT_SEND_LONG_DATA` so far, per (statement, parameter): that parameter's value at
    /// the statement's next execute.
    long_data: HashMap<(u32, u16), Vec<u8>>,
    /// Between a LOCAL INFILE request and the answer after the file: every client packet is
    /// the file (a client cannot send a command before it answers the request).
    infile: bool,
    /// A prepare answer just ended in a session whose EOF capability is unknown: an EOF may
    /// still follow its definitions.
    eof_may_follow: bool,
    /// Whether a command (or the login) was seen: server packets before, in a capture that
    /// began mid-session, belong to commands never seen.
    commands_seen: bool,
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

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at.checked_add(4)?)
        .and_then(|x| x.try_into().ok())
        .map(u32::from_le_bytes)
}

/// The answer a command expects, by its code (`None`: no answer; `Err`: an answer the decoder
/// cannot delimit).
fn expects(code: u8) -> Result<Option<Awaiting>, ()> {
    Ok(match code {
        // COM_QUIT, COM_STMT_SEND_LONG_DATA, COM_STMT_CLOSE: no answer.
        0x01 | 0x18 | 0x19 => None,
        // COM_QUERY, COM_PROCESS_INFO
        0x03 | 0x0A => Some(Awaiting::Results { binary: false }),
        // COM_STMT_EXECUTE, MariaDB's COM_STMT_BULK_EXECUTE
        0x17 | 0xFA => Some(Awaiting::Results { binary: true }),
        0x16 => Some(Awaiting::Prepare),
        0x11 => Some(Awaiting::Auth { change_user: true }),
        // COM_STMT_FETCH: binary rows and their end, no column definitions.
        0x1C => Some(Awaiting::Rows {
            binary: true,
            columns: Vec::new(),
            rows: 0,
            ordered: 0,
            multiset: 0,
        }),
        // COM_INIT_DB, COM_PING, COM_STMT_RESET, COM_RESET_CONNECTION, COM_CREATE_DB,
        // COM_DROP_DB, COM_REFRESH, COM_PROCESS_KILL, COM_REGISTER_SLAVE; and the commands
        // servers refuse with ERR (COM_SLEEP, COM_CONNECT, COM_TIME, COM_DELAYED_INSERT).
        0x02 | 0x0E | 0x1A | 0x1F | 0x05 | 0x06 | 0x07 | 0x0C | 0x15 | 0x00 | 0x0B | 0x0F
        | 0x10 => Some(Awaiting::OkOrErr),
        // COM_STATISTICS (text), COM_SHUTDOWN, COM_DEBUG, COM_SET_OPTION (EOF, OK or ERR).
        0x09 | 0x08 | 0x0D | 0x1B => Some(Awaiting::OnePacket),
        0x04 => Some(Awaiting::FieldList),
        // Binlog dumps (a stream), COM_TABLE_DUMP, COM_CONNECT_OUT, COM_DAEMON, …
        _ => return Err(()),
    })
}

impl Session {
    /// A session seen from its start (the server's greeting comes first).
    pub fn new() -> Session {
        Session {
            phase: Phase::Greeting,
            caps: CapabilityFlags::empty(),
            server_caps: CapabilityFlags::empty(),
            compress_after_auth: false,
            auth_packets_allowed: 0,
            client: Direction::default(),
            server: Direction::default(),
            awaiting: Awaiting::Nothing,
            queue: VecDeque::new(),
            expected: 0,
            answered: 0,
            held: VecDeque::new(),
            statements: HashMap::new(),
            last_prepared: None,
            long_data: HashMap::new(),
            infile: false,
            eof_may_follow: false,
            commands_seen: false,
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

    /// Whether pairing was lost (nothing more is decoded).
    pub fn lost(&self) -> bool {
        self.phase == Phase::Lost
    }

    /// Bytes from the client.
    pub fn client(&mut self, bytes: &[u8]) -> Vec<Event> {
        let mut out = Vec::new();
        if matches!(self.phase, Phase::Tls | Phase::Lost) {
            return out;
        }
        if let Err(e) = self.client.push(bytes) {
            self.lose(&mut out, true, format!("a client frame: {e}"));
            return out;
        }
        self.read_client(&mut out);
        out
    }

    /// The client's complete packets so far (those the decoder may read now).
    fn read_client(&mut self, out: &mut Vec<Event>) {
        loop {
            if matches!(self.phase, Phase::Tls | Phase::Lost) {
                return;
            }
            // Compression pending: what follows the login's packets may be compressed
            // frames, which only the end of the authentication tells.
            if self.compress_after_auth && self.phase == Phase::Commands {
                if self.auth_packets_allowed == 0 {
                    return;
                }
                self.auth_packets_allowed -= 1;
            }
            match self.client.packets.next_packet() {
                Ok(Some(p)) => self.on_client(p, out),
                Ok(None) => {
                    if self.compress_after_auth && self.phase == Phase::Commands {
                        self.auth_packets_allowed += 1;
                    }
                    return;
                }
                Err(e) => {
                    self.lose(out, true, e.to_string());
                    return;
                }
            }
        }
    }

    /// Bytes from the server.
    pub fn server(&mut self, bytes: &[u8]) -> Vec<Event> {
        let mut out = Vec::new();
        if matches!(self.phase, Phase::Tls | Phase::Lost) {
            return out;
        }
        if let Err(e) = self.server.push(bytes) {
            self.lose(&mut out, false, format!("a server frame: {e}"));
            return out;
        }
        loop {
            if matches!(self.phase, Phase::Tls | Phase::Lost) {
                break;
            }
            match self.server.packets.next_packet() {
                Ok(Some(p)) => self.on_server(&p.payload, &mut out),
                Ok(None) => break,
                Err(e) => {
                    self.lose(&mut out, false, e.to_string());
                    break;
                }
            }
        }
        out
    }

    /// Something not decoded that leaves the pairing intact (a greeting missed).
    fn problem(&mut self, out: &mut Vec<Event>, from_client: bool, reason: String) {
        self.problems += 1;
        out.push(Event::Undecodable {
            from_client,
            reason,
            lost: false,
        });
    }

    /// Pairing can no longer be proven: said once, then nothing more is decoded.
    fn lose(&mut self, out: &mut Vec<Event>, from_client: bool, reason: String) {
        self.problems += 1;
        self.phase = Phase::Lost;
        self.client = Direction::default();
        self.server = Direction::default();
        self.queue.clear();
        self.held.clear();
        self.long_data.clear();
        self.awaiting = Awaiting::Nothing;
        out.push(Event::Undecodable {
            from_client,
            reason,
            lost: true,
        });
    }

    fn deprecate_eof(&self) -> bool {
        self.caps.contains(CapabilityFlags::CLIENT_DEPRECATE_EOF)
    }

    fn on_client(&mut self, p: Packet, out: &mut Vec<Event>) {
        match self.phase {
            Phase::Greeting => {
                // The client spoke first: the capture missed the greeting.
                self.phase = Phase::Commands;
                self.caps = Session::mid_stream().caps;
                self.eof_unknown = true;
                self.on_client(p, out);
            }
            Phase::HandshakeResponse => {
                let p = &p.payload;
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
                        self.phase = Phase::Commands;
                        // Every server packet from here on answers something seen.
                        self.commands_seen = true;
                        self.expect(Awaiting::Auth { change_user: false });
                    }
                    Err(e) => self.lose(out, true, format!("handshake response: {e}")),
                }
            }
            Phase::Tls | Phase::Lost => {}
            Phase::Commands => {
                // Not a command: the continuation of the exchange in progress (auth data, a
                // LOCAL INFILE file), which may reach the decoder before the server packet it
                // answers (a proxy relays answers before decoding them). Compressed, the
                // packets inside frames keep their own sequence ids (every driver numbers
                // them as without compression; a command that did not start at 0 would leave
                // its answer unexpected, which is reported, never guessed).
                if self.infile || p.seq != 0 {
                    return;
                }
                self.commands_seen = true;
                let Some(&code) = p.payload.first() else {
                    self.lose(out, true, "an empty command packet".into());
                    return;
                };
                let expected = match expects(code) {
                    Ok(e) => e,
                    Err(()) => {
                        self.lose(
                            out,
                            true,
                            format!(
                                "command 0x{code:02X}, whose answer the decoder cannot delimit"
                            ),
                        );
                        return;
                    }
                };
                let after = self.expected;
                if let Some(a) = expected {
                    self.expect(a);
                }
                if !self.held.is_empty() || self.must_wait(&p.payload) {
                    self.held.push_back(Held {
                        payload: p.payload,
                        after,
                    });
                    return;
                }
                self.on_command(&p.payload, out);
            }
        }
    }

    /// Appends what the server will answer next.
    fn expect(&mut self, a: Awaiting) {
        self.expected += 1;
        if self.awaiting == Awaiting::Nothing && self.queue.is_empty() {
            self.awaiting = a;
        } else {
            self.queue.push_back(a);
        }
    }

    /// Whether a command names a statement whose prepare is still unanswered (see the module
    /// doc): its parameters cannot be read yet.
    fn must_wait(&self, p: &[u8]) -> bool {
        if !matches!(p.first(), Some(0x17 | 0x18 | 0x19 | 0x1A | 0x1C | 0xFA)) {
            return false;
        }
        let Some(id) = u32_at(p, 1) else {
            return false;
        };
        if id != LAST_PREPARED && self.statements.contains_key(&id) {
            return false;
        }
        matches!(
            self.awaiting,
            Awaiting::Prepare | Awaiting::PrepareDefs { .. }
        ) || self.queue.iter().any(|a| *a == Awaiting::Prepare)
    }

    /// The answer in progress is complete: the next one's turn; commands waiting for it are
    /// decoded.
    fn next_answer(&mut self, out: &mut Vec<Event>) {
        self.answered += 1;
        self.awaiting = self.queue.pop_front().unwrap_or(Awaiting::Nothing);
        while self.held.front().is_some_and(|h| h.after <= self.answered) {
            if let Some(h) = self.held.pop_front() {
                self.on_command(&h.payload, out);
            }
            if self.phase == Phase::Lost {
                return;
            }
        }
    }

    fn server_caps_or_all(&self) -> CapabilityFlags {
        if self.server_caps.is_empty() {
            CapabilityFlags::all()
        } else {
            self.server_caps
        }
    }

    /// A statement id as the server reads it.
    fn resolve(&self, id: u32) -> u32 {
        if id == LAST_PREPARED {
            self.last_prepared.unwrap_or(id)
        } else {
            id
        }
    }

    /// Decodes one command (its expected answer is already queued).
    fn on_command(&mut self, p: &[u8], out: &mut Vec<Event>) {
        let Some((&code, body)) = p.split_first() else {
            return;
        };
        let command = match code {
            0x01 => Command::Quit,
            0x02 => Command::InitDb { db: text(body) },
            0x03 => Command::Query { sql: text(body) },
            0x0E => Command::Ping,
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
                // The server closes the session's prepared statements.
                self.forget_statements();
                Command::ChangeUser { user, db }
            }
            0x16 => Command::Prepare { sql: text(body) },
            0x17 => {
                let Some(id) = u32_at(body, 0) else {
                    self.lose(out, true, "a short COM_STMT_EXECUTE".into());
                    return;
                };
                let stmt_id = self.resolve(id);
                let params = self.execute_params(stmt_id, body);
                Command::Execute { stmt_id, params }
            }
            0x18 => {
                let (Some(id), Some(param)) = (
                    u32_at(body, 0),
                    body.get(4..6).map(|b| u16::from_le_bytes([b[0], b[1]])),
                ) else {
                    self.lose(out, true, "a short COM_STMT_SEND_LONG_DATA".into());
                    return;
                };
                let stmt_id = self.resolve(id);
                let data = &body[6..];
                let value = self.long_data.entry((stmt_id, param)).or_default();
                if value.len().saturating_add(data.len()) > crate::framing::MAX_LOGICAL {
                    // Kept whole or not at all: a parameter value is never recorded cut.
                    self.lose(
                        out,
                        true,
                        "a parameter sent with COM_STMT_SEND_LONG_DATA larger than 1 GiB".into(),
                    );
                    return;
                }
                value.extend_from_slice(data);
                Command::SendLongData {
                    stmt_id,
                    param,
                    bytes: data.len(),
                }
            }
            0x19 => {
                let stmt_id = self.resolve(u32_at(body, 0).unwrap_or(0));
                self.statements.remove(&stmt_id);
                self.clear_long_data(stmt_id);
                Command::Close { stmt_id }
            }
            0x1A => {
                let stmt_id = self.resolve(u32_at(body, 0).unwrap_or(0));
                self.clear_long_data(stmt_id);
                Command::ResetStmt { stmt_id }
            }
            0x1C => Command::Fetch {
                stmt_id: self.resolve(u32_at(body, 0).unwrap_or(0)),
                rows: u32_at(body, 4).unwrap_or(0),
            },
            0x1F => {
                // The server closes the session's prepared statements.
                self.forget_statements();
                Command::ResetConnection
            }
            other => Command::Other {
                code: other,
                answered: matches!(
                    expects(other),
                    Ok(Some(Awaiting::Results { .. } | Awaiting::OkOrErr))
                ),
            },
        };
        out.push(Event::Command(command));
    }

    fn forget_statements(&mut self) {
        self.statements.clear();
        self.long_data.clear();
        self.last_prepared = None;
    }

    fn clear_long_data(&mut self, stmt_id: u32) {
        if !self.long_data.is_empty() {
            self.long_data.retain(|k, _| k.0 != stmt_id);
        }
    }

    /// The parameters of `COM_STMT_EXECUTE` (types are sent when `new_params_bound`; a
    /// statement prepared before the capture began has an unknown count: none decoded).
    /// A parameter sent with `COM_STMT_SEND_LONG_DATA` is not in the body: its value is the
    /// data sent (which the execute consumes).
    fn execute_params(&mut self, stmt_id: u32, body: &[u8]) -> Vec<Param> {
        let params = self.decode_params(stmt_id, body);
        self.clear_long_data(stmt_id);
        params
    }

    fn decode_params(&mut self, stmt_id: u32, body: &[u8]) -> Vec<Param> {
        let Some(Statement { params: n, bound }) = self.statements.get_mut(&stmt_id) else {
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
            if !self.long_data.is_empty() {
                if let Some(data) = u16::try_from(i)
                    .ok()
                    .and_then(|i| self.long_data.remove(&(stmt_id, i)))
                {
                    params.push(Param::new(type_code, unsigned, ParamValue::Bytes(data)));
                    continue;
                }
            }
            if bitmap[i / 8] & (1 << (i % 8)) != 0 {
                params.push(Param::new(type_code, unsigned, ParamValue::Null));
                continue;
            }
            let Some((value, used)) =
                binary_value(&body[at.min(body.len())..], type_code, unsigned)
            else {
                return params;
            };
            at += used;
            params.push(Param::new(type_code, unsigned, value));
        }
        params
    }

    fn on_server(&mut self, p: &[u8], out: &mut Vec<Event>) {
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
            Phase::HandshakeResponse => self.lose(
                out,
                false,
                "a server packet before the handshake response".into(),
            ),
            Phase::Tls | Phase::Lost => {}
            Phase::Commands => self.on_response(p, out),
        }
    }

    /// A packet of an authentication exchange.
    fn on_auth(&mut self, p: &[u8], change_user: bool, out: &mut Vec<Event>) {
        match p.first() {
            Some(0x00) => {
                out.push(Event::Authenticated { ok: true });
                if self.compress_after_auth && !change_user {
                    self.compress_after_auth = false;
                    self.auth_packets_allowed = 0;
                    // Both directions are compressed from the next packet on; bytes that
                    // were already read past this packet are compressed frames too (and so
                    // are commands the client sent before this OK).
                    let mut failed = None;
                    for dir in [&mut self.client, &mut self.server] {
                        let mut c = CompressedReader::default();
                        c.push(&dir.packets.take_raw());
                        match c.drain() {
                            Ok(bytes) => dir.packets.push(&bytes),
                            Err(e) => failed = Some(e),
                        }
                        dir.compressed = Some(c);
                    }
                    if let Some(e) = failed {
                        self.lose(out, false, format!("a compressed frame: {e}"));
                        return;
                    }
                    self.next_answer(out);
                    self.read_client(out);
                    return;
                }
                self.next_answer(out);
            }
            Some(0xFF) => {
                out.push(Event::Authenticated { ok: false });
                if change_user {
                    self.next_answer(out);
                } else {
                    // A refused login: the server closes the connection; nothing the
                    // client sent after its handshake response was run.
                    self.phase = Phase::Lost;
                }
            }
            // caching_sha2_password's "fast auth succeeded": the OK follows, the client
            // sends nothing.
            Some(0x01) if p == [0x01, 0x03] => {}
            // An auth switch (0xFE), more data (0x01): the client answers with one packet.
            _ => {
                if self.compress_after_auth {
                    self.auth_packets_allowed += 1;
                    self.read_client(out);
                }
            }
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

    /// One result is complete: the command's answer, or one of a multi-result.
    fn emit(&mut self, out: &mut Vec<Event>, r: Response) {
        let more = r.more_results();
        let binary = matches!(r, Response::ResultSet { binary: true, .. });
        out.push(Event::Response(r));
        if more {
            self.awaiting = Awaiting::Results { binary };
        } else {
            self.next_answer(out);
        }
    }

    fn on_response(&mut self, p: &[u8], out: &mut Vec<Event>) {
        let first = p.first().copied();
        self.infile = false;
        if std::mem::take(&mut self.eof_may_follow) && Session::eof(p).is_some() {
            return;
        }
        let awaiting = std::mem::replace(&mut self.awaiting, Awaiting::Nothing);
        match awaiting {
            Awaiting::Nothing => {
                // A server may send an ERR on its own before it closes a connection
                // (killed, shutting down); and a capture that began mid-session sees the end
                // of answers to commands it never saw.
                if first == Some(0xFF) || !self.commands_seen {
                    return;
                }
                self.lose(
                    out,
                    false,
                    format!(
                        "a server packet (0x{:02X}, {} bytes) no command was waiting for, \
                         after {} answers",
                        first.unwrap_or(0),
                        p.len(),
                        self.answered
                    ),
                );
            }
            Awaiting::Auth { change_user } => {
                self.awaiting = Awaiting::Auth { change_user };
                self.on_auth(p, change_user, out);
            }
            Awaiting::OkOrErr => {
                let r = match first {
                    Some(0x00) => self.ok(p, false),
                    Some(0xFF) => self.err(p),
                    _ => None,
                };
                match r {
                    Some(r) => self.emit(out, r),
                    None if first == Some(0xFF) => self.awaiting = Awaiting::OkOrErr,
                    None => self.lose(out, false, "expected OK or ERR".into()),
                }
            }
            Awaiting::OnePacket => self.next_answer(out),
            Awaiting::FieldList => {
                if first == Some(0xFF) || (first == Some(0xFE) && p.len() < 0xFF_FFFF) {
                    self.next_answer(out);
                } else {
                    self.awaiting = Awaiting::FieldList;
                }
            }
            Awaiting::Results { binary } => match first {
                Some(0x00) => match self.ok(p, false) {
                    Some(r) => self.emit(out, r),
                    None => self.lose(out, false, "a malformed OK".into()),
                },
                Some(0xFF) => match self.err(p) {
                    Some(r) => self.emit(out, r),
                    None => self.awaiting = Awaiting::Results { binary },
                },
                // LOAD DATA LOCAL INFILE: the client sends the file (packets with sequence
                // ids after this one's, then an empty one); the server then answers as to a
                // statement.
                Some(0xFB) => {
                    self.infile = true;
                    self.awaiting = Awaiting::Results { binary };
                }
                // The column count; with MySQL's optional result set metadata or MariaDB's
                // metadata cache, one more byte says whether the definitions follow.
                _ => match lenenc(p) {
                    Some((n, used)) if n > 0 && p.len() <= used + 1 => {
                        let follow = p.get(used).is_none_or(|&b| b != 0);
                        // Without the definitions, the EOF that ends them still comes
                        // (unless EOFs are deprecated).
                        self.awaiting = if follow {
                            Awaiting::Columns {
                                binary,
                                left: n,
                                columns: Vec::new(),
                            }
                        } else if !self.deprecate_eof() {
                            Awaiting::ColumnsEof {
                                binary,
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
                    _ => self.lose(out, false, "expected a result".into()),
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
                        self.lose(out, false, format!("column definition: {e}"));
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
                // An execute that opened a cursor ends here: its rows come with fetches.
                if let Some((warnings, status)) = Session::eof(p) {
                    if StatusFlags::from_bits_truncate(status)
                        .contains(StatusFlags::SERVER_STATUS_CURSOR_EXISTS)
                    {
                        let r = Response::ResultSet {
                            columns,
                            rows: 0,
                            ordered_hash: 0,
                            multiset_hash: 0,
                            status,
                            warnings,
                            binary,
                        };
                        self.emit(out, r);
                        return;
                    }
                }
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
                    match self.err(p) {
                        Some(r) => self.emit(out, r),
                        // A progress report.
                        None => {
                            self.awaiting = Awaiting::Rows {
                                binary,
                                columns,
                                rows,
                                ordered,
                                multiset,
                            }
                        }
                    }
                    return;
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
                        self.statements.insert(
                            id,
                            Statement {
                                params,
                                bound: None,
                            },
                        );
                        self.last_prepared = Some(id);
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
                    Err(e) => self.lose(out, false, format!("prepare OK: {e}")),
                },
                Some(0xFF) => match self.err(p) {
                    Some(r) => self.emit(out, r),
                    None => self.awaiting = Awaiting::Prepare,
                },
                _ => self.lose(out, false, "expected the prepare OK".into()),
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
                } else {
                    self.lose(out, false, "a prepare answer longer than announced".into());
                    return;
                }
                if params_left == 0 && columns_left == 0 && eofs_left == 0 {
                    self.eof_may_follow = self.eof_unknown;
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

/// One binary-protocol value with its wire type, and the bytes it took.
fn binary_value(b: &[u8], type_code: u8, unsigned: bool) -> Option<(ParamValue, usize)> {
    use ColumnType::*;
    let t = ColumnType::try_from(type_code).ok()?;
    let int = |n: usize| -> Option<(ParamValue, usize)> {
        let bytes = b.get(..n)?;
        let mut v = [0u8; 8];
        v[..n].copy_from_slice(bytes);
        let u = u64::from_le_bytes(v);
        let value = if unsigned {
            ParamValue::UInt(u)
        } else {
            let shift = 64 - 8 * n as u32;
            ParamValue::Int(((u << shift) as i64) >> shift)
        };
        Some((value, n))
    };
    match t {
        MYSQL_TYPE_TINY => int(1),
        MYSQL_TYPE_SHORT | MYSQL_TYPE_YEAR => int(2),
        MYSQL_TYPE_LONG | MYSQL_TYPE_INT24 => int(4),
        MYSQL_TYPE_LONGLONG => int(8),
        MYSQL_TYPE_FLOAT => Some((
            ParamValue::Float(u32::from_le_bytes(b.get(..4)?.try_into().ok()?)),
            4,
        )),
        MYSQL_TYPE_DOUBLE => Some((
            ParamValue::Double(u64::from_le_bytes(b.get(..8)?.try_into().ok()?)),
            8,
        )),
        MYSQL_TYPE_NULL => Some((ParamValue::Null, 0)),
        MYSQL_TYPE_DATE | MYSQL_TYPE_DATETIME | MYSQL_TYPE_TIMESTAMP => {
            let n = usize::from(*b.first()?);
            let d = b.get(1..1 + n)?;
            let at = |i: usize| d.get(i).copied().unwrap_or(0);
            let (year, micros) = (
                u16::from_le_bytes([at(0), at(1)]),
                if n >= 11 {
                    u32::from_le_bytes(d[7..11].try_into().ok()?)
                } else {
                    0
                },
            );
            let value = ParamValue::DateTime {
                year,
                month: at(2),
                day: at(3),
                hour: at(4),
                minute: at(5),
                second: at(6),
                micros,
            };
            Some((value, 1 + n))
        }
        MYSQL_TYPE_TIME => {
            let n = usize::from(*b.first()?);
            let d = b.get(1..1 + n)?;
            let at = |i: usize| d.get(i).copied().unwrap_or(0);
            let days = if n >= 5 {
                u32::from_le_bytes(d[1..5].try_into().ok()?)
            } else {
                0
            };
            let micros = if n >= 12 {
                u32::from_le_bytes(d[8..12].try_into().ok()?)
            } else {
                0
            };
            let value = ParamValue::Time {
                negative: at(0) == 1,
                days,
                hours: at(5),
                minutes: at(6),
                seconds: at(7),
                micros,
            };
            Some((value, 1 + n))
        }
        // Strings, decimals (their exact text), blobs, JSON, BIT, ENUM, SET: length-encoded
        // bytes, kept as bytes.
        _ => {
            let (len, used) = lenenc(b)?;
            let len = usize::try_from(len).ok()?;
            let v = b.get(used..used.checked_add(len)?)?;
            Some((ParamValue::Bytes(v.to_vec()), used + len))
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
        use ParamValue as V;
        assert_eq!(binary_value(&[0xFF], 1, false), Some((V::Int(-1), 1)));
        assert_eq!(binary_value(&[0xFF], 1, true), Some((V::UInt(255), 1)));
        assert_eq!(
            binary_value(&[3, b'a', b'b', b'c'], 253, false),
            Some((V::Bytes(b"abc".to_vec()), 4))
        );
        assert_eq!(
            binary_value(&[2, 0, 0xFF], 252, false),
            Some((V::Bytes(vec![0, 0xFF]), 3))
        );
        assert_eq!(
            binary_value(&1.0f64.to_le_bytes(), 5, false),
            Some((V::Double(1.0f64.to_bits()), 8))
        );
        assert_eq!(
            binary_value(&[4, 0xE8, 0x07, 1, 2], 10, false),
            Some((
                V::DateTime {
                    year: 2024,
                    month: 1,
                    day: 2,
                    hour: 0,
                    minute: 0,
                    second: 0,
                    micros: 0
                },
                5
            ))
        );
        assert_eq!(
            binary_value(
                &[11, 0xE8, 0x07, 1, 2, 3, 4, 5, 0x40, 0xE2, 0x01, 0],
                12,
                false
            ),
            Some((
                V::DateTime {
                    year: 2024,
                    month: 1,
                    day: 2,
                    hour: 3,
                    minute: 4,
                    second: 5,
                    micros: 123_456
                },
                12
            ))
        );
        assert_eq!(
            binary_value(&[12, 1, 2, 0, 0, 0, 3, 4, 5, 1, 0, 0, 0], 11, false),
            Some((
                V::Time {
                    negative: true,
                    days: 2,
                    hours: 3,
                    minutes: 4,
                    seconds: 5,
                    micros: 1
                },
                13
            ))
        );
        assert_eq!(binary_value(&[5, b'a'], 253, false), None);
    }
}
