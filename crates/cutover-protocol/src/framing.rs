//! Packets out of a byte stream, in either direction, with or without the compressed
//! protocol.
//!
//! A MySQL packet is a 3-byte little-endian payload length, a 1-byte sequence id and the
//! payload; a payload of 0xFFFFFF bytes continues in the next packet (a command or a row
//! larger than 16 MiB). With `CLIENT_COMPRESS` on, packets travel inside compressed frames:
//! a 3-byte compressed length, a 1-byte sequence id, a 3-byte uncompressed length (0: the
//! frame is not compressed) and the (zlib) bytes. Both layers are streaming: bytes may come
//! in any slices (TCP segments), and a frame or packet is released only once complete.

use std::io::Read;

/// The largest payload of one physical packet; a payload this long continues.
const MAX_PAYLOAD: usize = 0xFF_FFFF;
/// A logical packet larger than this is refused (a corrupt length, not a real packet).
pub const MAX_LOGICAL: usize = 1 << 30;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("a packet of {0} bytes is larger than the protocol allows (corrupt stream?)")]
    TooLarge(usize),
    #[error("a compressed frame does not inflate: {0}")]
    Inflate(#[source] std::io::Error),
    #[error("a compressed frame inflates to {got} bytes, its header says {want}")]
    InflatedLength { got: usize, want: usize },
}

/// One logical packet: its first sequence id and its whole payload.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Packet {
    pub seq: u8,
    pub payload: Vec<u8>,
}

/// Reassembles packets from bytes of one direction.
#[derive(Debug, Default)]
pub struct PacketReader {
    /// Bytes received; those before `start` are already made into packets (dropped at the
    /// next push, so taking many packets out of one read copies nothing twice).
    buf: Vec<u8>,
    start: usize,
    /// A payload continued over several physical packets: what came so far.
    partial: Option<Packet>,
}

impl PacketReader {
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The raw bytes not yet made into packets (the framing changes under them).
    pub fn take_raw(&mut self) -> Vec<u8> {
        let mut raw = std::mem::take(&mut self.buf);
        raw.drain(..self.start);
        self.start = 0;
        raw
    }

    /// Bytes waiting (an incomplete packet).
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start + self.partial.as_ref().map_or(0, |p| p.payload.len())
    }

    /// The next complete logical packet, if the bytes so far hold one.
    pub fn next_packet(&mut self) -> Result<Option<Packet>, FrameError> {
        loop {
            let b = &self.buf[self.start..];
            if b.len() < 4 {
                return Ok(None);
            }
            let len = usize::from(b[0]) | usize::from(b[1]) << 8 | usize::from(b[2]) << 16;
            let seq = b[3];
            if b.len() < 4 + len {
                return Ok(None);
            }
            let body: Vec<u8> = b[4..4 + len].to_vec();
            self.start += 4 + len;
            let total = self.partial.as_ref().map_or(0, |p| p.payload.len()) + body.len();
            if total > MAX_LOGICAL {
                self.partial = None;
                return Err(FrameError::TooLarge(total));
            }
            let mut packet = match self.partial.take() {
                Some(mut p) => {
                    p.payload.extend_from_slice(&body);
                    p
                }
                None => Packet { seq, payload: body },
            };
            if len == MAX_PAYLOAD {
                // Continues in the next physical packet.
                self.partial = Some(std::mem::take(&mut packet));
                continue;
            }
            return Ok(Some(packet));
        }
    }
}

/// Unwraps compressed frames into the uncompressed packet stream.
#[derive(Debug, Default)]
pub struct CompressedReader {
    buf: Vec<u8>,
}

