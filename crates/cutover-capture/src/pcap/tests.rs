use cutover_workload::Command;
use etherparse::{SlicedPacket, TransportSlice};

use super::connection::starts_command;
use super::*;
use proptest::prelude::*;

fn run(bytes: Vec<u8>) -> Result<(PcapSummary, Vec<Record>), String> {
    let mut out = Vec::new();
    let s = capture(
        std::io::Cursor::new(bytes),
        &PcapOptions::default(),
        |r| -> Result<(), std::convert::Infallible> {
            out.push(r);
            Ok(())
        },
    )
    .map_err(|e| e.to_string())?;
    Ok((s, out))
}

#[test]
fn not_a_pcap_is_one_error() {
    assert!(run(b"hello world, this is not a capture".to_vec())
        .unwrap_err()
        .contains("not a pcap"));
    assert!(run(Vec::new()).unwrap_err().contains("empty"));
}

#[test]
fn command_starts() {
    assert!(starts_command(b"\x09\x00\x00\x00\x03SELECT 1"));
    assert!(starts_command(b"\x01\x00\x00\x00\x01"));
    assert!(!starts_command(b"\x09\x00\x00\x01\x03SELECT 1"));
    assert!(!starts_command(b"SELECT 1 FROM t"));
    assert!(!starts_command(b"\x02\x00\x00\x00\x03SELECT 1"));
}

/// An Ethernet/IPv4/TCP frame between 10.0.0.1:`cport` and 10.0.0.2:3306.
fn frame(
    from_client: bool,
    cport: u16,
    seq: u32,
    ack: u32,
    flags: &str,
    payload: &[u8],
) -> Vec<u8> {
    let (src, dst, sp, dp) = if from_client {
        ([10, 0, 0, 1], [10, 0, 0, 2], cport, 3306)
    } else {
        ([10, 0, 0, 2], [10, 0, 0, 1], 3306, cport)
    };
    frame_ip(src, dst, sp, dp, seq, ack, flags, payload, false)
}

#[allow(clippy::too_many_arguments)]
fn frame_ip(
    src: [u8; 4],
    dst: [u8; 4],
    sp: u16,
    dp: u16,
    seq: u32,
    ack: u32,
    flags: &str,
    payload: &[u8],
    v6: bool,
) -> Vec<u8> {
    let eth = etherparse::PacketBuilder::ethernet2([1; 6], [2; 6]);
    let six = |a: [u8; 4]| {
        let mut x = [0u8; 16];
        x[0] = 0xfd;
        x[12..].copy_from_slice(&a);
        x
    };
    let mut b = if v6 {
        eth.ipv6(six(src), six(dst), 64).tcp(sp, dp, seq, 65535)
    } else {
        eth.ipv4(src, dst, 64).tcp(sp, dp, seq, 65535)
    };
    if flags.contains('S') {
        b = b.syn();
    }
    if flags.contains('F') {
        b = b.fin();
    }
    if flags.contains('R') {
        b = b.rst();
    }
    if flags.contains('A') {
        b = b.ack(ack);
    }
    let mut out = Vec::new();
    let _ = b.write(&mut out, payload);
    out
}

/// A little-endian pcap file of Ethernet frames.
fn pcap_file(frames: &[(i64, Vec<u8>)]) -> Vec<u8> {
    pcap_file_of(frames, 1)
}

