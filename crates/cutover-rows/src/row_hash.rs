//! The row hash: what each side computes over a plan's columns for a range of rows.
//!
//! ## The checksum
//!
//! For a range of rows, each server computes a count and a sum of 64-bit row hashes:
//!
//! ```sql
//! SELECT COUNT(*), SUM(<row hash>), …, MIN(key), MAX(key) FROM t WHERE key >= ? AND key <= ?
//! ```
//!
//! Every form hashes one **row string** `R`, a binary string:
//!
//! ```sql
//! R = CONCAT_WS(CAST(CHAR(255) AS BINARY), v1, …, vn, LENGTH(b1), …, LENGTH(bk-1), nulls)
//! ```
//!
//! The row hash has three forms ([`RowHash`]); the engine picks `crc32_pair` when both
//! servers have `CRC32C`, and `crc32_reversed` everywhere else:
//!
//! | form | row hash | servers |
//! |---|---|---|
//! | `crc32_pair` | `CRC32(@cutover_row := R) + (CRC32C(@cutover_row) << 32)` | both MariaDB ≥ 10.8 |
//! | `crc32_reversed` | `CRC32(R) + (CRC32(REVERSE(R)) << 32)` | any (`--row-hash portable`) |
//! | `crc32` | `CRC32(R)` (32 bits) | any, only when asked for (`--row-hash crc32`) |
//!
//! **`crc32_pair`**: one row string, hashed by two CRCs with *different polynomials* (IEEE
//! and Castagnoli). CRCs are linear: a change `d` to `R` goes unnoticed by one exactly when its
//! polynomial divides `d`; by both only when their product, of degree 64, does. So the two
//! halves are independent bits, and every change within 8 consecutive bytes is certain to be
//! seen. Both are in the row's one expression, evaluated left to right, so the second reads
//! the variable the first has just set for this row.
//!
//! **`crc32_reversed`** (portable: MySQL 5.7/8.0, Aurora, TiDB, mixed pairs). MySQL and TiDB
//! have one CRC polynomial, `P` = IEEE's `0x104C11DB7`, and TiDB evaluates a user variable
//! in the TiDB server rather than in TiKV, so the second hash is `CRC32` of the row string's
//! bytes in reverse order, and `R` is written twice. Every function in it is one TiDB pushes
//! down to TiKV ([`TIDB_PUSHED_DOWN`], checked by a test), so the checksum runs in every TiKV.
//! Why the two halves are 64 bits:
//!
//! - `P` is irreducible (trial division over GF(2) finds no factor) and primitive (`x` has
//!   order 2^32 - 1 modulo `P`); the test
//!   `ieee_polynomial_is_irreducible_and_not_its_own_reciprocal` repeats both. Let `F` be the
//!   field GF(2)[x]/P, `ω` = x^8 in `F`, and `δ_i` in `F` the difference of byte `i` (of `n`)
//!   as the CRC reads it. A change keeping the length goes unseen by `CRC32(R)` exactly when
//!   `B(ω) = 0`, with `B(Y) = Σ δ_i Y^(n-1-i)`, and by `CRC32(REVERSE(R))` exactly when
//!   `B(1/ω) = 0`: two evaluations of the change's byte polynomial at two points of `F`.
//! - Reversing the *bytes* is not reversing the *bits* (each byte keeps its bit order), so the
//!   neat argument for a bit-reversed message (a CRC with the reciprocal polynomial `P*`,
//!   coprime with `P`, so both miss only what `P·P*` divides) does not carry over as is.
//!   What holds instead is computed by the test `reversed_halves_are_independent`: the two
//!   halves are a linear map of the change of full rank 8w for a change within any
//!   `w` ≤ 6 consecutive bytes (such a change is always seen, like every change within 4
//!   bytes by `CRC32` alone), and of full rank 64 for a change spread over 12 bytes or more:
//!   two independent 32-bit hashes, missed together once in 2^64.
//! - A structure they share: a change that is its own mirror image over its span
//!   (`δ_i = δ_(w-1-i)`, a *byte palindrome*) has `B(1/ω) = ω^-(w-1)·B(ω)`, so the halves
//!   see it alike and it is missed once in 2^32, as by `--row-hash crc32`. Such a change
//!   needs three or more changed bytes, mirror-symmetric in place and value, and a CRC32 miss
//!   (two equal byte changes `k` bytes apart are seen unless `ω^k = 1`, and `ω` has order
//!   2^32 - 1, `P` being primitive).
//!   (`CRC32(HEX(R))`, the other cheap second hash, shares far more: squaring is linear in
//!   `F`, so every change whose changed bytes all differ by the same single bit, such as any
//!   change of letter case, leaves both halves equal or both different.)
//!
//! Cost, in MariaDB server instructions per row of a sysbench table against the floor query
//! `BIT_XOR(CRC32(CONCAT_WS('#', …)))` (`bench/rowcost.py`): `crc32_pair` 1.41× (utf8mb4)
//! and 1.70× (latin1, whose one `LENGTH` reads a CHAR column again); `crc32_reversed` 1.83×
//! and 2.14× on a MariaDB side, which builds the row string once into a user variable
//! ([`Plan::row_variable`]; `REVERSE` copies it byte by byte), and 2.18× and 2.51× where the
//! string is built twice (TiDB, so that the checksum stays pushed down to TiKV; MySQL, whose
//! order of evaluating user variables is undefined; latin1 there a little less, with the
//! plain separator of a single-byte character set); `crc32` 1.27×.
//!
//! Common to all forms:
//! - **Bytes, not characters.** The separator is a binary string, so `R` is one: fields enter
//!   as their bytes, without a per-row conversion (a `CHAR(255)` without the `CAST` is
//!   "coercible" and gives way to a text column's charset, converting every other text column
//!   to it), and `REVERSE` reverses bytes. (`crc32_pair` uses the plain `CHAR(255)` where all
//!   text is in one character set: MariaDB then keeps the byte 0xFF as it is, converts
//!   nothing, and builds the text result a little faster than a binary one.)
//! - **Separator-safe without escaping.** The separator is the byte 0xFF, which no number,
//!   date or utf8 text contains (the server stores only well-formed text). Fields that may
//!   hold it (BINARY, BLOB, …, and text in a single-byte character set such as latin1 or
//!   cp1250, where 0xFF is `ÿ` or `˙`) each add their byte length `LENGTH(b)` to `R`, all but
//!   one. So `R` decodes to exactly one row: `('a#b','c')` and `('a','b#c')` differ, and so
//!   do values cut at a 0xFF elsewhere. (Reading a CHAR column strips its pad; each `LENGTH`
//!   reads the column again, which is why utf8 text gets none.)
//! - **No conversion where the sides agree.** Text whose character set is the same on both
//!   sides enters as its bytes. Where the sets differ, the side not in utf8 converts its text
//!   to utf8mb4 (`CONVERT(c USING utf8mb4)`), which the other side's utf8 bytes already are.
//! - **NULL-safe.** `CONCAT_WS` skips NULLs; the `nulls` field (`CONCAT(ISNULL(a), …)` over the
//!   NULL-able columns) says which were skipped, so NULL and `''` differ.
//! - **`SUM`, not `BIT_XOR`**: XOR cancels a pair of duplicate rows; a sum (with the count) does
//!   not. Sums are exact DECIMALs on every server.
//!
//! Renderings are chosen per column so that *identical data renders identically on both
//! sides*; where it might not (a FLOAT text form, JSON text), a mismatch only costs a
//! drill-down: the rows are then fetched and compared with the value model, which has the
//! last word. The one thing a rendering must never do is render different data alike, so:
//! FLOAT is widened to DOUBLE (`f + 0e0`: FLOAT's own text has 6 digits and is not
//! injective), BIT is read as a number, text whose charset differs between the sides is
//! converted to utf8mb4, DECIMAL or temporal columns whose declared scale differs are
//! cast to the larger one.

