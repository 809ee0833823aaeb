//! TCP reassembly of one direction of one connection: segments as a capture saw them (in any
//! order, retransmitted, overlapping, some missing) → the byte stream, in pieces, with the
//! holes that cannot be filled reported as gaps of an exact length.
//!
//! Sequence numbers are 32-bit and wrap; every segment is placed by its signed distance from
//! the next byte expected (serial-number arithmetic), on a 64-bit offset from the start of the
//! stream, so a stream of any length crosses the wrap like any other byte.
//!
//! When is a hole a loss rather than a late segment? The reassembler waits, holding the
//! segments after the hole (up to `max_buffered` bytes), until one of:
//! - the peer acknowledges bytes past the hole in a packet that carries data of its own (a
//!   receiver acknowledges only what it received in order, so the hole reached it and the
//!   capture missed it: no retransmission will come) — [`Reassembler::acked`];
//! - the buffer is full — the hole is given up as lost;
//! - the connection ends — [`Reassembler::finish`].
//!
//! Memory: at most `max_buffered` bytes of out-of-order segments per direction; data in
//! order is handed out at once.

use std::collections::BTreeMap;

/// What the reassembler hands out, in stream order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    /// Bytes of the stream, from where the previous piece ended, with what was given with
    /// their segment. Each piece starts where a segment started or where a hole ended.
    Data(Vec<u8>, Stamp),
    /// Bytes the capture missed: the next piece starts this many bytes after the previous.
    Gap(u64),
}

/// What a segment's bytes carry out: the packet's time and acknowledgement number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stamp {
    pub ts: i64,
    pub ack: Option<u32>,
}

/// One direction of a TCP connection.
#[derive(Debug)]
pub struct Reassembler {
    /// The sequence number of stream offset 0 (the byte after the SYN, or the first byte
    /// seen when the capture began mid-connection).
    isn: Option<u32>,
    /// The offset of the next byte to hand out.
    next: u64,
    /// Segments after a hole, by offset.
    pending: BTreeMap<u64, (Vec<u8>, Stamp)>,
    buffered: usize,
    max_buffered: usize,
    /// The offset of the FIN, once seen.
    fin: Option<u64>,
    /// Bytes handed out.
    pub delivered: u64,
    /// Bytes reported lost.
    pub lost: u64,
    /// Segments (or parts) seen again: retransmissions, duplicates, overlaps.
    pub duplicate_bytes: u64,
    /// Segments too far from the stream to place (more than 1 GiB away), ignored.
    pub stray_segments: u64,
}

/// Segments further than this from the next byte are not part of this stream.
const WINDOW: i64 = 1 << 30;

impl Reassembler {
    pub fn new(max_buffered: usize) -> Reassembler {
        Reassembler {
            isn: None,
            next: 0,
            pending: BTreeMap::new(),
            buffered: 0,
            max_buffered: max_buffered.max(1),
            fin: None,
            delivered: 0,
            lost: 0,
            duplicate_bytes: 0,
            stray_segments: 0,
        }
    }

    /// Whether any segment was placed yet.
    pub fn started(&self) -> bool {
        self.isn.is_some()
    }

    /// Out-of-order bytes held.
    pub fn buffered(&self) -> usize {
        self.buffered
    }

    /// Whether the stream ended (FIN seen and every byte before it handed out or lost).
    pub fn ended(&self) -> bool {
        self.fin.is_some_and(|f| self.next >= f)
    }

    /// A SYN with sequence number `seq`: the stream starts at `seq + 1`. A SYN after data
    /// was placed (a retransmitted SYN, a reused port) changes nothing.
    pub fn syn(&mut self, seq: u32) {
        if self.next == 0 && self.pending.is_empty() {
            self.isn = Some(seq.wrapping_add(1));
        }
    }

    /// The stream offset of `seq`, if it lies within reach of the stream.
    fn offset(&self, seq: u32) -> Option<u64> {
        let isn = self.isn?;
        let expected = isn.wrapping_add(self.next as u32);
        let distance = i64::from(seq.wrapping_sub(expected) as i32);
        if distance.abs() > WINDOW {
            return None;
        }
        let off = self.next as i64 + distance;
        // Before the first byte: bytes the capture began after.
        (off >= 0).then_some(off as u64)
    }

    /// A segment: `payload` at sequence number `seq`, and whether it carries a FIN.
    pub fn segment(&mut self, seq: u32, payload: &[u8], fin: bool, out: &mut Vec<Piece>) {
        self.segment_at(seq, payload, fin, Stamp::default(), out);
    }