/// The same file with another link layer (the Ethernet frames' IP packets re-wrapped).
fn pcap_file_of(frames: &[(i64, Vec<u8>)], link: u32) -> Vec<u8> {
    let frames: Vec<(i64, Vec<u8>)> = frames.iter().map(|(t, f)| (*t, relink(f, link))).collect();
    let frames = &frames;
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&262_144u32.to_le_bytes());
    out.extend_from_slice(&link.to_le_bytes());
    for (ts, f) in frames {
        out.extend_from_slice(&((ts / 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&((ts % 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(f);
    }
    out
}

/// An Ethernet frame's IP packet under another link layer.
fn relink(eth: &[u8], link: u32) -> Vec<u8> {
    let ip = &eth[14..];
    let ethertype = [eth[12], eth[13]];
    let mut out = match link {
        1 => return eth.to_vec(),
        // Linux cooked v1: packet type, ARPHRD, address length, address (8), protocol.
        113 => [&[0, 0, 0, 1, 0, 6][..], &[1; 8], &ethertype].concat(),
        // v2: protocol, reserved, interface, ARPHRD, packet type, address length, address.
        276 => [&ethertype[..], &[0, 0, 0, 0, 0, 1, 0, 1, 0, 6], &[1; 8]].concat(),
        // BSD loopback: the address family in host order.
        0 => 2u32.to_le_bytes().to_vec(),
        _ => Vec::new(),
    };
    out.extend_from_slice(ip);
    out
}

/// A pcapng file (section, one interface with the default microsecond resolution,
/// enhanced packet blocks).
fn pcapng_file(frames: &[(i64, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    let block = |out: &mut Vec<u8>, kind: u32, body: &[u8]| {
        let mut body = body.to_vec();
        while !body.len().is_multiple_of(4) {
            body.push(0);
        }
        let len = (body.len() + 12) as u32;
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&body);
        out.extend_from_slice(&len.to_le_bytes());
    };
    let shb = [
        &0x1A2B_3C4Du32.to_le_bytes()[..],
        &1u16.to_le_bytes(),
        &0u16.to_le_bytes(),
        &(-1i64).to_le_bytes(),
    ]
    .concat();
    block(&mut out, 0x0A0D_0D0A, &shb);
    let idb = [
        &1u16.to_le_bytes()[..],
        &0u16.to_le_bytes(),
        &262_144u32.to_le_bytes(),
    ]
    .concat();
    block(&mut out, 1, &idb);
    for (ts, f) in frames {
        let ts = *ts as u64;
        let epb = [
            &0u32.to_le_bytes()[..],
            &((ts >> 32) as u32).to_le_bytes(),
            &(ts as u32).to_le_bytes(),
            &(f.len() as u32).to_le_bytes(),
            &(f.len() as u32).to_le_bytes(),
            f,
        ]
        .concat();
        block(&mut out, 6, &epb);
    }
    out
}

#[test]
fn every_link_layer_and_pcapng_give_the_same_records() {
    let frames = conversation(&["SELECT 1", "SELECT 2"], 1, 2);
    let (_, want) = run(pcap_file(&frames)).unwrap();
    assert_eq!(queries(&want), ["SELECT 1", "SELECT 2"]);
    for link in [113, 276, 0, 101] {
        let (s, got) = run(pcap_file_of(&frames, link)).unwrap();
        assert_eq!(got, want, "link type {link}");
        assert_eq!(s.undecodable_packets, 0);
    }
    let (_, got) = run(pcapng_file(&frames)).unwrap();
    assert_eq!(got, want, "pcapng");
    // An unknown link type is counted, not guessed.
    let (s, got) = run(pcap_file_of(&frames, 147)).unwrap();
    assert!(got.is_empty());
    assert_eq!(s.unsupported_link_types, [147]);
}

#[test]
fn ipv6_connections_decode_like_ipv4() {
    let v4 = conversation(&["SELECT 1"], 1, 2);
    let v6 = readdress(&v4, [10, 0, 0, 1], [10, 0, 0, 2], true);
    let (s, records) = run(pcap_file(&v6)).unwrap();
    assert_eq!(queries(&records), ["SELECT 1"]);
    assert_eq!(s.connections, 1);
}

fn mysql_packet(seq: u8, body: &[u8]) -> Vec<u8> {
    let mut p = (body.len() as u32).to_le_bytes()[..3].to_vec();
    p.push(seq);
    p.extend_from_slice(body);
    p
}

/// A connection already open when the capture began: `queries` each answered by OK
/// (affected rows = its index), as (time, frame), with a given client/server ISN.
fn conversation(queries: &[&str], cisn: u32, sisn: u32) -> Vec<(i64, Vec<u8>)> {
    let (mut c, mut s) = (cisn, sisn);
    let mut frames = Vec::new();
    let mut ts = 1_700_000_000_000_000i64;
    for (i, q) in queries.iter().enumerate() {
        let mut body = vec![0x03];
        body.extend_from_slice(q.as_bytes());
        let req = mysql_packet(0, &body);
        frames.push((ts, frame(true, 40000, c, s, "A", &req)));
        c = c.wrapping_add(req.len() as u32);
        ts += 100;
        let ok = mysql_packet(1, &[0x00, i as u8, 0x00, 0x02, 0x00, 0x00, 0x00]);
        frames.push((ts, frame(false, 40000, s, c, "A", &ok)));
        s = s.wrapping_add(ok.len() as u32);
        ts += 1000;
    }
    frames
}

fn queries(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .filter_map(|r| match &r.command {
            Command::Query { sql } => Some(sql.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_connection_begun_before_the_capture_decodes_from_its_first_command() {
    let frames = conversation(&["SELECT 1", "SELECT 2", "SELECT 3"], u32::MAX - 20, 7);
    let (s, records) = run(pcap_file(&frames)).unwrap();
    assert_eq!(queries(&records), ["SELECT 1", "SELECT 2", "SELECT 3"]);
    assert_eq!(s.mid_stream_sessions, 1);
    assert_eq!(s.connections, 1);
    assert_eq!(s.gaps, 0);
    assert!(records.iter().all(|r| r.db.is_none() && r.session == 1));
    let second = &records[1];
    assert_eq!(second.ts_us, 1_700_000_000_001_100);
    let resp = second.response.as_ref().unwrap();
    assert_eq!((resp.affected_rows, resp.latency_us), (Some(1), Some(100)));
    assert!(matches!(records.last().unwrap().command, Command::Quit));
}

#[test]
fn a_lost_client_segment_is_a_gap_of_its_length_and_decoding_resumes() {
    let mut frames = conversation(&["SELECT 1", "SELECT 22", "SELECT 3"], 1000, 5000);
    // The second query (14 bytes on the wire) is lost; its answer acknowledges it.
    frames.remove(2);
    let (s, records) = run(pcap_file(&frames)).unwrap();
    assert_eq!(queries(&records), ["SELECT 1", "SELECT 3"]);
    assert_eq!(s.gaps, 1);
    assert_eq!(s.bytes_lost, 14);
    assert_eq!(s.damaged_sessions, 1);
    assert_eq!(s.gap_list[0].from, "client");
    assert_eq!(s.gap_list[0].bytes, 14);
    // The third query's answer is its own, not the lost one's.
    let third = records
        .iter()
        .find(|r| queries(std::slice::from_ref(r)) == ["SELECT 3"])
        .unwrap();
    assert_eq!(third.response.as_ref().unwrap().affected_rows, Some(2));
}

#[test]
fn an_answer_captured_before_its_request_waits_for_it() {
    let mut frames = conversation(&["SELECT 1", "SELECT 22", "SELECT 3"], 1000, 5000);
    // The second answer was captured (by another CPU) before the second request.
    frames.swap(2, 3);
    let (s, records) = run(pcap_file(&frames)).unwrap();
    assert_eq!(s.gaps, 0);
    assert_eq!(queries(&records), ["SELECT 1", "SELECT 22", "SELECT 3"]);
    let affected: Vec<Option<u64>> = records
        .iter()
        .filter(|r| matches!(r.command, Command::Query { .. }))
        .map(|r| r.response.as_ref().and_then(|x| x.affected_rows))
        .collect();
    assert_eq!(affected, [Some(0), Some(1), Some(2)]);
}

/// A conversation's frames re-addressed: client `client`, server `server` (IPv4 or, with
/// `v6`, the same addresses in an IPv6 prefix).
fn readdress(
    frames: &[(i64, Vec<u8>)],
    client: [u8; 4],
    server: [u8; 4],
    v6: bool,
) -> Vec<(i64, Vec<u8>)> {
    frames
        .iter()
        .map(|(t, f)| {
            let p = SlicedPacket::from_ethernet(f).unwrap();
            let Some(TransportSlice::Tcp(tcp)) = p.transport else {
                unreachable!()
            };
            let (src, dst) = if tcp.source_port() == 3306 {
                (server, client)
            } else {
                (client, server)
            };
            let flags = if tcp.ack() { "A" } else { "" };
            (
                *t,
                frame_ip(
                    src,
                    dst,
                    tcp.source_port(),
                    tcp.destination_port(),
                    tcp.sequence_number(),
                    tcp.acknowledgment_number(),
                    flags,
                    tcp.payload(),
                    v6,
                ),
            )
        })
        .collect()
}

#[test]
fn several_servers_are_separate_sessions_and_unknown_statements_are_counted() {
    let a = conversation(&["SELECT 'a'"], 1, 2);
    let b = readdress(
        &conversation(&["SELECT 'b'"], 1, 2),
        [10, 0, 0, 1],
        [10, 0, 0, 9],
        false,
    );
    // An execute of statement 5, prepared before the capture: kept, and counted.
    let exec = [0x17, 5, 0, 0, 0, 0, 1, 0, 0, 0];
    let c = vec![
        (
            1_700_000_000_500_000,
            frame(true, 40001, 10, 20, "A", &mysql_packet(0, &exec)),
        ),
        (
            1_700_000_000_500_100,
            frame(
                false,
                40001,
                20,
                24,
                "A",
                &mysql_packet(1, &[0, 1, 0, 2, 0, 0, 0]),
            ),
        ),
    ];
    let mut all: Vec<(i64, Vec<u8>)> = a.into_iter().chain(b).chain(c).collect();
    all.sort_by_key(|f| f.0);
    let (s, records) = run(pcap_file(&all)).unwrap();
    assert_eq!((s.connections, s.servers), (3, 2));
    assert_eq!(s.mid_stream_sessions, 3);
    assert_eq!(s.unknown_statement_executes, 1);
    let sessions: std::collections::BTreeSet<u64> = records.iter().map(|r| r.session).collect();
    assert_eq!(sessions.into_iter().collect::<Vec<_>>(), [1, 2, 3]);
    assert!(records
        .iter()
        .any(|r| matches!(r.command, Command::Execute { stmt: 5, .. })));
}

/// What is decoded when the connection ends is counted once.
#[test]
fn records_decoded_at_the_end_are_counted_once() {
    let t = 1_700_000_000_000_000i64;
    let exec = mysql_packet(0, &[0x17, 5, 0, 0, 0, 0, 1, 0, 0, 0]);
    let ok = mysql_packet(1, &[0, 1, 0, 2, 0, 0, 0]);
    // Ten client bytes after the SYN never seen; the execute and its answer wait for
    // them until the end.
    let frames = vec![
        (t, frame(true, 40000, 99, 0, "S", &[])),
        (t + 1, frame(false, 40000, 499, 100, "SA", &[])),
        (t + 10, frame(true, 40000, 110, 500, "A", &exec)),
        (
            t + 20,
            frame(false, 40000, 500, 110 + exec.len() as u32, "A", &ok),
        ),
    ];
    let (s, records) = run(pcap_file(&frames)).unwrap();
    assert_eq!((s.gaps, s.bytes_lost), (1, 10));
    assert_eq!(s.unknown_statement_executes, 1);
    assert_eq!(s.sessions_without_commands, 0);
    let exec = records
        .iter()
        .find(|r| matches!(r.command, Command::Execute { stmt: 5, .. }))
        .unwrap();
    assert_eq!(
        exec.response.as_ref().and_then(|r| r.affected_rows),
        Some(1)
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    /// A conversation with segments lost, swapped with their neighbour and duplicated:
    /// the bytes lost are exactly the lost segments' (the last request and answer, which
    /// nothing after them acknowledges, are kept), and the queries decoded are the sent
    /// ones, in order, some missing.
    #[test]
    fn lost_swapped_and_duplicated_segments(
        n in 3usize..12,
        cisn in any::<u32>(),
        sisn in any::<u32>(),
        fate in proptest::collection::vec(0u8..10, 24),
        pace in prop_oneof![Just(1i64), Just(30)],
    ) {
        let sent: Vec<String> = (0..n).map(|i| format!("SELECT {}", "x".repeat(i + 1))).collect();
        let refs: Vec<&str> = sent.iter().map(String::as_str).collect();
        // At a slow pace, data waiting for bytes that never come stops waiting before
        // the end.
        let mut frames = conversation(&refs, cisn, sisn);
        let t0 = frames[0].0;
        for f in &mut frames {
            f.0 = t0 + (f.0 - t0) * pace;
        }
        let keep_from = frames.len() - 2;
        let mut out: Vec<(i64, Vec<u8>)> = Vec::new();
        let mut lost = 0u64;
        // A frame moves by one place at most (the last one already moved stays).
        let mut moved = true;
        for (i, f) in frames.iter().enumerate() {
            let fate = fate.get(i).copied().unwrap_or(9);
            let was_moved = std::mem::replace(&mut moved, false);
            match fate {
                0 if i < keep_from => {
                    let p = SlicedPacket::from_ethernet(&f.1).unwrap();
                    if let Some(TransportSlice::Tcp(t)) = p.transport {
                        lost += t.payload().len() as u64;
                    }
                    // The last frame out is still the one that moved, if it did.
                    moved = was_moved;
                }
                1 => {
                    out.push(f.clone());
                    out.push(f.clone());
                }
                2 if !was_moved && !out.is_empty() => {
                    let last = out.len() - 1;
                    out.push(f.clone());
                    out.swap(last, last + 1);
                    moved = true;
                }
                _ => out.push(f.clone()),
            }
        }
        // The connection's start was captured: every byte after it is accounted for.
        let t0 = frames[0].0 - 10;
        let mut all = vec![
            (t0, frame(true, 40000, cisn.wrapping_sub(1), 0, "S", &[])),
            (t0 + 1, frame(false, 40000, sisn.wrapping_sub(1), cisn, "SA", &[])),
        ];
        all.extend(out);
        let (s, records) = run(pcap_file(&all)).unwrap();
        prop_assert_eq!(s.bytes_lost, lost, "{:?}", s.gap_list);
        prop_assert_eq!(s.mid_stream_sessions, 0);
        let got = queries(&records);
        let mut at = 0;
        for q in &got {
            match sent[at..].iter().position(|x| x == q) {
                Some(i) => at += i + 1,
                None => prop_assert!(false, "{q} out of order in {got:?}"),
            }
        }
        if lost == 0 {
            prop_assert_eq!(got, sent);
        }
    }

    /// Well-formed frames with arbitrary flags, sequence numbers and MySQL-like or
    /// arbitrary payloads never panic the reassembly and decoding.
    #[test]
    fn arbitrary_segments_never_panic(
        segs in proptest::collection::vec(
            (any::<bool>(), 0u16..3, 0u32..4000, 0u32..4000, 0u8..16,
             prop_oneof![
                 proptest::collection::vec(any::<u8>(), 0..300),
                 ("[ -~]{0,40}", 0u8..0x20).prop_map(|(q, c)| {
                     let mut b = vec![c];
                     b.extend_from_slice(q.as_bytes());
                     mysql_packet(0, &b)
                 }),
             ]),
            0..60),
    ) {
        let frames: Vec<(i64, Vec<u8>)> = segs
            .iter()
            .enumerate()
            .map(|(i, (client, port, seq, ack, flags, payload))| {
                let f = ["S", "F", "R", "A"]
                    .iter()
                    .enumerate()
                    .filter(|(k, _)| flags & (1 << k) != 0)
                    .map(|(_, s)| *s)
                    .collect::<String>();
                (i as i64 * 10, frame(*client, 40000 + port, *seq, *ack, &f, payload))
            })
            .collect();
        let _ = run(pcap_file(&frames));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    /// Arbitrary bytes, and arbitrary bytes after a valid pcap header, never panic.
    #[test]
    fn arbitrary_bytes_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..4000),
        header in any::<bool>(),
        link in prop_oneof![Just(1u32), Just(0), Just(113), Just(276), Just(101), any::<u32>()],
    ) {
        let mut bytes = Vec::new();
        if header {
            bytes.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
            bytes.extend_from_slice(&2u16.to_le_bytes());
            bytes.extend_from_slice(&4u16.to_le_bytes());
            bytes.extend_from_slice(&[0; 8]);
            bytes.extend_from_slice(&65535u32.to_le_bytes());
            bytes.extend_from_slice(&link.to_le_bytes());
        }
        bytes.extend_from_slice(&body);
        let _ = run(bytes);
    }
}