use cutover_core::sql::quote_ident;
use cutover_core::value::ColumnKind;

use crate::pair::{ColumnPair, Side};

/// The form of the row hash (see the module docs). The first two are 64-bit; `Crc32` is
/// the 32-bit opt-in (`--row-hash crc32`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RowHash {
    /// `CRC32` and `CRC32C` of one row string: both sides MariaDB ≥ 10.8.
    Crc32Pair,
    /// `CRC32` of the row string and of its bytes reversed: any server, and every function
    /// in it is pushed down to TiKV (`--row-hash portable`).
    Crc32Reversed,
    /// `CRC32` of the same row string, alone: any server, about a quarter less server CPU
    /// than `Crc32Pair`, and a differing chunk whose sums collide by chance once in 2^32 (the
    /// 64-bit forms: once in 2^64). Only when asked for.
    Crc32,
}

impl RowHash {
    /// The best form both servers can compute, from their version strings.
    pub fn for_servers(source_version: &str, target_version: &str) -> RowHash {
        if has_crc32c(source_version) && has_crc32c(target_version) {
            RowHash::Crc32Pair
        } else {
            RowHash::Crc32Reversed
        }
    }
}

/// The row string's separator: the byte 0xFF as a binary string of implicit coercibility,
/// which makes the whole row string binary (see the module docs).
pub(crate) const SEPARATOR: &str = "CAST(CHAR(255) AS BINARY)";