impl CompressedReader {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The bytes of every complete frame so far, inflated, in order.
    pub fn drain(&mut self) -> Result<Vec<u8>, FrameError> {
        let mut out = Vec::new();
        loop {
            if self.buf.len() < 7 {
                return Ok(out);
            }
            let clen = usize::from(self.buf[0])
                | usize::from(self.buf[1]) << 8
                | usize::from(self.buf[2]) << 16;
            let ulen = usize::from(self.buf[4])
                | usize::from(self.buf[5]) << 8
                | usize::from(self.buf[6]) << 16;
            if self.buf.len() < 7 + clen {
                return Ok(out);
            }
            let frame: Vec<u8> = self.buf.drain(..7 + clen).skip(7).collect();
            if ulen == 0 {
                out.extend_from_slice(&frame);
                continue;
            }
            let mut inflated = Vec::with_capacity(ulen.min(MAX_PAYLOAD + 1));
            flate2::read::ZlibDecoder::new(&frame[..])
                .take(MAX_PAYLOAD as u64 + 1)
                .read_to_end(&mut inflated)
                .map_err(FrameError::Inflate)?;
            if inflated.len() != ulen {
                return Err(FrameError::InflatedLength {
                    got: inflated.len(),
                    want: ulen,
                });
            }
            out.extend_from_slice(&inflated);
        }
    }
}

/// The wire form of one payload (for tests and replay): split at 16 MiB as the protocol
/// requires.
pub fn encode_packet(seq: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 4);
    let mut seq = seq;
    let mut rest = payload;
    loop {
        let n = rest.len().min(MAX_PAYLOAD);
        out.extend_from_slice(&[n as u8, (n >> 8) as u8, (n >> 16) as u8, seq]);
        out.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        seq = seq.wrapping_add(1);
        if n < MAX_PAYLOAD {
            return out;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn packets_split_anywhere_come_out_whole() {
        let mut wire = encode_packet(0, b"hello");
        wire.extend(encode_packet(1, b""));
        wire.extend(encode_packet(2, &vec![7u8; MAX_PAYLOAD + 10]));
        let mut r = PacketReader::default();
        let mut got = Vec::new();
        for chunk in wire.chunks(1000) {
            r.push(chunk);
            while let Some(p) = r.next_packet().expect("valid") {
                got.push(p);
            }
        }
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].payload, b"hello");
        assert_eq!(got[1].payload, b"");
        assert_eq!(got[2].payload.len(), MAX_PAYLOAD + 10);
        assert_eq!(r.pending(), 0);
    }

    #[test]
    fn compressed_frames_inflate() {
        use std::io::Write;
        let inner = encode_packet(0, b"SELECT 1");
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&inner).expect("compress");
        let body = z.finish().expect("compress");
        let mut frame = vec![
            body.len() as u8,
            (body.len() >> 8) as u8,
            (body.len() >> 16) as u8,
            0,
            inner.len() as u8,
            0,
            0,
        ];
        frame.extend(&body);
        // And an uncompressed frame after it.
        let plain = encode_packet(1, b"x");
        frame.extend([plain.len() as u8, 0, 0, 1, 0, 0, 0]);
        frame.extend(&plain);
        let mut c = CompressedReader::default();
        c.push(&frame[..5]);
        assert!(c.drain().expect("ok").is_empty());
        c.push(&frame[5..]);
        let bytes = c.drain().expect("ok");
        let mut r = PacketReader::default();
        r.push(&bytes);
        assert_eq!(
            r.next_packet().expect("ok").expect("one").payload,
            b"SELECT 1"
        );
        assert_eq!(r.next_packet().expect("ok").expect("two").payload, b"x");
    }

    proptest! {
        /// Arbitrary bytes never panic either layer.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let mut r = PacketReader::default();
            r.push(&bytes);
            while let Ok(Some(_)) = r.next_packet() {}
            let mut c = CompressedReader::default();
            c.push(&bytes);
            let _ = c.drain();
        }

        /// Any payloads, any split: the same payloads come out.
        #[test]
        fn round_trip(payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..10),
                      split in 1usize..64) {
            let mut wire = Vec::new();
            for (i, p) in payloads.iter().enumerate() {
                wire.extend(encode_packet(i as u8, p));
            }
            let mut r = PacketReader::default();
            let mut got = Vec::new();
            for chunk in wire.chunks(split) {
                r.push(chunk);
                while let Some(p) = r.next_packet().expect("valid") {
                    got.push(p.payload);
                }
            }
            prop_assert_eq!(got, payloads);
        }
    }
}
