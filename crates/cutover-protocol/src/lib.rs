//! A passive decoder of the MySQL client/server protocol, shared by `cutover proxy` (which
//! relays bytes unchanged and decodes a copy) and pcap capture (which reassembles TCP
//! streams first).
//!
//! - [`framing`]: packets out of a byte stream (16 MiB continuations, the compressed
//!   protocol).
//! - [`session`] (command decoding in `session/command.rs`, response state in
//!   `session/response.rs`): one connection's conversation: the handshake (server greeting, client
//!   response, the auth exchange whatever the plugin, a switch to TLS), then every command
//!   (`COM_QUERY`, `COM_INIT_DB`,
//!   `COM_STMT_PREPARE/EXECUTE/CLOSE/RESET/SEND_LONG_DATA/FETCH`, `COM_CHANGE_USER`,
//!   `COM_RESET_CONNECTION`, `COM_PING`, `COM_QUIT`, and the others whose answer can be
//!   delimited) and a summary of each response (OK/ERR with status flags and warnings, result
//!   sets text or binary with column definitions, row count and row hashes, multi-results,
//!   prepared statements, cursors, LOCAL INFILE exchanges), with commands pipelined before
//!   their predecessors' answers (even before the login's OK) paired in order.
//! - [`record`]: a decoded connection as workload records (`cutover-workload`).
//!
//! Nothing here panics on any input (property-tested): a packet it cannot parse becomes an
//! `Undecodable` event; when it leaves the pairing of answers with commands unproven, the
//! session stops decoding rather than guess.

pub mod framing;
pub mod record;
pub mod session;

pub use cutover_workload::{Param, ParamValue};
pub use framing::{encode_packet, FrameError, Packet, PacketReader};
pub use record::Recorder;
pub use session::{ColumnDef, Command, Event, Peer, Response, Session};

#[cfg(test)]
mod conversation_tests;
