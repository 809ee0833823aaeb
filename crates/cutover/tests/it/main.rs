//! Integration tests of the `cutover` binary against real MariaDB servers.
//!
//! One sandbox pair (source and target) is started for this test binary; every test makes
//! its own databases on it, so tests run in parallel without sharing data.

mod check;
mod connection;
mod diff;
mod drill;
mod drivers;
mod hardening;
mod harness;
mod interrupt;
mod layout;
mod output;
mod pcap;
mod probe;
mod production;
mod progress;
mod proxy;
mod read_only;
mod replay;
mod replay_conflicts;
mod replay_read_only;
mod reports;
mod sandbox;
mod tcpdump;
mod verify;
mod verify_bad;
mod verify_checkpoint;
