//! Response state: what the server is answering (the front of the queue of expected
//! answers), read packet by packet, and the summary of each complete answer (OK, ERR, a
//! result set with its column definitions and row hashes, a prepare answer).

use mysql_common::constants::{ColumnType, StatusFlags};
use mysql_common::io::ParseBuf;
use mysql_common::packets::{
    Column, CommonOkPacket, ErrPacket, OkPacketDeserializer, ResultSetTerminator, StmtPacket,
};
use serde::Serialize;

use super::{lenenc, text, Event, Session, Statement};

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

/// What the server is answering.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Awaiting {
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

/// The protocol's name of a column type code (`MYSQL_TYPE_LONG`), as `mysql_common` spells it.
pub fn type_name(code: u8) -> String {
    match ColumnType::try_from(code) {
        Ok(t) => format!("{t:?}"),
        Err(_) => format!("MYSQL_TYPE_{code}"),
    }
}

impl Session {
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

    pub(super) fn on_response(&mut self, p: &[u8], out: &mut Vec<Event>) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
