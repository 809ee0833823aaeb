//! One decoded connection → workload records (`cutover-workload`): every command with its
//! response summary and latency. Shared by `cutover proxy` (times from the clock as bytes
//! pass) and pcap capture (times from the packets).
//!
//! Times are given by the caller with every slice of bytes, so a record's `ts_us` is when its
//! command's first bytes were seen and its latency runs to its answer's last bytes.

use std::collections::VecDeque;

use cutover_workload::{ColumnDef, Command, ErrorInfo, ParamValue, Record, Response};

use crate::session::{type_name, Command as WireCommand, Event, Peer, Response as Wire, Session};

/// `SERVER_STATUS_CURSOR_EXISTS`: the execute opened a cursor.
const CURSOR_EXISTS: u16 = 0x40;

/// A command waiting for its response.
struct Pending {
    command: Command,
    /// When it was sent; `None`: answered but not part of a workload (ping).
    ts_us: Option<i64>,
    response: Option<Response>,
}

/// Turns one connection's bytes into records.
pub struct Recorder {
    id: u64,
    session: Session,
    user: Option<String>,
    db: Option<String>,
    pending: VecDeque<Pending>,
    undecodable: Option<String>,
    began_mid_stream: bool,
    quit: bool,
    out: Vec<Record>,
    /// The result columns of each prepared statement, for executes whose result sets leave
    /// the metadata out (MariaDB's metadata cache, MySQL's optional metadata).
    prepared_columns: std::collections::HashMap<u32, Vec<ColumnDef>>,
    redact: bool,
}

impl Recorder {
    /// A connection seen from its start (the handshake).
    pub fn new(session_id: u64) -> Recorder {
        Recorder::with(session_id, Session::new(), false)
    }

    /// A connection whose handshake was not seen: user and database unknown, prepared
    /// statements prepared before the capture unknown.
    pub fn mid_stream(session_id: u64) -> Recorder {
        Recorder::with(session_id, Session::mid_stream(), true)
    }

    fn with(id: u64, session: Session, began_mid_stream: bool) -> Recorder {
        Recorder {
            id,
            session,
            user: None,
            db: None,
            pending: VecDeque::new(),
            undecodable: None,
            began_mid_stream,
            quit: false,
            out: Vec::new(),
            prepared_columns: std::collections::HashMap::new(),
            redact: false,
        }
    }

    /// Keeps literal values out of the records: statements with `?` for every literal,
    /// executes with `"?"` for every parameter that is not NULL, errors without messages.
    pub fn redacting(mut self, redact: bool) -> Recorder {
        self.redact = redact;
        self
    }

    /// Whether something in this connection could not be decoded (TLS, a corrupt packet).
    pub fn undecodable(&self) -> bool {
        self.undecodable.is_some()
    }

    /// Why, the first time something could not be decoded.
    pub fn undecodable_reason(&self) -> Option<&str> {
        self.undecodable.as_deref()
    }

    /// Whether the capture began after the connection did.
    pub fn began_mid_stream(&self) -> bool {
        self.began_mid_stream
    }

    /// Bytes from the client, seen at `ts_us`.
    pub fn client(&mut self, bytes: &[u8], ts_us: i64) {
        self.feed(Peer::Client, bytes, ts_us);
    }

    /// Bytes from the server, seen at `ts_us`.
    pub fn server(&mut self, bytes: &[u8], ts_us: i64) {
        self.feed(Peer::Server, bytes, ts_us);
    }

    /// Bytes from one end of the connection, seen at `ts_us`.
    pub fn feed(&mut self, from: Peer, bytes: &[u8], ts_us: i64) {
        let events = self.session.feed(from, bytes);
        self.events(events, ts_us);
    }

    /// The records completed so far (in order), taken out.
    pub fn take(&mut self) -> Vec<Record> {
        std::mem::take(&mut self.out)
    }

    /// The connection ended at `ts_us`: commands still waiting are recorded without an
    /// answer, and a client that vanished without `COM_QUIT` still ends its session.
    pub fn close(&mut self, ts_us: i64) {
        while let Some(p) = self.pending.pop_front() {
            if let Some(ts) = p.ts_us {
                if !matches!(p.command, Command::Connect) {
                    self.emit(p.command, ts, p.response);
                }
            }
        }
        if !self.quit && (self.user.is_some() || self.began_mid_stream) {
            self.quit = true;
            self.emit(Command::Quit, ts_us, None);
        }
    }

    fn emit(&mut self, mut command: Command, ts_us: i64, mut response: Option<Response>) {
        if self.redact {
            match &mut command {
                Command::Query { sql } | Command::Prepare { sql, .. } => {
                    *sql = cutover_workload::fingerprint::redact(sql);
                }
                Command::Execute { params, .. } => {
                    for p in params.iter_mut().filter(|p| !p.is_null()) {
                        p.value = ParamValue::Redacted;
                    }
                }
                _ => {}
            }
            if let Some(e) = response.as_mut().and_then(|r| r.error.as_mut()) {
                e.message = None;
            }
        }
        self.out.push(Record {
            session: self.id,
            ts_us,
            db: self.db.clone(),
            user: self.user.clone(),
            command,
            response,
        });
    }

