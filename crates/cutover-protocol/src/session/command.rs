//! Command decoding: what each client command says (the statement and its parameters,
//! decoded from the binary protocol with the types bound now or before), what answer it
//! expects, and whether it must wait for a prepare's answer before it can be read.

use cutover_workload::{Param, ParamValue};
use mysql_common::constants::ColumnType;
use serde::Serialize;

use super::response::Awaiting;
use super::{lenenc, text, u32_at, Event, Session, Statement};

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
pub(super) type ParamType = (u8, bool);

/// The answer a command expects, by its code (`None`: no answer; `Err`: an answer the decoder
/// cannot delimit).
pub(super) fn expects(code: u8) -> Result<Option<Awaiting>, ()> {
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
    /// Whether a command names a statement whose prepare is still unanswered (see the module
    /// doc): its parameters cannot be read yet.
    pub(super) fn must_wait(&self, p: &[u8]) -> bool {
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

    /// A statement id as the server reads it.
    fn resolve(&self, id: u32) -> u32 {
        if id == LAST_PREPARED {
            self.last_prepared.unwrap_or(id)
        } else {
            id
        }
    }

    /// Decodes one command (its expected answer is already queued).
    pub(super) fn on_command(&mut self, p: &[u8], out: &mut Vec<Event>) {
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

    pub(super) fn forget_statements(&mut self) {
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
