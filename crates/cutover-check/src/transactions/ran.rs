//! One statement as it ran: its session, time, text and class, the example a finding
//! shows, and the parameters of an execute.

use std::cell::OnceCell;
use std::rc::Rc;

use cutover_workload::{fingerprint, Command};

use crate::finding::Example;
use crate::workload_rules::time_text;

/// One statement as it ran.
pub(super) struct Ran<'a> {
    pub(super) session: u64,
    pub(super) ts_us: i64,
    pub(super) sql: &'a str,
    /// The execute's command, for its parameters.
    pub(super) execute: Option<&'a Command>,
    pub(super) class: OnceCell<Rc<str>>,
}

impl Ran<'_> {
    pub(super) fn class(&self) -> Rc<str> {
        self.class
            .get_or_init(|| Rc::from(fingerprint(self.sql)))
            .clone()
    }
    pub(super) fn example(&self) -> Example {
        let mut sql = truncate(self.sql, 400);
        if let Some(c) = self.execute {
            sql.push_str(" -- params: ");
            sql.push_str(&truncate(&execute_params_text(c), 200));
        }
        Example {
            session: self.session,
            ts_us: self.ts_us,
            time: time_text(self.ts_us),
            sql,
        }
    }
}

pub(super) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max).collect();
        t.push('…');
        t
    }
}

// The parameters of an execute are read only here, so a change of how a workload file
// encodes them is a change of these two functions.

/// Parameter `index` of an execute as text (a string without quotes, a number as written);
/// `None` for NULL, a redacted value, a missing parameter or another command. A DOUBLE that
/// holds an integer (some drivers bind every JavaScript number as DOUBLE) reads as that
/// integer, so the same key is the same text whichever way a session bound it.
pub fn execute_param(c: &Command, index: usize) -> Option<String> {
    use cutover_workload::ParamValue;
    match c {
        Command::Execute { params, .. } => {
            let p = params.get(index)?;
            match &p.value {
                ParamValue::Null | ParamValue::Redacted => None,
                ParamValue::Double(bits) => {
                    let f = f64::from_bits(*bits);
                    if f.fract() == 0.0 && f.abs() < 9.0e15 {
                        Some(format!("{}", f as i64))
                    } else {
                        Some(p.display())
                    }
                }
                _ => Some(p.display()),
            }
        }
        _ => None,
    }
}

/// An execute's parameters for an example, as JSON.
pub fn execute_params_text(c: &Command) -> String {
    match c {
        Command::Execute { params, .. } => {
            let shown: Vec<String> = params.iter().map(|p| p.display()).collect();
            serde_json::to_string(&shown).unwrap_or_else(|_| "[]".into())
        }
        _ => String::new(),
    }
}
