use super::*;
use crate::framing::encode_packet;
use proptest::prelude::*;

/// Mid-stream, whether the client asked for `CLIENT_DEPRECATE_EOF` is unknown: a prepare
/// response decodes whether its definitions end with an EOF or not, and the next answer
/// goes to the next command.
#[test]
fn mid_stream_prepare_with_or_without_eof() {
    for with_eof in [false, true] {
        let mut s = Session::mid_stream();
        let mut events = Vec::new();
        let mut prepare = vec![0x16];
        prepare.extend_from_slice(b"INSERT INTO t VALUES (?)");
        events.extend(s.client(&encode_packet(0, &prepare)));
        // OK, statement 7, 0 columns, 1 parameter, filler, 0 warnings.
        let ok = [0x00, 7, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0];
        let mut param = Vec::new();
        for x in ["def", "", "", "", "?", ""] {
            param.push(x.len() as u8);
            param.extend_from_slice(x.as_bytes());
        }
        param.extend_from_slice(&[0x0c, 63, 0, 0, 0, 0, 0, 0xfd, 0x80, 0, 0, 0, 0]);
        let mut server = encode_packet(1, &ok);
        server.extend(encode_packet(2, &param));
        if with_eof {
            server.extend(encode_packet(3, &[0xfe, 0, 0, 2, 0]));
        }
        events.extend(s.server(&server));
        events.extend(s.client(&encode_packet(0, &[0x0e])));
        events.extend(s.server(&encode_packet(1, &[0x00, 0, 0, 2, 0, 0, 0])));
        let kinds: Vec<String> = events
            .iter()
            .map(|e| match e {
                Event::Command(c) => format!("{c:?}")
                    .split([' ', '{'])
                    .next()
                    .unwrap_or("")
                    .to_string(),
                Event::Response(Response::Prepared { stmt_id, .. }) => {
                    format!("prepared {stmt_id}")
                }
                Event::Response(Response::Ok { .. }) => "ok".into(),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            kinds,
            ["Prepare", "prepared 7", "Ping", "ok"],
            "with EOF: {with_eof}"
        );
    }
}

proptest! {
    /// Any bytes, in any order of directions, never panic the decoder.
    #[test]
    fn arbitrary_conversations_never_panic(
        chunks in proptest::collection::vec((any::<bool>(), proptest::collection::vec(any::<u8>(), 0..200)), 0..40),
        mid in any::<bool>(),
    ) {
        let mut s = if mid { Session::mid_stream() } else { Session::new() };
        for (client, bytes) in chunks {
            let _ = if client { s.client(&bytes) } else { s.server(&bytes) };
        }
    }

    /// Well-framed packets with arbitrary bodies, after a mid-stream start: the first
    /// client packet is a command event or an undecodable one; nothing panics.
    #[test]
    fn framed_garbage_is_reported_not_fatal(
        packets in proptest::collection::vec((any::<bool>(), proptest::collection::vec(any::<u8>(), 1..120)), 0..40),
    ) {
        let mut s = Session::mid_stream();
        let mut first_client = true;
        for (client, body) in packets {
            let wire = encode_packet(0, &body);
            let ev = if client { s.client(&wire) } else { s.server(&wire) };
            if client && first_client {
                prop_assert!(!ev.is_empty());
                first_client = false;
            }
        }
    }
}
