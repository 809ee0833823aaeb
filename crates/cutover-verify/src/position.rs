//! Where in a source's binlog a change is: a file name and an offset, and `--start`.

use std::cmp::Ordering;
use std::fmt;

/// Why a `--start` or `FILE:POS` text is not a position.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PositionError {
    #[error("`{0}` is not a binlog position (expected FILE:POS)")]
    NotAPosition(String),
    #[error("`{0}` has no binlog file name (expected FILE:POS)")]
    NoFile(String),
    #[error("`{0}` is not a binlog offset (expected FILE:POS)")]
    Offset(String),
    /// The set looks like a MySQL GTID set but one of its parts is not (the reason).
    #[error("MySQL GTID set: {0}")]
    MySqlGtidSet(String),
}

/// A position in a source's binlog: the file and the offset of the next event in it.
///
/// Positions order by file, then offset. Binlog files are named `base.000001`, `base.000002`,
/// …; the number is compared as a number so that `base.999999` < `base.1000000`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct BinlogPos {
    pub file: String,
    pub pos: u64,
}

impl BinlogPos {
    pub fn new(file: impl Into<String>, pos: u64) -> BinlogPos {
        BinlogPos {
            file: file.into(),
            pos,
        }
    }

    /// `FILE:POS` (the file name may itself hold `:`; the offset is after the last one).
    pub fn parse(s: &str) -> Result<BinlogPos, PositionError> {
        let (file, pos) = s
            .rsplit_once(':')
            .ok_or_else(|| PositionError::NotAPosition(s.to_string()))?;
        if file.is_empty() {
            return Err(PositionError::NoFile(s.to_string()));
        }
        let pos = pos
            .parse::<u64>()
            .map_err(|_| PositionError::Offset(pos.to_string()))?;
        Ok(BinlogPos::new(file, pos))
    }

    fn file_number(&self) -> (&str, Option<u64>) {
        match self.file.rsplit_once('.') {
            Some((base, n)) => (base, n.parse().ok()),
            None => (&self.file, None),
        }
    }
}

impl Ord for BinlogPos {
    fn cmp(&self, other: &Self) -> Ordering {
        let (a_base, a_n) = self.file_number();
        let (b_base, b_n) = other.file_number();
        a_base
            .cmp(b_base)
            .then(a_n.cmp(&b_n))
            .then_with(|| self.file.cmp(&other.file))
            .then(self.pos.cmp(&other.pos))
    }
}

impl PartialOrd for BinlogPos {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for BinlogPos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.pos)
    }
}

/// Where reading starts (`--start`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Start {
    /// The source's current position (`SHOW MASTER STATUS`).
    Now,
    At(BinlogPos),
    /// A MariaDB GTID position (`domain-server-seq`, several comma-separated for several
    /// domains): the stream starts after these transactions.
    MariaDbGtid(String),
    /// A MySQL GTID set (`uuid:1-5[:7-9][,uuid:…]`, as in @@gtid_executed): the stream
    /// holds every transaction not in the set.
    MySqlGtidSet(String),
}

/// Checks one `uuid:interval[:interval…]` of a MySQL GTID set; numbers 1 … 2^63-1, a
/// range's end not before its start.
fn mysql_gtid_sid(s: &str) -> Result<(), String> {
    let (uuid, intervals) = s
        .split_once(':')
        .ok_or_else(|| format!("`{s}` has no transaction numbers (uuid:1-5)"))?;
    let hex = uuid.replace('-', "");
    let groups: Vec<usize> = uuid.split('-').map(str::len).collect();
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) || groups != [8, 4, 4, 4, 12]
    {
        return Err(format!("`{uuid}` is not a server UUID"));
    }
    for interval in intervals.split(':') {
        let num = |n: &str| {
            n.parse::<u64>()
                .ok()
                .filter(|&v| (1..(1u64 << 63)).contains(&v))
                .ok_or_else(|| format!("`{n}` is not a transaction number in `{s}`"))
        };
        let (a, b) = match interval.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => (num(interval)?, num(interval)?),
        };
        if b < a {
            return Err(format!("`{interval}` ends before it starts in `{s}`"));
        }
    }
    Ok(())
}

impl Start {
    pub fn parse(s: &str) -> Result<Start, PositionError> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("now") {
            return Ok(Start::Now);
        }
        // A MariaDB GTID position (`0-1-42[,1-2-7]`) or a MySQL GTID set (`uuid:1-5`) has
        // no file name.
        let mariadb_gtid = !s.is_empty()
            && !s.contains(':')
            && s.split(',').all(|g| {
                let parts: Vec<&str> = g.trim().split('-').collect();
                parts.len() == 3 && parts.iter().all(|p| p.parse::<u64>().is_ok())
            });
        if mariadb_gtid {
            let gtid: Vec<&str> = s.split(',').map(str::trim).collect();
            return Ok(Start::MariaDbGtid(gtid.join(",")));
        }
        if s.split(':').next().is_some_and(|u| u.len() == 36) {
            let sids: Vec<String> = s
                .split(',')
                .map(|g| g.split_whitespace().collect::<String>())
                .filter(|g| !g.is_empty())
                .collect();
            for sid in &sids {
                mysql_gtid_sid(sid).map_err(PositionError::MySqlGtidSet)?;
            }
            return Ok(Start::MySqlGtidSet(sids.join(",")));
        }
        BinlogPos::parse(s).map(Start::At)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_order_by_file_number_then_offset() {
        let p = |f: &str, n| BinlogPos::new(f, n);
        assert!(p("binlog.000002", 4) > p("binlog.000001", 900));
        assert!(p("binlog.000001", 900) == p("binlog.000001", 900));
        assert!(p("binlog.000001", 899) < p("binlog.000001", 900));
        assert!(p("binlog.999999", 4) < p("binlog.1000000", 4));
    }

    proptest::proptest! {
        #[test]
        fn start_parsing_never_panics(s in "\\PC*") {
            let _ = Start::parse(&s);
        }

        #[test]
        fn positions_round_trip(file in "[a-z][a-z0-9_.-]{0,20}\\.[0-9]{6}", pos in 0u64..u64::MAX) {
            let p = BinlogPos::new(file, pos);
            proptest::prop_assert_eq!(BinlogPos::parse(&p.to_string()), Ok(p));
        }
    }

    #[test]
    fn start_parses_now_positions_and_refuses_the_rest() {
        assert_eq!(Start::parse("now"), Ok(Start::Now));
        assert_eq!(
            Start::parse("binlog.000003:1234"),
            Ok(Start::At(BinlogPos::new("binlog.000003", 1234)))
        );
        assert_eq!(
            Start::parse("0-1-42, 1-2-7"),
            Ok(Start::MariaDbGtid("0-1-42,1-2-7".into()))
        );
        assert_eq!(
            Start::parse("3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5:7, 3e11fa47-71ca-11e1-9e33-c80aa9429563:1"),
            Ok(Start::MySqlGtidSet(
                "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5:7,3e11fa47-71ca-11e1-9e33-c80aa9429563:1"
                    .into()
            ))
        );
        for bad in [
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:5-1",
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:0",
            "3e11fa47-71ca-11e1-9e33-c80aa942956z:1",
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:18446744073709551615",
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:",
        ] {
            assert!(
                Start::parse(bad).unwrap_err().to_string().contains("GTID"),
                "{bad}"
            );
        }
        assert!(Start::parse("binlog.000003").is_err());
        assert!(Start::parse(":4").is_err());
        assert!(Start::parse("f:x").is_err());
        assert!(Start::parse("").is_err());
    }
}