    fn events(&mut self, events: Vec<Event>, ts_us: i64) {
        for e in events {
            match e {
                Event::Greeting { .. } => {}
                Event::Login { user, db, .. } => {
                    self.user = Some(user);
                    self.db = db;
                    self.pending.push_back(Pending {
                        command: Command::Connect,
                        ts_us: Some(ts_us),
                        response: None,
                    });
                }
                Event::Authenticated { ok } => {
                    let login = matches!(
                        self.pending.front(),
                        Some(Pending {
                            command: Command::Connect,
                            ..
                        })
                    );
                    if let Some(p) = self.pending.pop_front() {
                        let response = (!ok).then(|| Response {
                            error: Some(ErrorInfo {
                                code: 1045,
                                state: Some("28000".into()),
                                message: Some("access denied".into()),
                            }),
                            ..Response::default()
                        });
                        if let Some(ts) = p.ts_us {
                            self.emit(p.command, ts, response);
                        }
                    }
                    if login && !ok {
                        // The server closes the connection: commands the client sent after
                        // its handshake response never ran.
                        self.pending.clear();
                    }
                }
                Event::Tls => {
                    self.undecodable
                        .get_or_insert_with(|| "TLS (not terminated)".to_string());
                }
                Event::Undecodable {
                    from_client,
                    reason,
                    lost,
                } => {
                    self.undecodable.get_or_insert_with(|| {
                        let from = if from_client { "client" } else { "server" };
                        if lost {
                            format!("a {from} packet: {reason} (nothing recorded after it)")
                        } else {
                            format!("a {from} packet: {reason}")
                        }
                    });
                    if lost {
                        self.answers_lost();
                    }
                }
                Event::Command(c) => self.command(c, ts_us),
                Event::Response(r) => self.response(r, ts_us),
            }
        }
    }

    /// Pairing was lost: the commands still waiting are recorded without an answer (never
    /// with a guessed one), except prepares, whose statement id only their answer gives.
    fn answers_lost(&mut self) {
        while let Some(p) = self.pending.pop_front() {
            match (p.ts_us, &p.command) {
                (None, _) | (_, Command::Connect) => {}
                (Some(_), Command::Prepare { .. }) if p.response.is_none() => {}
                (Some(ts), _) => self.emit(p.command, ts, p.response),
            }
        }
    }

    fn command(&mut self, c: WireCommand, ts_us: i64) {
        use WireCommand as C;
        let wait = |command| Pending {
            command,
            ts_us: Some(ts_us),
            response: None,
        };
        match c {
            C::Query { sql } => self.pending.push_back(wait(Command::Query { sql })),
            C::InitDb { db } => self.pending.push_back(wait(Command::InitDb { db })),
            // The statement id comes with the response.
            C::Prepare { sql } => self
                .pending
                .push_back(wait(Command::Prepare { stmt: 0, sql })),
            C::Execute { stmt_id, params } => self.pending.push_back(wait(Command::Execute {
                stmt: stmt_id,
                params,
            })),
            C::Close { stmt_id } => {
                self.prepared_columns.remove(&stmt_id);
                self.emit(Command::Close { stmt: stmt_id }, ts_us, None)
            }
            C::ResetConnection => self.pending.push_back(wait(Command::Reset)),
            C::ChangeUser { user, db } => {
                self.user = Some(user);
                self.db = db;
                self.pending.push_back(wait(Command::ChangeUser));
            }
            C::Quit => {
                self.quit = true;
                self.emit(Command::Quit, ts_us, None);
            }
            // MariaDB's batch execute (Connector/J 3 with `useBulkStmts`): paired, but the
            // workload has no form for it, so the recording says it is incomplete.
            C::Other { code: 0xFA, .. } => {
                self.undecodable.get_or_insert_with(|| {
                    "COM_STMT_BULK_EXECUTE (a batch) is not recorded".to_string()
                });
                self.pending.push_back(Pending {
                    command: Command::Reset,
                    ts_us: None,
                    response: None,
                });
            }
            // Answered but not part of a workload: the answer is skipped.
            C::Ping | C::ResetStmt { .. } | C::Fetch { .. } | C::Other { answered: true, .. } => {
                self.pending.push_back(Pending {
                    command: Command::Reset,
                    ts_us: None,
                    response: None,
                })
            }
            C::SendLongData { .. }
            | C::Other {
                answered: false, ..
            } => {}
        }
    }