/// The functions TiDB pushes down to TiKV that the portable checksum may use, from TiDB's
/// "List of Expressions for Pushdown" (<https://docs.pingcap.com/tidb/stable/expressions-pushed-down/>):
/// comparison functions (`COALESCE()`, `ISNULL()`), numeric functions (`CRC32()`), string
/// functions (`CHAR()`, `CONCAT()`, `CONCAT_WS()`, `HEX()`, `LENGTH()`, `REVERSE()`), cast
/// functions (`CAST()`, `CONVERT()`) and aggregate functions (`COUNT()`, `SUM()`). The
/// operators `+` and `<<` are in the same list. User variables are not: a checksum with one
/// runs in the TiDB server, over every row TiKV sends it.
pub const TIDB_PUSHED_DOWN: &[&str] = &[
    "CAST",
    "CHAR",
    "COALESCE",
    "CONCAT",
    "CONCAT_WS",
    "CONVERT",
    "COUNT",
    "CRC32",
    "HEX",
    "ISNULL",
    "LENGTH",
    "REVERSE",
    "SUM",
];

/// MariaDB has `CRC32C` from 10.8 on; MySQL and TiDB do not have it.
fn has_crc32c(version: &str) -> bool {
    if !version.to_ascii_lowercase().contains("mariadb") {
        return false;
    }
    let mut parts = version.split(|c: char| !c.is_ascii_digit());
    let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (major, minor) >= (10, 8)
}

/// One column's rendering for the bucket expression and, for numbers and dates, for the row
/// string: text enters as its CRC32 (a number), everything else as its text. See the module
/// docs.
pub(crate) fn render(p: &ColumnPair, side: Side) -> String {
    let c = side.column(p);
    let q = quote_ident(&c.name);
    let (sk, tk) = (&p.source.kind, &p.target.kind);
    match &c.kind {
        ColumnKind::Int { .. } | ColumnKind::Year => q,
        ColumnKind::Bit { .. } => format!("CAST({q} AS UNSIGNED)"),
        ColumnKind::Float => format!("({q} + 0e0)"),
        ColumnKind::Decimal { .. } => match (sk, tk) {
            (ColumnKind::Decimal { scale: a, .. }, ColumnKind::Decimal { scale: b, .. })
                if a != b =>
            {
                format!("CAST({q} AS DECIMAL(65, {}))", (*a).max(*b).min(30))
            }
            _ => q,
        },
        ColumnKind::DateTime { .. } | ColumnKind::Timestamp { .. } => match fsp_pair(sk, tk) {
            Some((a, b)) if a != b => format!("CAST({q} AS DATETIME({}))", a.max(b)),
            _ => q,
        },
        ColumnKind::Time { .. } => match fsp_pair(sk, tk) {
            Some((a, b)) if a != b => format!("CAST({q} AS TIME({}))", a.max(b)),
            _ => q,
        },
        ColumnKind::Double | ColumnKind::Date => q,
        ColumnKind::Text { .. }
        | ColumnKind::Enum
        | ColumnKind::Set
        | ColumnKind::Json
        | ColumnKind::Binary
        | ColumnKind::Other { .. } => {
            let x = if p.source.charset != p.target.charset && c.kind.is_text_like() {
                format!("CONVERT({q} USING utf8mb4)")
            } else {
                q
            };
            format!("CRC32({x})")
        }
    }
}