    /// [`Reassembler::segment`], with a stamp its bytes carry out.
    pub fn segment_at(
        &mut self,
        seq: u32,
        payload: &[u8],
        fin: bool,
        ts: Stamp,
        out: &mut Vec<Piece>,
    ) {
        if self.isn.is_none() {
            if payload.is_empty() {
                return;
            }
            // The capture began mid-connection: the stream starts here.
            self.isn = Some(seq);
        }
        let Some(off) = self.offset(seq) else {
            self.stray_segments += 1;
            return;
        };
        if fin {
            let at = off + payload.len() as u64;
            if self.fin.is_none_or(|f| at < f) {
                self.fin = Some(at);
            }
        }
        if payload.is_empty() {
            return;
        }
        let end = off + payload.len() as u64;
        if end <= self.next {
            self.duplicate_bytes += payload.len() as u64;
            return;
        }
        if off <= self.next {
            let skip = (self.next - off) as usize;
            self.duplicate_bytes += skip as u64;
            self.hand_out(payload[skip..].to_vec(), ts, out);
            self.drain(out);
            return;
        }
        match self.pending.get(&off) {
            Some((held, _)) if held.len() >= payload.len() => {
                self.duplicate_bytes += payload.len() as u64;
                return;
            }
            Some((held, _)) => {
                self.duplicate_bytes += held.len() as u64;
                self.buffered -= held.len();
            }
            None => {}
        }
        self.buffered += payload.len();
        self.pending.insert(off, (payload.to_vec(), ts));
        while self.buffered > self.max_buffered {
            // No room to wait for the hole: it is lost.
            let Some(first) = self.pending.keys().next().copied() else {
                break;
            };
            self.gap_to(first, out);
            self.drain(out);
        }
    }

    /// The peer acknowledged everything before `ack`: bytes before it that the capture did
    /// not see are lost (the caller decides when an acknowledgement is proof enough).
    pub fn acked(&mut self, ack: u32, out: &mut Vec<Piece>) {
        let Some(target) = self.target(ack) else {
            return;
        };
        while self.next < target {
            match self.pending.keys().next().copied() {
                Some(first) if first <= self.next => self.drain(out),
                Some(first) => {
                    self.gap_to(first.min(target), out);
                    self.drain(out);
                }
                None => self.gap_to(target, out),
            }
        }
    }

    /// The stream offset an acknowledgement number stands for (the FIN, which takes a
    /// sequence number, is not a byte), if it lies within reach of the stream.
    pub fn target(&self, ack: u32) -> Option<u64> {
        let target = self.offset(ack)?;
        Some(match self.fin {
            Some(f) => target.min(f),
            None => target,
        })
    }

    /// The connection ended: segments still waiting behind a hole are handed out after it.
    pub fn finish(&mut self, out: &mut Vec<Piece>) {
        while let Some(first) = self.pending.keys().next().copied() {
            self.gap_to(first, out);
            self.drain(out);
        }
        if let Some(f) = self.fin {
            // Bytes before the FIN that never came.
            if f > self.next {
                self.gap_to(f, out);
            }
        }
    }

    fn gap_to(&mut self, at: u64, out: &mut Vec<Piece>) {
        if at > self.next {
            let n = at - self.next;
            self.lost += n;
            self.next = at;
            out.push(Piece::Gap(n));
        }
    }

    fn hand_out(&mut self, bytes: Vec<u8>, ts: Stamp, out: &mut Vec<Piece>) {
        if bytes.is_empty() {
            return;
        }
        self.next += bytes.len() as u64;
        self.delivered += bytes.len() as u64;
        out.push(Piece::Data(bytes, ts));
    }

