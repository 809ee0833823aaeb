//! Prepared-statement churn: a class prepared (and closed) again for almost every execute,
//! which on TiDB drops the plan from the plan cache each time.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use crate::finding::{Evidence, Example, Finding};
use crate::profile::Profile;
use crate::workload_rules::{finding, object, plural, WorkloadRule};

/// A class prepared again in one session this often, at this many prepares per execute,
/// is churn.
const CHURN_MIN_REPREPARES: u64 = 5;
const CHURN_MIN_RATIO: f64 = 0.5;

/// What one statement class's prepares, closes and executes add up to.
#[derive(Default)]
pub(super) struct Churn {
    pub(super) prepares: u64,
    pub(super) reprepares: u64,
    pub(super) closes: u64,
    pub(super) executes: u64,
    pub(super) sessions: HashSet<u64>,
    pub(super) examples: Vec<Example>,
}

/// The churn findings, the classes with the most prepares first (at most 20).
pub(super) fn findings(churn: HashMap<Rc<str>, Churn>, target: &Profile, out: &mut Vec<Finding>) {
    if let Some(text) = WorkloadRule::PreparedChurn.text(target) {
        let mut churn: Vec<_> = churn
            .into_iter()
            .filter(|(_, c)| {
                c.reprepares >= CHURN_MIN_REPREPARES
                    && c.executes > 0
                    && c.prepares as f64 / c.executes as f64 >= CHURN_MIN_RATIO
            })
            .collect();
        churn.sort_by(|a, b| b.1.prepares.cmp(&a.1.prepares).then(a.0.cmp(&b.0)));
        for (class, c) in churn.into_iter().take(20) {
            let ratio = c.prepares as f64 / c.executes as f64;
            let message = format!(
                "{} prepares and {} closes for {} executes ({ratio:.2} prepares per execute) in {} session{}: {}",
                c.prepares,
                c.closes,
                c.executes,
                c.sessions.len(),
                plural(c.sessions.len() as u64),
                text.meaning
            );
            out.push(finding(
                WorkloadRule::PreparedChurn,
                text.clone(),
                Some(object(&class)),
                message,
                Evidence {
                    class: class.to_string(),
                    statements: c.executes,
                    sessions: c.sessions.len() as u64,
                    examples: c.examples,
                },
            ));
        }
    }
}
