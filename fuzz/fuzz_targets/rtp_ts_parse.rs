//! The RTP, MPEG-TS and ST 2022-1 FEC parsers over any bytes: no panic;
//! an accepted RTP packet's payload lies inside its datagram and its
//! sequence number is the datagram's; an accepted TS datagram is whole
//! packets that each start with the sync byte; an accepted FEC packet's
//! protected list has NA entries.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use tandem_udp::fec::FecPacket;
use tandem_udp::rtp::RtpPacket;
use tandem_udp::ts::{ContinuityCounters, TsDatagram, TsPacket};

fuzz_target!(|data: &[u8]| {
    let bytes = Bytes::copy_from_slice(data);
    if let Ok(p) = RtpPacket::parse(bytes.clone()) {
        assert!(p.payload().len() + 12 <= data.len());
        assert_eq!(p.sequence_number, u16::from_be_bytes([data[2], data[3]]));
        assert_eq!(p.datagram(), &bytes);
        check_ts(p.payload());
    }
    check_ts(bytes.clone());
    if let Some(first) = bytes.get(..188) {
        if let Ok(p) = TsPacket::parse(Bytes::copy_from_slice(first), 0) {
            let _ = (p.pcr(), p.payload(), p.discontinuity_indicator());
        }
    }
    if let Ok(f) = FecPacket::parse(bytes.clone()) {
        assert_eq!(f.protected().count(), usize::from(f.na));
        // Recovery with arbitrary partners never panics.
        let partners: Vec<Bytes> = data.chunks(40).map(Bytes::copy_from_slice).collect();
        let _ = f.recover(0, 0, partners.iter());
    }
});

fn check_ts(b: Bytes) {
    if let Ok(d) = TsDatagram::parse(b.clone()) {
        assert_eq!(d.len() * 188, b.len());
        let mut cc = ContinuityCounters::new();
        for p in d.packets() {
            let p = p.expect("a parsed datagram's packets parse");
            assert_eq!(p.bytes()[0], 0x47);
            let _ = (cc.on_packet(&p), p.pcr(), p.payload());
        }
    }
}
