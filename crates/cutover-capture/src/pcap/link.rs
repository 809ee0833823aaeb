//! A captured packet's link layer, IP and TCP headers taken apart (by `etherparse`): the
//! TCP segment's addresses, flags, sequence numbers and payload, or why there is none.

use std::net::{IpAddr, SocketAddr};

use etherparse::{EtherType, NetSlice, SlicedPacket, TransportSlice};
use pcap_parser::Linktype;

/// The TCP part of a packet: addresses, ports, flags, sequence numbers and payload.
pub(super) struct Segment<'a> {
    pub(super) src: SocketAddr,
    pub(super) dst: SocketAddr,
    pub(super) seq: u32,
    pub(super) ack: Option<u32>,
    pub(super) syn: bool,
    pub(super) fin: bool,
    pub(super) rst: bool,
    pub(super) payload: &'a [u8],
}

pub(super) enum Parsed<'a> {
    Tcp(Segment<'a>),
    Other,
    Bad,
    Unsupported,
}

pub(super) fn parse(link: Linktype, data: &[u8]) -> Parsed<'_> {
    let sliced = match link {
        Linktype::ETHERNET => SlicedPacket::from_ethernet(data),
        Linktype::LINUX_SLL => SlicedPacket::from_linux_sll(data),
        Linktype::LINUX_SLL2 => {
            // 20 bytes: protocol type (EtherType), reserved, interface, ARPHRD, packet type,
            // address length, address.
            let (Some(proto), Some(rest)) = (data.get(..2), data.get(20..)) else {
                return Parsed::Bad;
            };
            SlicedPacket::from_ether_type(EtherType(u16::from_be_bytes([proto[0], proto[1]])), rest)
        }
        Linktype::NULL | Linktype::LOOP => match data.get(4..) {
            Some(rest) => SlicedPacket::from_ip(rest),
            None => return Parsed::Bad,
        },
        Linktype::RAW | Linktype::IPV4 | Linktype::IPV6 => SlicedPacket::from_ip(data),
        // DLT_RAW as some systems number it.
        Linktype(12) | Linktype(14) => SlicedPacket::from_ip(data),
        _ => return Parsed::Unsupported,
    };
    let Ok(p) = sliced else {
        return Parsed::Bad;
    };
    let (src, dst): (IpAddr, IpAddr) = match &p.net {
        Some(NetSlice::Ipv4(ip)) => (
            ip.header().source_addr().into(),
            ip.header().destination_addr().into(),
        ),
        Some(NetSlice::Ipv6(ip)) => (
            ip.header().source_addr().into(),
            ip.header().destination_addr().into(),
        ),
        _ => return Parsed::Other,
    };
    let Some(TransportSlice::Tcp(tcp)) = &p.transport else {
        return Parsed::Other;
    };
    Parsed::Tcp(Segment {
        src: SocketAddr::new(src, tcp.source_port()),
        dst: SocketAddr::new(dst, tcp.destination_port()),
        seq: tcp.sequence_number(),
        ack: tcp.ack().then(|| tcp.acknowledgment_number()),
        syn: tcp.syn(),
        fin: tcp.fin(),
        rst: tcp.rst(),
        payload: tcp.payload(),
    })
}
