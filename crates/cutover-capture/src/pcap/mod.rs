//! A packet capture (pcap or pcapng, e.g. `tcpdump -w`) into workload records: every MySQL
//! connection to a server port reassembled ([`crate::tcp`]) and decoded by
//! [`cutover_protocol::Recorder`], with the packets' own times.
//!
//! - Link layers: Ethernet (with VLAN tags), Linux cooked capture v1 and v2 (`tcpdump -i
//!   any`), BSD loopback (`DLT_NULL`, `DLT_LOOP`), raw IP; IPv4 and IPv6 (by `etherparse`).
//!   IP fragments and other protocols are counted and skipped.
//! - The server of a connection is the endpoint on one of the ports given (3306 by default);
//!   when both are, the one the SYN went to. Every connection is a session of its own (ids
//!   from 1 in the order connections appear), whatever server it went to, so one file may
//!   hold several servers.
//! - A connection whose SYN the capture saw is decoded from its handshake (user, database,
//!   capabilities). One that began before the capture is decoded with
//!   [`Recorder::mid_stream`] from the first client segment that starts a command packet
//!   (length, sequence 0, a known command byte): its user and default database are unknown
//!   until a `COM_INIT_DB`/`COM_CHANGE_USER` (records carry no `db`), and statements it
//!   prepared before the capture are unknown: their executes are kept (with their
//!   parameters) and counted in [`PcapSummary::unknown_statement_executes`].
//! - The two directions reach the decoder in acknowledgement order (`pump`): data goes
//!   after the bytes of the other direction its segment acknowledged, so an answer captured
//!   before its request, or requests and answers around a loss, stay paired. Data that
//!   acknowledges bytes never seen waits for them 50 ms of capture time; then they are lost.
//! - A gap (bytes the capture lost, [`crate::tcp`] says when a hole is one) is reported with
//!   its connection, direction and length, and marks the session damaged. The decoder cannot
//!   know where packets start after a hole, so the session's decoder is retired (commands
//!   still waiting for their answers are recorded without them) and a fresh mid-stream
//!   decoder starts at the next client segment that starts a command, as for a connection
//!   that began before the capture; server bytes before it are skipped. The session keeps its
//!   id, so its commands stay on one connection on replay; its default database is unknown
//!   from then on (a `COM_INIT_DB` may have been lost in the hole).
//! - Memory: the file is streamed block by block; per connection, the decoder's state and at
//!   most `max_buffered` out-of-order bytes and 256 waiting pieces per direction; a
//!   connection is flushed and
//!   forgotten when it ends (FIN both ways, or RST).
//! - Order: records of one session are in the order of its commands. Across sessions they are
//!   written in time order within `reorder_window_us` (a command is recorded when its answer
//!   ends, so a long query's record would otherwise come after later commands of other
//!   sessions); at most `max_reorder` records wait.
//!
//! Nothing here panics on any bytes (property-tested).
//!
//! The parts: this module reads the file format (pcap and pcapng blocks, their link types
//! and times); `link` takes a packet's link, IP and TCP headers apart; `streams` keeps the
//! table of connections (which one a segment belongs to, when one ends); `connection` is one
//! connection's two reassembled directions fed to its decoder; `order` writes the records of
//! all sessions in time order.

use std::io::Read;

use cutover_workload::Record;
use pcap_parser::pcapng::Block;
use pcap_parser::{create_reader, Linktype, PcapBlockOwned, PcapError};
use serde::Serialize;

mod connection;
mod link;
mod order;
mod streams;
#[cfg(test)]
mod tests;

use streams::State;

/// What to capture.
#[derive(Clone, Debug)]
pub struct PcapOptions {
    /// Server ports.
    pub ports: Vec<u16>,
    /// Out-of-order bytes held per direction of a connection before a hole is given up.
    pub max_buffered: usize,
    /// How long (capture time) records wait to be put in time order across sessions.
    pub reorder_window_us: i64,
    /// Records waiting at most for that.
    pub max_reorder: usize,
}

impl Default for PcapOptions {
    fn default() -> Self {
        PcapOptions {
            ports: vec![3306],
            max_buffered: 4 << 20,
            reorder_window_us: 10_000_000,
            max_reorder: 100_000,
        }
    }
}

/// Gaps listed one by one in the summary; the rest are counted.
pub const LISTED_GAPS: usize = 100;

/// A hole in a connection's stream that the capture did not fill.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Gap {
    pub session: u64,
    pub client: String,
    pub server: String,
    /// `client` (client → server bytes) or `server`.
    pub from: &'static str,
    pub bytes: u64,
    /// When the hole was found (capture time, microseconds since the epoch).
    pub ts_us: i64,
}

/// What the capture held and what could not be recovered.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PcapSummary {
    pub packets: u64,
    /// TCP segments to or from a server port.
    pub segments: u64,
    /// Packets that are not TCP on a server port (other traffic, IP fragments, ARP, ...).
    pub other_packets: u64,
    /// Packets whose link or IP headers could not be read (or of a link type not read).
    pub undecodable_packets: u64,
    /// Link types met that are not read, by number.
    pub unsupported_link_types: Vec<i32>,
    /// TCP connections (each a session).
    pub connections: u64,
    /// Distinct server endpoints (address and port).
    pub servers: u64,
    /// Sessions that began before the capture (no handshake: user, database and earlier
    /// prepared statements unknown).
    pub mid_stream_sessions: u64,
    /// Sessions with at least one gap.
    pub damaged_sessions: u64,
    /// Sessions whose bytes could not be decoded, all or in part (TLS, corrupt packets).
    pub undecodable_sessions: u64,
    /// Connections in which no command could be decoded at all.
    pub sessions_without_commands: u64,
    pub gaps: u64,
    pub bytes_lost: u64,
    /// The first gaps ([`LISTED_GAPS`]).
    pub gap_list: Vec<Gap>,
    /// Bytes seen more than once (retransmissions, overlaps).
    pub duplicate_bytes: u64,
    /// Client and server bytes skipped while looking for a command to start decoding at
    /// (after a gap, or in a connection that began before the capture).
    pub skipped_bytes: u64,
    /// `COM_STMT_EXECUTE`s of statements not prepared within the capture.
    pub unknown_statement_executes: u64,
    /// Why reading stopped before the end of the file, if it did (a truncated or corrupt
    /// file: what was read before is kept).
    pub file_problem: Option<String>,
}