/// One column in the row string, for one side, and whether it may hold the separator byte
/// (its byte length then goes into the row string too). Both sides agree on the second.
pub(crate) fn row_view(p: &ColumnPair, side: Side) -> (String, bool) {
    let c = side.column(p);
    let q = quote_ident(&c.name);
    let (view, bytes) = match &c.kind {
        ColumnKind::Text { .. } | ColumnKind::Enum | ColumnKind::Set | ColumnKind::Json => {
            text_view(p, side, q)
        }
        ColumnKind::Binary | ColumnKind::Other { .. } => (q, true),
        _ => (render(p, side), false),
    };
    let other = match side {
        Side::Source => Side::Target,
        Side::Target => Side::Source,
    };
    // A pair of different kinds (text against bytes) must still give both sides the same
    // fields: a length on one side only would make the row strings never agree.
    let other_bytes = match &other.column(p).kind {
        ColumnKind::Text { .. } | ColumnKind::Enum | ColumnKind::Set | ColumnKind::Json => {
            text_view(p, other, String::new()).1
        }
        ColumnKind::Binary | ColumnKind::Other { .. } => true,
        _ => false,
    };
    (view, bytes || other_bytes)
}

/// Text in the row string: utf8 text as it is (it cannot hold the byte 0xFF); text in the
/// same other character set on both sides as its bytes, with its length (latin1's `ÿ` is
/// 0xFF); text whose character set differs between the sides converted to utf8mb4 on the
/// side that is not in utf8 already.
pub(crate) fn text_view(p: &ColumnPair, side: Side, q: String) -> (String, bool) {
    let own = text_charset(side.column(p));
    if is_utf8(&own) {
        return (q, false);
    }
    let (s, t) = (text_charset(&p.source), text_charset(&p.target));
    if s == t {
        (q, true)
    } else {
        (format!("CONVERT({q} USING utf8mb4)"), false)
    }
}

/// The character set a text-like column's bytes are in, lower case. JSON is utf8mb4 text on
/// every server (MySQL reports no character set for it).
pub(crate) fn text_charset(c: &cutover_core::schema::Column) -> String {
    if c.kind == ColumnKind::Json {
        return "utf8mb4".to_string();
    }
    c.charset.as_deref().unwrap_or("").to_ascii_lowercase()
}

/// Whether every character of this charset is one byte (so `REVERSE` reverses bytes).
pub(crate) fn is_single_byte(charset: &str) -> bool {
    matches!(
        charset,
        "latin1"
            | "latin2"
            | "latin5"
            | "latin7"
            | "cp1250"
            | "cp1251"
            | "cp1256"
            | "cp1257"
            | "cp850"
            | "cp852"
            | "cp866"
            | "koi8r"
            | "koi8u"
            | "greek"
            | "hebrew"
            | "armscii8"
            | "keybcs2"
            | "macce"
            | "macroman"
            | "swe7"
            | "tis620"
            | "geostd8"
            | "dec8"
            | "hp8"
    )
}

/// Whether text in this charset is stored as utf8mb4 bytes (utf8mb3 and ascii are subsets).
fn is_utf8(charset: &str) -> bool {
    matches!(charset, "utf8mb4" | "utf8mb3" | "utf8" | "ascii")
}

