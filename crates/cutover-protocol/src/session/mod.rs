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
//!
//! - `command`: what the client sends: each command decoded (prepared statements'
//!   parameters in the binary protocol, long data, the statement prepared last), and what
//!   answer it expects.
//! - `response`: what the server sends back: the state of the answer in progress (OK,
//!   ERR, result sets text or binary, prepare answers) and the summary of each.
//! - This module: the handshake and authentication (with the switch to compression or
//!   TLS), the order in which the two directions' packets are read, and losing the pairing.

use std::collections::{HashMap, VecDeque};

use mysql_common::constants::CapabilityFlags;
use mysql_common::io::ParseBuf;
use mysql_common::packets::{HandshakePacket, HandshakeResponse};
use serde::Serialize;

use crate::framing::{CompressedReader, FrameError, Packet, PacketReader};

mod command;
mod response;
#[cfg(test)]
mod tests;

use command::{expects, ParamType};
pub use command::{Command, LAST_PREPARED};
use response::Awaiting;
pub use response::{session_state, type_name, ColumnDef, Response};

/// Which end of the connection bytes come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    Client,
    Server,
}

impl Peer {
    /// `client` or `server`, as reports and metrics name the two ends.
    pub fn name(self) -> &'static str {
        match self {
            Peer::Client => "client",
            Peer::Server => "server",
        }
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

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at.checked_add(4)?)
        .and_then(|x| x.try_into().ok())
        .map(u32::from_le_bytes)
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
        self.feed(Peer::Client, bytes)
    }

    /// Bytes from the server.
    pub fn server(&mut self, bytes: &[u8]) -> Vec<Event> {
        self.feed(Peer::Server, bytes)
    }

    /// Bytes from one end, in the order the two ends' bytes were seen; the events they
    /// completed.
    pub fn feed(&mut self, from: Peer, bytes: &[u8]) -> Vec<Event> {
        let mut out = Vec::new();
        if matches!(self.phase, Phase::Tls | Phase::Lost) {
            return out;
        }
        let direction = match from {
            Peer::Client => &mut self.client,
            Peer::Server => &mut self.server,
        };
        if let Err(e) = direction.push(bytes) {
            let reason = format!("a {} frame: {e}", from.name());
            self.lose(&mut out, from == Peer::Client, reason);
            return out;
        }
        match from {
            Peer::Client => self.read_client(&mut out),
            Peer::Server => self.read_server(&mut out),
        }
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

    /// The server's complete packets so far.
    fn read_server(&mut self, out: &mut Vec<Event>) {
        loop {
            if matches!(self.phase, Phase::Tls | Phase::Lost) {
                return;
            }
            match self.server.packets.next_packet() {
                Ok(Some(p)) => self.on_server(&p.payload, out),
                Ok(None) => return,
                Err(e) => {
                    self.lose(out, false, e.to_string());
                    return;
                }
            }
        }
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
}