/// Why a capture could not run.
#[derive(Debug, thiserror::Error)]
pub enum PcapFailure<E> {
    #[error("{0}")]
    Input(InputError),
    #[error(transparent)]
    Sink(E),
}

/// Why the input is not a capture that can be read.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("the file is empty")]
    Empty,
    #[error("the file cannot be read")]
    Unreadable,
    #[error("not a pcap or pcapng file (no pcap header or pcapng section header)")]
    NotACapture,
}

/// The largest packet record accepted (a larger one means a corrupt file).
const MAX_BLOCK: usize = 16 << 20;

/// Reads `input` to the end, handing records to `sink` in the order described in the module
/// documentation.
pub fn capture<R, E>(
    input: R,
    opts: &PcapOptions,
    sink: impl FnMut(Record) -> Result<(), E>,
) -> Result<PcapSummary, PcapFailure<E>>
where
    R: Read + Send,
{
    let mut reader = match create_reader(1 << 20, input) {
        Ok(r) => r,
        Err(PcapError::Eof) => return Err(PcapFailure::Input(InputError::Empty)),
        Err(PcapError::ReadError) => return Err(PcapFailure::Input(InputError::Unreadable)),
        Err(_) => return Err(PcapFailure::Input(InputError::NotACapture)),
    };
    let mut state = State::new(opts.clone(), sink);
    let mut legacy_link = Linktype::ETHERNET;
    let mut legacy_nanos = false;
    // pcapng interfaces of the current section: link type, units per second, offset (s).
    let mut interfaces: Vec<(Linktype, u64, i64)> = Vec::new();
    let mut last_ts = 0i64;
    let mut capacity = 1 << 20;
    loop {
        let consumed = reader.consumed();
        match reader.next() {
            Ok((offset, block)) => {
                match block {
                    PcapBlockOwned::LegacyHeader(h) => {
                        legacy_link = h.network;
                        legacy_nanos = h.is_nanosecond_precision();
                    }
                    PcapBlockOwned::Legacy(b) => {
                        let frac = if legacy_nanos {
                            i64::from(b.ts_usec) / 1000
                        } else {
                            i64::from(b.ts_usec)
                        };
                        last_ts = i64::from(b.ts_sec) * 1_000_000 + frac;
                        state.packet(legacy_link, b.data, last_ts)?;
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(_)) => interfaces.clear(),
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        let res = idb.ts_resolution().filter(|r| *r > 0).unwrap_or(1_000_000);
                        interfaces.push((idb.linktype, res, idb.ts_offset()));
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        match interfaces.get(epb.if_id as usize) {
                            Some(&(link, res, off)) => {
                                let ts = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                                let us = (u128::from(ts) * 1_000_000 / u128::from(res))
                                    .min(i64::MAX as u128)
                                    as i64;
                                last_ts = us.saturating_add(off.saturating_mul(1_000_000));
                                let data = epb.data.get(..epb.caplen as usize).unwrap_or(epb.data);
                                state.packet(link, data, last_ts)?;
                            }
                            None => {
                                state.summary.packets += 1;
                                state.summary.undecodable_packets += 1;
                            }
                        }
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                        // No time of its own: the previous packet's.
                        match interfaces.first() {
                            Some(&(link, _, _)) => {
                                let len = (spb.origlen as usize).min(spb.data.len());
                                state.packet(link, &spb.data[..len], last_ts)?;
                            }
                            None => {
                                state.summary.packets += 1;
                                state.summary.undecodable_packets += 1;
                            }
                        }
                    }
                    PcapBlockOwned::NG(_) => {}
                }
                reader.consume(offset);
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::Incomplete(_)) => {
                if reader.reader_exhausted() {
                    state.summary.file_problem =
                        Some("the file ends in the middle of a packet record".into());
                    break;
                }
                if reader.refill().is_err() {
                    state.summary.file_problem = Some("a read failed".into());
                    break;
                }
            }
            Err(PcapError::UnexpectedEof) => {
                state.summary.file_problem =
                    Some("the file ends in the middle of a packet record".into());
                break;
            }
            Err(PcapError::BufferTooSmall) => {
                capacity *= 2;
                if capacity > MAX_BLOCK || !reader.grow(capacity) {
                    state.summary.file_problem = Some(format!(
                        "a packet record larger than {} MiB (a corrupt file?)",
                        MAX_BLOCK >> 20
                    ));
                    break;
                }
            }
            Err(e) => {
                state.summary.file_problem = Some(format!(
                    "unreadable data after {} bytes ({})",
                    consumed,
                    describe(&e)
                ));
                break;
            }
        }
    }
    state.finish()
}

fn describe(e: &PcapError<&[u8]>) -> String {
    match e {
        PcapError::NomError(_, k) => format!("{k:?}"),
        PcapError::OwnedNomError(_, k) => format!("{k:?}"),
        PcapError::HeaderNotRecognized => "a block of an unknown kind".into(),
        PcapError::ReadError => "a read failed".into(),
        _ => "a malformed block".into(),
    }
}
