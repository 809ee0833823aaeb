//! The capture's TCP connections: which connection (and direction) a segment belongs to,
//! a new connection on a reused 4-tuple, connections that end (or go quiet with data
//! waiting), and their records handed on in time order.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

use cutover_workload::Record;
use pcap_parser::Linktype;

use super::connection::{count, on_segment, pump, Conn, Decoder, CLIENT, HOLD_US, SERVER};
use super::link::{parse, Parsed};
use super::order::Order;
use super::{PcapFailure, PcapOptions, PcapSummary};

pub(super) struct State<F> {
    opts: PcapOptions,
    sink: F,
    pub(super) summary: PcapSummary,
    conns: HashMap<(SocketAddr, SocketAddr), Conn>,
    servers: HashSet<SocketAddr>,
    next_session: u64,
    /// Records waiting to be written in time order.
    order: Order,
    /// The latest packet time seen.
    now: i64,
    /// When connections' waiting pieces were last looked at.
    last_sweep: i64,
}

impl<F, E> State<F>
where
    F: FnMut(Record) -> Result<(), E>,
{
    pub(super) fn new(opts: PcapOptions, sink: F) -> State<F> {
        State {
            opts,
            sink,
            summary: PcapSummary::default(),
            conns: HashMap::new(),
            servers: HashSet::new(),
            next_session: 0,
            order: Order::default(),
            now: i64::MIN,
            last_sweep: i64::MIN,
        }
    }

    pub(super) fn packet(
        &mut self,
        link: Linktype,
        data: &[u8],
        ts: i64,
    ) -> Result<(), PcapFailure<E>> {
        self.summary.packets += 1;
        let seg = match parse(link, data) {
            Parsed::Tcp(s) => s,
            Parsed::Other => {
                self.summary.other_packets += 1;
                return Ok(());
            }
            Parsed::Bad => {
                self.summary.undecodable_packets += 1;
                return Ok(());
            }
            Parsed::Unsupported => {
                self.summary.undecodable_packets += 1;
                if !self.summary.unsupported_link_types.contains(&link.0)
                    && self.summary.unsupported_link_types.len() < 16
                {
                    self.summary.unsupported_link_types.push(link.0);
                }
                return Ok(());
            }
        };
        let src_server = self.opts.ports.contains(&seg.src.port());
        let dst_server = self.opts.ports.contains(&seg.dst.port());
        let from_client = match (src_server, dst_server) {
            (false, false) => {
                self.summary.other_packets += 1;
                return Ok(());
            }
            (false, true) => true,
            (true, false) => false,
            // Both on server ports: the one a SYN goes to, else the one a SYN-ACK comes
            // from, else the one an open connection already names, else the destination.
            (true, true) => {
                if seg.syn {
                    seg.ack.is_none()
                } else {
                    !self.conns.contains_key(&(seg.dst, seg.src))
                }
            }
        };
        self.summary.segments += 1;
        self.now = self.now.max(ts);
        let key = if from_client {
            (seg.src, seg.dst)
        } else {
            (seg.dst, seg.src)
        };
        // A new connection on a 4-tuple still open: the old one is over.
        if seg.syn && seg.ack.is_none() && from_client {
            let reused = self
                .conns
                .get(&key)
                .is_some_and(|c| c.up.started() && (c.up.delivered > 0 || c.down.delivered > 0));
            if reused {
                self.end(key, ts)?;
            }
        }
        if !self.conns.contains_key(&key) {
            if !seg.syn && seg.payload.is_empty() {
                // An acknowledgement or the end of a connection the capture saw nothing of
                // (or one already over).
                return Ok(());
            }
            self.next_session += 1;
            self.summary.connections += 1;
            self.servers.insert(key.1);
            let conn = Conn::new(self.next_session, key, self.opts.max_buffered, seg.syn, ts);
            self.conns.insert(key, conn);
        }
        let mut records = Vec::new();
        let ended = {
            let Some(c) = self.conns.get_mut(&key) else {
                return Ok(());
            };
            c.last_ts = ts;
            on_segment(c, from_client, &seg, ts, &mut self.summary, &mut records);
            c.rst || (c.up.ended() && c.down.ended())
        };
        self.order.push(records);
        if ended {
            self.end(key, ts)?;
        }
        // Data waiting too long on connections that went quiet.
        if ts.saturating_sub(self.last_sweep) >= HOLD_US {
            self.last_sweep = ts;
            let waiting: Vec<_> = self
                .conns
                .iter()
                .filter(|(_, c)| c.queue.iter().any(|q| !q.is_empty()))
                .map(|(k, _)| *k)
                .collect();
            for key in waiting {
                let mut records = Vec::new();
                let ended = match self.conns.get_mut(&key) {
                    Some(c) => {
                        pump(c, ts, false, &mut self.summary, &mut records);
                        c.rst || (c.up.ended() && c.down.ended())
                    }
                    None => false,
                };
                self.order.push(records);
                if ended {
                    self.end(key, ts)?;
                }
            }
        }
        self.release(false)
    }

    /// A connection is over: what waits behind holes, then the decoder's last records.
    fn end(&mut self, key: (SocketAddr, SocketAddr), ts: i64) -> Result<(), PcapFailure<E>> {
        let Some(mut c) = self.conns.remove(&key) else {
            return Ok(());
        };
        let mut records = Vec::new();
        pump(&mut c, ts, true, &mut self.summary, &mut records);
        let mut up = Vec::new();
        c.up.finish(&mut up);
        c.queue[CLIENT].extend(up);
        let mut down = Vec::new();
        c.down.finish(&mut down);
        c.queue[SERVER].extend(down);
        pump(&mut c, ts, true, &mut self.summary, &mut records);
        // `pump` counted what it decoded; the closing records are counted here.
        let closing = records.len();
        if let Decoder::Live(rec) = &mut c.decoder {
            rec.close(ts);
            records.extend(rec.take());
            if rec.undecodable() && !c.undecodable {
                c.undecodable = true;
                self.summary.undecodable_sessions += 1;
            }
        }
        self.summary.duplicate_bytes += c.up.duplicate_bytes + c.down.duplicate_bytes;
        if c.damaged {
            self.summary.damaged_sessions += 1;
        }
        for r in &records[closing..] {
            count(&mut c, r, &mut self.summary);
        }
        if c.commands == 0 {
            self.summary.sessions_without_commands += 1;
        }
        self.order.push(records);
        self.order.forget(c.session);
        Ok(())
    }

    /// Writes the records old enough (all of them at the end).
    fn release(&mut self, all: bool) -> Result<(), PcapFailure<E>> {
        let horizon = self.now.saturating_sub(self.opts.reorder_window_us);
        self.order
            .release(all, horizon, self.opts.max_reorder, &mut self.sink)
            .map_err(PcapFailure::Sink)
    }

    pub(super) fn finish(mut self) -> Result<PcapSummary, PcapFailure<E>> {
        let mut open: Vec<((SocketAddr, SocketAddr), u64, i64)> = self
            .conns
            .iter()
            .map(|(k, c)| (*k, c.session, c.last_ts))
            .collect();
        open.sort_by_key(|o| o.1);
        for (key, _, ts) in open {
            self.end(key, ts)?;
        }
        self.release(true)?;
        self.summary.servers = self.servers.len() as u64;
        Ok(self.summary)
    }
}