    /// Held segments that now continue the stream.
    fn drain(&mut self, out: &mut Vec<Piece>) {
        while let Some((&off, _)) = self.pending.iter().next() {
            if off > self.next {
                break;
            }
            let Some((bytes, ts)) = self.pending.remove(&off) else {
                break;
            };
            self.buffered -= bytes.len();
            let end = off + bytes.len() as u64;
            if end <= self.next {
                self.duplicate_bytes += bytes.len() as u64;
                continue;
            }
            let skip = (self.next - off) as usize;
            self.duplicate_bytes += skip as u64;
            self.hand_out(bytes[skip..].to_vec(), ts, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn joined(pieces: &[Piece]) -> (Vec<u8>, Vec<u64>) {
        let mut data = Vec::new();
        let mut gaps = Vec::new();
        for p in pieces {
            match p {
                Piece::Data(d, _) => data.extend_from_slice(d),
                Piece::Gap(n) => gaps.push(*n),
            }
        }
        (data, gaps)
    }

    /// `stream` cut at `cuts` into segments (offset, bytes).
    fn segments(stream: &[u8], cuts: &[usize]) -> Vec<(usize, Vec<u8>)> {
        let mut at: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
        at.push(0);
        at.push(stream.len());
        at.sort_unstable();
        at.dedup();
        at.windows(2)
            .map(|w| (w[0], stream[w[0]..w[1]].to_vec()))
            .collect()
    }

    #[test]
    fn in_order_across_the_wrap() {
        let mut r = Reassembler::new(1 << 20);
        let mut out = Vec::new();
        r.syn(u32::MAX - 2);
        r.segment(u32::MAX - 1, b"abc", false, &mut out);
        r.segment(1, b"def", false, &mut out);
        r.segment(4, b"g", true, &mut out);
        assert_eq!(joined(&out), (b"abcdefg".to_vec(), vec![]));
        assert!(r.ended());
    }

    #[test]
    fn a_hole_the_peer_acknowledged_is_a_gap() {
        let mut r = Reassembler::new(1 << 20);
        let mut out = Vec::new();
        r.syn(100);
        r.segment(101, b"aaaa", false, &mut out);
        r.segment(109, b"cccc", false, &mut out);
        assert_eq!(joined(&out).0, b"aaaa");
        r.acked(113, &mut out);
        assert_eq!(joined(&out), (b"aaaacccc".to_vec(), vec![4]));
        // The lost segment arriving late changes nothing.
        r.segment(105, b"bbbb", false, &mut out);
        assert_eq!(joined(&out), (b"aaaacccc".to_vec(), vec![4]));
    }

    #[test]
    fn a_full_buffer_gives_the_hole_up() {
        let mut r = Reassembler::new(8);
        let mut out = Vec::new();
        r.segment(0, b"ab", false, &mut out);
        r.segment(4, b"efgh", false, &mut out);
        r.segment(8, b"ijklm", false, &mut out);
        assert_eq!(joined(&out), (b"abefghijklm".to_vec(), vec![2]));
        assert_eq!(r.buffered(), 0);
    }

    #[test]
    fn mid_stream_starts_at_the_first_data() {
        let mut r = Reassembler::new(1 << 20);
        let mut out = Vec::new();
        r.segment(5000, b"", false, &mut out);
        assert!(!r.started());
        r.segment(5000, b"xy", false, &mut out);
        r.segment(4990, b"old", false, &mut out);
        r.segment(5002, b"z", false, &mut out);
        assert_eq!(joined(&out), (b"xyz".to_vec(), vec![]));
    }

    proptest! {
        /// Any segmentation, in any order, with any duplicates and overlapping
        /// retransmissions, gives the stream back, across the sequence-number wrap.
        #[test]
        fn any_order_and_duplicates_give_the_stream_back(
            stream in proptest::collection::vec(any::<u8>(), 1..3000),
            cuts in proptest::collection::vec(any::<usize>(), 0..40),
            isn in prop_oneof![any::<u32>(), (u32::MAX - 3000)..=u32::MAX],
            order in proptest::collection::vec(any::<u64>(), 0..120),
            dups in proptest::collection::vec((any::<usize>(), any::<usize>(), any::<usize>()), 0..10),
        ) {
            let mut segs = segments(&stream, &cuts);
            // Retransmissions that overlap segment boundaries.
            for (a, b, c) in dups {
                let start = a % stream.len();
                let len = 1 + b % (stream.len() - start);
                segs.push((start, stream[start..start + len].to_vec()));
                let k = c % segs.len();
                let copy = segs[k].clone();
                segs.push(copy);
            }
            // A permutation from the random keys.
            let mut keyed: Vec<(u64, usize, (usize, Vec<u8>))> = segs
                .into_iter()
                .enumerate()
                .map(|(i, s)| (order.get(i).copied().unwrap_or(i as u64), i, s))
                .collect();
            keyed.sort();
            let mut r = Reassembler::new(1 << 20);
            let mut out = Vec::new();
            r.syn(isn);
            for (_, _, (off, bytes)) in keyed {
                r.segment(isn.wrapping_add(1).wrapping_add(off as u32), &bytes, false, &mut out);
            }
            r.finish(&mut out);
            prop_assert_eq!(joined(&out), (stream.clone(), vec![]));
            prop_assert_eq!(r.delivered, stream.len() as u64);
            prop_assert_eq!(r.buffered(), 0);
        }

        /// A segment the capture missed is one gap of exactly its length, whether the peer's
        /// acknowledgement or the end of the connection reveals it.
        #[test]
        fn a_dropped_segment_is_a_gap_of_its_length(
            stream in proptest::collection::vec(any::<u8>(), 3..3000),
            cuts in proptest::collection::vec(any::<usize>(), 2..40),
            isn in any::<u32>(),
            which in any::<usize>(),
            by_ack in any::<bool>(),
            shuffle in any::<bool>(),
        ) {
            let segs = segments(&stream, &cuts);
            prop_assume!(segs.len() >= 3);
            // Not the first (a mid-stream start would begin after it) nor the last (nothing
            // after it tells that it existed).
            let k = 1 + which % (segs.len() - 2);
            let mut kept: Vec<&(usize, Vec<u8>)> =
                segs.iter().enumerate().filter(|(i, _)| *i != k).map(|(_, s)| s).collect();
            if shuffle {
                kept.reverse();
            }
            let mut r = Reassembler::new(1 << 20);
            let mut out = Vec::new();
            r.syn(isn);
            for (off, bytes) in kept {
                r.segment(isn.wrapping_add(1).wrapping_add(*off as u32), bytes, false, &mut out);
            }
            if by_ack {
                r.acked(isn.wrapping_add(1).wrapping_add(stream.len() as u32), &mut out);
            } else {
                r.finish(&mut out);
            }
            let (data, gaps) = joined(&out);
            let (off, lost) = &segs[k];
            let mut expected = stream[..*off].to_vec();
            expected.extend_from_slice(&stream[off + lost.len()..]);
            prop_assert_eq!(data, expected);
            prop_assert_eq!(gaps, vec![lost.len() as u64]);
            prop_assert_eq!(r.lost, lost.len() as u64);
        }
    }
}