    fn response(&mut self, r: Wire, ts_us: i64) {
        let more = r.more_results();
        let Some(mut p) = self.pending.pop_front() else {
            return;
        };
        let latency_us = p.ts_us.map(|t| ts_us.saturating_sub(t).max(0) as u64);
        let column_defs = |columns: &[crate::session::ColumnDef]| -> Vec<ColumnDef> {
            columns
                .iter()
                .map(|c| ColumnDef {
                    name: c.name.clone(),
                    type_name: type_name(c.type_code),
                    flags: Some(c.flags),
                    charset: Some(c.charset),
                    decimals: Some(c.decimals),
                })
                .collect()
        };
        let summary = match &r {
            Wire::Ok {
                affected_rows,
                last_insert_id,
                status,
                warnings,
                session_state,
                ..
            } => Response {
                session_state: (!session_state.is_empty()).then(|| session_state.clone()),
                affected_rows: Some(*affected_rows),
                last_insert_id: Some(*last_insert_id),
                warnings: Some(*warnings),
                status_flags: Some(*status),
                latency_us,
                ..Response::default()
            },
            Wire::Err {
                code,
                state,
                message,
            } => Response {
                error: Some(ErrorInfo {
                    code: *code,
                    state: Some(state.clone()),
                    message: Some(message.clone()),
                }),
                latency_us,
                ..Response::default()
            },
            Wire::ResultSet {
                columns,
                rows,
                status,
                warnings,
                ..
            } => Response {
                // No columns: the server left the metadata out (the client has it from
                // the prepare).
                columns: Some(match (columns.is_empty(), &p.command) {
                    (true, Command::Execute { stmt, .. }) => {
                        self.prepared_columns.get(stmt).cloned().unwrap_or_default()
                    }
                    _ => column_defs(columns),
                }),
                // A cursor's rows come with fetches, which are not recorded: the count is
                // unknown rather than 0.
                rows: (*status & CURSOR_EXISTS == 0).then_some(*rows),
                warnings: Some(*warnings),
                status_flags: Some(*status),
                latency_us,
                ..Response::default()
            },
            Wire::Prepared {
                stmt_id,
                warnings,
                columns,
                ..
            } => {
                if let Command::Prepare { stmt, .. } = &mut p.command {
                    *stmt = *stmt_id;
                }
                if self.prepared_columns.len() < 10_000 {
                    self.prepared_columns.insert(*stmt_id, column_defs(columns));
                }
                Response {
                    warnings: Some(*warnings),
                    latency_us,
                    ..Response::default()
                }
            }
        };
        // A multi-result keeps its first answer; the command is recorded after its last.
        if p.response.is_none() {
            p.response = Some(summary);
        }
        if more {
            self.pending.push_front(p);
            return;
        }
        if let (Command::InitDb { db }, Some(Response { error: None, .. })) =
            (&p.command, &p.response)
        {
            self.db = Some(db.clone());
        }
        if let Some(ts) = p.ts_us {
            self.emit(p.command, ts, p.response);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::encode_packet;

    fn query(sql: &str) -> Vec<u8> {
        let mut body = vec![0x03];
        body.extend_from_slice(sql.as_bytes());
        encode_packet(0, &body)
    }

    /// An answer the decoder cannot read ends the recording of its connection: its command
    /// is recorded without an answer, and nothing after it is paired with a guessed answer
    /// (before, the next answer went to the next command by assumption).
    #[test]
    fn an_undecodable_answer_stops_the_recording() {
        let mut r = Recorder::mid_stream(1);
        r.client(&query("SELECT 1"), 10);
        // One column, then a definition cut short, then the rest of that result set.
        let mut broken = encode_packet(1, &[0x01]);
        broken.extend(encode_packet(2, &[0x03, b'd']));
        broken.extend(encode_packet(3, &[0xfe, 0, 0, 2, 0]));
        broken.extend(encode_packet(4, &[0x01, b'1']));
        broken.extend(encode_packet(5, &[0xfe, 0, 0, 2, 0]));
        r.server(&broken, 20);
        r.client(&query("UPDATE t SET a = 1"), 30);
        // OK: 3 affected rows, last insert id 0, status 2, no warnings.
        r.server(&encode_packet(1, &[0x00, 3, 0, 2, 0, 0, 0]), 40);
        r.close(50);
        let records = r.take();
        let queries: Vec<&Record> = records
            .iter()
            .filter(|rec| matches!(rec.command, Command::Query { .. }))
            .collect();
        assert_eq!(queries.len(), 1, "{records:?}");
        assert_eq!(queries[0].command.sql(), Some("SELECT 1"));
        assert!(queries[0].response.is_none(), "{:?}", queries[0]);
        assert!(r.undecodable());
        assert!(
            r.undecodable_reason()
                .is_some_and(|w| w.contains("nothing recorded after it")),
            "{:?}",
            r.undecodable_reason()
        );
    }
}