fn fsp_pair(a: &ColumnKind, b: &ColumnKind) -> Option<(u32, u32)> {
    let f = |k: &ColumnKind| match k {
        ColumnKind::DateTime { fsp } | ColumnKind::Timestamp { fsp } | ColumnKind::Time { fsp } => {
            Some(*fsp)
        }
        _ => None,
    };
    Some((f(a)?, f(b)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::ColumnFilter;
    use crate::plan::Plan;
    use cutover_core::schema::{Column, Table};
    use cutover_core::schema::{Index, TableName};

    fn col(name: &str, kind: ColumnKind, charset: Option<&str>, nullable: bool) -> Column {
        Column {
            name: name.to_string(),
            data_type: String::new(),
            column_type: String::new(),
            kind,
            nullable,
            charset: charset.map(str::to_string),
            collation: None,
            max_length: None,
            precision: None,
            scale: None,
            datetime_precision: None,
            default: None,
            generated: false,
        }
    }

    fn table(columns: Vec<Column>) -> Table {
        Table {
            name: TableName::new("db", "t"),
            columns,
            indexes: vec![Index {
                name: "PRIMARY".into(),
                unique: true,
                columns: vec!["id".into()],
            }],
            estimated_rows: 0,
            charset_collation: None,
        }
    }

    fn text(charset: &str) -> ColumnKind {
        ColumnKind::Text {
            charset: charset.to_string(),
        }
    }

    /// Every kind of column, with character sets that agree and that differ.
    fn mixed_plan(hash: RowHash) -> Plan {
        let side = |other_cs: &str, scale: u32, fsp: u32| {
            table(vec![
                col("id", ColumnKind::Int { unsigned: false }, None, false),
                col("big", ColumnKind::Int { unsigned: true }, None, true),
                col(
                    "d",
                    ColumnKind::Decimal {
                        precision: 12,
                        scale,
                    },
                    None,
                    true,
                ),
                col("f", ColumnKind::Float, None, false),
                col("g", ColumnKind::Double, None, true),
                col("bt", ColumnKind::Bit { width: 8 }, None, false),
                col("dt", ColumnKind::DateTime { fsp }, None, true),
                col("tm", ColumnKind::Time { fsp }, None, true),
                col("y", ColumnKind::Year, None, true),
                col("u", text("utf8mb4"), Some("utf8mb4"), true),
                col("l", text("latin1"), Some("latin1"), false),
                col("x", text(other_cs), Some(other_cs), true),
                col("e", ColumnKind::Enum, Some("latin1"), false),
                col("j", ColumnKind::Json, None, true),
                col("b", ColumnKind::Binary, None, true),
            ])
        };
        let mut plan = Plan::new(
            side("latin1", 2, 3),
            side("utf8mb4", 4, 6),
            &ColumnFilter::default(),
        )
        .unwrap();
        plan.hash = hash;
        plan
    }

    /// The names called in a SQL text: every identifier directly followed by `(`, but the
    /// type of a `CAST(… AS TYPE(n))`.
    fn functions(sql: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut word = String::new();
        let mut previous = String::new();
        let mut quoted = false;
        for ch in sql.chars() {
            if ch == '`' {
                quoted = !quoted;
                word.clear();
            } else if !quoted && (ch.is_ascii_alphanumeric() || ch == '_') {
                word.push(ch);
            } else {
                if ch == '('
                    && !word.is_empty()
                    && !word.chars().all(|c| c.is_ascii_digit())
                    && !previous.eq_ignore_ascii_case("AS")
                {
                    out.push(word.to_ascii_uppercase());
                }
                if !word.is_empty() {
                    previous = std::mem::take(&mut word);
                }
            }
        }
        out
    }

    #[test]
    fn portable_sql_uses_only_functions_tidb_pushes_down() {
        let plan = mixed_plan(RowHash::Crc32Reversed);
        let mut seen = std::collections::BTreeSet::new();
        for side in [Side::Source, Side::Target] {
            for sql in [plan.checksum_select(side), plan.bucket_expr(side, 64)] {
                assert!(
                    !sql.contains('@'),
                    "a user variable is not pushed down: {sql}"
                );
                for f in functions(&sql) {
                    assert!(
                        TIDB_PUSHED_DOWN.contains(&f.as_str()),
                        "{f}() is not in TiDB's pushed-down list: {sql}"
                    );
                    seen.insert(f);
                }
            }
        }
        // The parse finds what is there (the test would pass vacuously otherwise).
        for f in [
            "CRC32",
            "REVERSE",
            "CONCAT_WS",
            "CONVERT",
            "CAST",
            "LENGTH",
            "ISNULL",
        ] {
            assert!(
                seen.contains(f),
                "{f} not found in the portable SQL: {seen:?}"
            );
        }
        // And the pair form is the one that is not portable.
        let pair = mixed_plan(RowHash::Crc32Pair).checksum_select(Side::Source);
        assert!(functions(&pair).contains(&"CRC32C".to_string()));
    }

    /// The portable form's cheaper renderings: a plain separator where all text is in one
    /// single-byte character set (never where `REVERSE` would reverse characters of several
    /// bytes), and the user variable only on the sides that may have one.
    #[test]
    fn portable_form_is_cheaper_only_where_the_bytes_stay_the_same() {
        let latin = |cs: &str| {
            table(vec![
                col("id", ColumnKind::Int { unsigned: false }, None, false),
                col("c", text(cs), Some(cs), false),
                col("pad", text(cs), Some(cs), false),
            ])
        };
        let mut plan =
            Plan::new(latin("latin1"), latin("latin1"), &ColumnFilter::default()).unwrap();
        plan.hash = RowHash::Crc32Reversed;
        let row = plan.row_string(Side::Source);
        assert!(row.starts_with("CONCAT_WS(CHAR(255), "), "{row}");
        // utf8 text, or latin1 against utf8, keeps the binary separator.
        for (s, t) in [
            ("utf8mb4", "utf8mb4"),
            ("latin1", "utf8mb4"),
            ("cp1250", "cp1250"),
        ] {
            let mut plan = Plan::new(latin(s), latin(t), &ColumnFilter::default()).unwrap();
            plan.hash = RowHash::Crc32Reversed;
            for side in [Side::Source, Side::Target] {
                let row = plan.row_string(side);
                let plain = row.starts_with("CONCAT_WS(CHAR(255), ");
                assert_eq!(plain, s == t && s == "cp1250", "{s}/{t} {side:?}: {row}");
            }
        }
        let mixed = mixed_plan(RowHash::Crc32Reversed);
        for side in [Side::Source, Side::Target] {
            assert!(mixed
                .row_string(side)
                .starts_with("CONCAT_WS(CAST(CHAR(255) AS BINARY), "));
        }
        // The variable: only on the side allowed one, and it hashes the same row string.
        plan.row_variable = (true, false);
        let s = plan.checksum_select(Side::Source);
        let t = plan.checksum_select(Side::Target);
        assert!(
            s.contains("CRC32(@cutover_row := CONCAT_WS(") && s.contains("REVERSE(@cutover_row)"),
            "{s}"
        );
        assert!(!t.contains('@'), "{t}");
        assert_eq!(s.matches(&plan.row_string(Side::Source)).count(), 1);
        assert_eq!(t.matches(&plan.row_string(Side::Target)).count(), 2);
    }

    #[test]
    fn single_byte_text_enters_as_bytes_with_its_length() {
        let plan = mixed_plan(RowHash::Crc32Reversed);
        let s = plan.row_string(Side::Source);
        let t = plan.row_string(Side::Target);
        // `l` is latin1 on both sides: raw, with a length; `u` is utf8mb4: raw, without.
        for r in [&s, &t] {
            assert!(
                r.starts_with("CONCAT_WS(CAST(CHAR(255) AS BINARY), "),
                "{r}"
            );
            assert!(r.contains(", `l`, "), "{r}");
            assert!(r.contains("LENGTH(`l`)"), "{r}");
            assert!(r.contains(", `u`, ") && !r.contains("LENGTH(`u`)"), "{r}");
            assert!(r.contains(", `j`, ") && !r.contains("LENGTH(`j`)"), "{r}");
            assert!(
                !r.contains("CONVERT(`l`") && !r.contains("CONVERT(`u`"),
                "{r}"
            );
        }
        // `x` is latin1 on the source and utf8mb4 on the target: only the source converts.
        assert!(s.contains("CONVERT(`x` USING utf8mb4)"), "{s}");
        assert!(t.contains(", `x`, ") && !t.contains("CONVERT(`x`"), "{t}");
        // Both sides have the same fields: the lengths of `l`, `e`, `b` but the last.
        for r in [&s, &t] {
            assert_eq!(r.matches("LENGTH(").count(), 2, "{r}");
            assert!(
                r.contains("LENGTH(`l`)") && r.contains("LENGTH(`e`)"),
                "{r}"
            );
        }
    }

    /// Reflected CRC-32 with IEEE's polynomial, as `CRC32()` computes it on every server.
    pub(crate) fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for b in bytes {
            crc ^= u32::from(*b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    /// The rank over GF(2) of a set of bit vectors.
    fn rank(vectors: impl IntoIterator<Item = u64>) -> u32 {
        let mut pivots: Vec<u64> = Vec::new();
        for mut v in vectors {
            for p in &pivots {
                v = v.min(v ^ p);
            }
            if v != 0 {
                pivots.push(v);
                pivots.sort_unstable_by(|a, b| b.cmp(a));
            }
        }
        pivots.len() as u32
    }

    /// Both halves of the portable row hash of `r`, as one 64-bit value.
    fn halves(r: &[u8]) -> u64 {
        let rev: Vec<u8> = r.iter().rev().copied().collect();
        u64::from(crc32(r)) | (u64::from(crc32(&rev)) << 32)
    }

    /// The changes of the bytes `at` (each bit alone, or `mirror`ed pairs of bits) as the
    /// halves see them: the XOR of the hashes of the changed and the unchanged string.
    fn seen(n: usize, at: std::ops::Range<usize>, mirror: bool) -> Vec<u64> {
        let base = vec![0x5au8; n];
        let h0 = halves(&base);
        let mut out = Vec::new();
        for i in at {
            for bit in 0..8 {
                let mut r = base.clone();
                r[i] ^= 1 << bit;
                if mirror {
                    r[n - 1 - i] ^= 1 << bit;
                }
                out.push(halves(&r) ^ h0);
            }
        }
        out
    }

    #[test]
    fn reversed_halves_are_independent() {
        // Within a window of up to 6 bytes, the 64 bits are an injective map of the change:
        // every such change is seen, wherever the window lies in the row string (moving it
        // multiplies each half by a power of x, which is invertible modulo P).
        for w in 1..=6 {
            assert_eq!(
                rank(seen(w, 0..w, false)),
                8 * w as u32,
                "window of {w} bytes"
            );
            assert_eq!(rank(seen(w + 9, 3..3 + w, false)), 8 * w as u32);
        }
        // From 12 bytes on, the two halves are 64 independent linear bits of the change.
        for n in [12, 40, 300] {
            assert_eq!(rank(seen(n, 0..n, false)), 64, "{n} bytes");
        }
        // The exception (see the module docs): changes that are their own mirror image give
        // both halves the same 32 bits.
        assert_eq!(rank(seen(60, 0..30, true)), 32);
        // Whereas one CRC32 alone is 32 bits for every change.
        let one: Vec<u64> = seen(40, 0..40, false)
            .iter()
            .map(|h| h & 0xffff_ffff)
            .collect();
        assert_eq!(rank(one), 32);
    }

    /// Polynomials over GF(2) as bit masks.
    fn poly_mod(mut a: u64, b: u64) -> u64 {
        let db = 63 - b.leading_zeros();
        while a != 0 && 63 - a.leading_zeros() >= db {
            a ^= b << (63 - a.leading_zeros() - db);
        }
        a
    }

    #[test]
    fn ieee_polynomial_is_irreducible_and_not_its_own_reciprocal() {
        const P: u64 = 0x1_04C1_1DB7;
        // A reducible polynomial of degree 32 has a factor of degree at most 16.
        for d in 2u64..(1 << 17) {
            assert_ne!(poly_mod(P, d), 0, "{d:#x} divides P");
        }
        let reciprocal = u64::from((P as u32).reverse_bits()) << 1 | 1;
        assert_eq!(reciprocal, 0x1_DB71_0641);
        assert_ne!(reciprocal, P);
        // Distinct irreducible polynomials (P* is irreducible with P) are coprime.
        let (mut a, mut b) = (P, reciprocal);
        while b != 0 {
            (a, b) = (b, poly_mod(a, b));
        }
        assert_eq!(a, 1);
        // Primitive: x has order 2^32 - 1 modulo P (no proper divisor of it is an order).
        let mul = |mut a: u64, mut b: u64| {
            let mut r = 0u64;
            while b != 0 {
                if b & 1 == 1 {
                    r ^= a;
                }
                b >>= 1;
                a <<= 1;
                if a >> 32 & 1 == 1 {
                    a ^= P;
                }
            }
            r
        };
        let pow = |mut e: u64| {
            let (mut r, mut b) = (1u64, 2u64);
            while e != 0 {
                if e & 1 == 1 {
                    r = mul(r, b);
                }
                b = mul(b, b);
                e >>= 1;
            }
            r
        };
        let order = (1u64 << 32) - 1;
        assert_eq!(pow(order), 1);
        for q in [3, 5, 17, 257, 65537] {
            assert_ne!(pow(order / q), 1, "x^((2^32-1)/{q}) = 1");
        }
    }

    #[test]
    fn the_pair_form_only_between_mariadb_servers_that_have_crc32c() {
        let maria = "10.11.6-MariaDB-0+deb12u1";
        assert_eq!(RowHash::for_servers(maria, maria), RowHash::Crc32Pair);
        for other in [
            "8.0.36",
            "5.7.44-log",
            "8.0.11-TiDB-v7.5.1",
            "10.6.16-MariaDB",
        ] {
            assert_eq!(RowHash::for_servers(maria, other), RowHash::Crc32Reversed);
            assert_eq!(RowHash::for_servers(other, maria), RowHash::Crc32Reversed);
        }
    }

    #[test]
    fn crc32_model_is_the_servers() {
        // MySQL/MariaDB/TiDB: SELECT CRC32('MySQL') = 3259397556.
        assert_eq!(crc32(b"MySQL"), 3_259_397_556);
    }
}
