//! Migration drills: a runbook of timed steps, each with a DRI and a reviewer, run in order,
//! announced as they start and finish, gated by checks, undone by rollbacks when a gate
//! fails, recorded in an append-only journal that survives a crash, and compared across
//! drills in reports.
//!
//! The pipeline: [`runbook::load`] (every problem found before anything runs) →
//! [`executor::run`] (steps, approvals, acknowledgements, rollbacks) → [`journal`] events
//! (one JSON line each, flushed as it happens) → [`announce`] (stdout, webhooks; never
//! load-bearing) → [`state::Run`] (the journal folded back into a run) → [`report`].

pub mod announce;
pub mod control;
pub mod duration;
pub mod executor;
pub mod journal;
pub mod metrics;
pub mod process;
pub mod report;
pub mod runbook;
pub mod state;
