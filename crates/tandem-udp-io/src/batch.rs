//! Batched receive (`recvmmsg`) and send (`sendmmsg`): one system call for
//! up to [`BATCH`] datagrams, which is what lets one core carry 100,000
//! packets a second. Through nix's safe wrappers (the workspace forbids
//! `unsafe`); the headers and buffers are allocated once per socket.
//!
//! On Linux the kernel can also move a run of equal-sized datagrams of one
//! flow as one buffer: UDP generic segmentation offload on send
//! (`UDP_SEGMENT`: one send of up to [`GSO_MAX_SEGMENTS`] datagrams, cut
//! into datagrams by the kernel or the NIC) and generic receive offload on
//! receive (`UDP_GRO`: datagrams of one flow that arrive together are
//! handed over as one buffer and a segment size). Each walks the network
//! stack once per run instead of once per datagram. Datagram boundaries are
//! kept: a receive cuts the buffer at the segment size again, so the flow
//! sees exactly the datagrams that were sent. A send falls back to
//! `sendmmsg` for good if the kernel or route refuses segmentation.
//!
//! Received datagrams are copied out of the fixed receive slots into an
//! [`Arena`]: a large buffer that hands out each datagram as a
//! reference-counted [`Bytes`] slice. A packet costs a copy, not an
//! allocation; the arena allocates a new block when the old one is full,
//! and reuses it once every packet cut from it has been dropped.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use bytes::{Bytes, BytesMut};
use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg,
    sendmmsg, setsockopt, sockopt,
};
use std::io::{IoSlice, IoSliceMut};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Datagrams (or GRO runs) per system call. 64: at 100,000 packets/s, a
/// batch is 0.6 ms of stream, well inside any skew window.
pub const BATCH: usize = 64;
/// Largest datagram received whole: 2048 bytes. Seven TS packets with
/// RTP (1328) or 2022-1 FEC (1344) headers fit; a larger one is counted
/// and dropped (`oversize`), never cut.
pub const SLOT: usize = 2048;
/// A GRO receive slot: the largest buffer the kernel hands over, one
/// UDP payload of 64 KiB.
pub const GRO_SLOT: usize = 64 << 10;
/// Bytes a GRO receive aims to take per system call: 512 KiB. A call asks
/// for as many messages as the last call's averaged this much in, from
/// 8 (runs of up to 49 datagrams of 1328 bytes, up to 392 datagrams) to
/// [`BATCH`] (datagrams that came one by one). Taking 64 full runs, 4 MiB,
/// from a backlog runs through buffers too large to stay in cache, so
/// that a flow behind would fall further behind.
pub const GRO_BYTES: usize = 512 << 10;
/// Most datagrams in one segmented send: the kernel's `UDP_MAX_SEGMENTS`
/// (64 before Linux 6.9, 128 since).
pub const GSO_MAX_SEGMENTS: usize = 64;
/// Most bytes in one segmented send: within one UDP payload (65,507 bytes
/// over IPv4), with room to spare.
pub const GSO_MAX_BYTES: usize = 63 << 10;
/// Arena block: 256 KiB, about 190 full datagrams.
const ARENA_BLOCK: usize = 256 << 10;
/// Full arena blocks kept for reuse once their packets are gone: 64
/// (16 MiB), more than a merge holds (a 50 ms window and 1024 packets of
/// history at 400,000 packets/s is about 25 MiB of which most is
/// released in order). A block beyond that is left to the allocator.
const ARENA_SPARE: usize = 64;

/// One received datagram's place in the batch.
#[derive(Debug, Clone, Copy, Default)]
pub struct Meta {
    pub len: usize,
    pub from: Option<SocketAddr>,
    /// The datagram was longer than [`SLOT`].
    pub truncated: bool,
}

/// One datagram of the last receive: where it lies in the slots.
#[derive(Debug, Clone, Copy)]
struct Seg {
    start: usize,
    meta: Meta,
}

/// Asks the kernel to hand this socket runs of datagrams as one buffer
/// (`UDP_GRO`, Linux 5.0 and later). False where it cannot; the socket
/// then receives one datagram per message, as without it.
pub fn enable_gro(socket: &std::net::UdpSocket) -> bool {
    setsockopt(socket, sockopt::UdpGroSegment, &true).is_ok()
}

/// Preallocated receive state of one socket.
#[derive(Debug)]
pub struct RecvBatch {
    slots: Box<[u8]>,
    /// Bytes per message slot: [`SLOT`], or [`GRO_SLOT`] with GRO.
    slot: usize,
    headers: MultiHeaders<SockaddrStorage>,
    segs: Vec<Seg>,
    /// Messages of the last receive (a GRO run is one).
    messages: usize,
    /// Messages the next receive asks for.
    ask: usize,
}

impl Default for RecvBatch {
    fn default() -> Self {
        Self::new()
    }
}

fn socket_addr(s: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = s.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    s.as_sockaddr_in6().map(|v6| SocketAddr::V6((*v6).into()))
}

/// Headers for a GRO receive: each message with room for the segment
/// size's control message.
fn gro_headers() -> MultiHeaders<SockaddrStorage> {
    MultiHeaders::preallocate(BATCH, Some(nix::cmsg_space!(i32)))
}

impl RecvBatch {
    /// A batch for a socket that receives one datagram per message.
    pub fn new() -> Self {
        Self {
            slots: vec![0u8; BATCH * SLOT].into_boxed_slice(),
            slot: SLOT,
            headers: MultiHeaders::preallocate(BATCH, None),
            segs: Vec::with_capacity(BATCH),
            messages: 0,
            ask: BATCH,
        }
    }

    /// A batch for a socket [`enable_gro`] succeeded on: 64 KiB slots (of
    /// which the kernel writes only what arrives) and the segment size
    /// read from each message.
    pub fn gro() -> Self {
        Self {
            // Zeroed and mostly never written: the kernel writes only what
            // arrives, and a call asks for few slots when runs are long.
            slots: vec![0u8; BATCH * GRO_SLOT].into_boxed_slice(),
            slot: GRO_SLOT,
            headers: gro_headers(),
            segs: Vec::with_capacity(BATCH * 8),
            messages: 0,
            ask: BATCH,
        }
    }

    /// Receives what is queued on `socket`, up to [`BATCH`] messages
    /// (with GRO, about [`GRO_BYTES`]), without waiting: `Err(WouldBlock)`
    /// when nothing is. Returns the number of datagrams, GRO runs cut back
    /// into their datagrams.
    pub fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        self.segs.clear();
        self.messages = 0;
        if self.slot == GRO_SLOT {
            // The kernel shrinks each message's control length to what it
            // wrote, and nix keeps it: fresh headers give every message
            // room for the segment size again (an allocation per system
            // call, not per datagram).
            self.headers = gro_headers();
        }
        let fd = socket.as_raw_fd();
        let Self {
            slots,
            slot,
            headers,
            segs,
            messages,
            ask,
        } = self;
        let (slot, ask) = (*slot, *ask);
        let mut bytes = 0;
        let got = socket.try_io(Interest::READABLE, || {
            let mut chunks = slots.chunks_exact_mut(slot);
            let mut iovs: [[IoSliceMut<'_>; 1]; BATCH] =
                std::array::from_fn(|_| [IoSliceMut::new(chunks.next().unwrap_or_default())]);
            let res = recvmmsg(
                fd,
                headers,
                iovs.iter_mut().take(ask),
                MsgFlags::MSG_DONTWAIT,
                None,
            )
            .map_err(io::Error::from)?;
            for (k, m) in res.enumerate() {
                *messages += 1;
                let from = m.address.as_ref().and_then(socket_addr);
                let len = m.bytes.min(slot);
                bytes += len;
                let cut = m.flags.contains(MsgFlags::MSG_TRUNC) || m.bytes > slot;
                let gso = m
                    .cmsgs()
                    .ok()
                    .into_iter()
                    .flatten()
                    .find_map(|c| match c {
                        ControlMessageOwned::UdpGroSegments(n) => usize::try_from(n).ok(),
                        _ => None,
                    })
                    .filter(|&n| n > 0 && n < len)
                    .unwrap_or(len);
                let base = k * slot;
                let mut off = 0;
                while off < len || (len == 0 && off == 0) {
                    let n = gso.min(len - off);
                    segs.push(Seg {
                        start: base + off,
                        meta: Meta {
                            len: n,
                            from,
                            // Only a message's last datagram can have been
                            // cut; any datagram over SLOT is oversize.
                            truncated: n > SLOT || (cut && off + n >= len),
                        },
                    });
                    if n == 0 {
                        break;
                    }
                    off += n;
                }
            }
            Ok(segs.len())
        });
        if self.slot == GRO_SLOT && self.messages > 0 {
            let per_message = (bytes / self.messages).max(1);
            self.ask = (GRO_BYTES / per_message).clamp(8, BATCH);
        }
        got
    }

    /// Messages the last [`recv`](Self::recv) took from the kernel: fewer
    /// than its datagrams when GRO handed over runs.
    pub fn messages(&self) -> usize {
        self.messages
    }

    /// Datagrams of the last [`recv`](Self::recv).
    pub fn len(&self) -> usize {
        self.segs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.segs.is_empty()
    }

    /// The `i`th datagram of the last receive and its metadata.
    pub fn get(&self, i: usize) -> Option<(&[u8], Meta)> {
        let s = *self.segs.get(i)?;
        Some((self.slots.get(s.start..s.start + s.meta.len)?, s.meta))
    }
}

/// Hands out received datagrams as [`Bytes`] without an allocation each.
#[derive(Debug, Default)]
pub struct Arena {
    block: BytesMut,
    /// Full blocks, oldest first, until every packet cut from one is
    /// dropped and it is taken again: packets leave a merge about in the
    /// order they came, so a flow cycles through the same memory instead
    /// of asking the allocator (and the kernel, for fresh pages) for a
    /// block every 190 packets.
    spare: std::collections::VecDeque<BytesMut>,
}

impl Arena {
    /// A copy of `data` that lives as long as any clone of it.
    pub fn copy(&mut self, data: &[u8]) -> Bytes {
        if self.block.capacity() - self.block.len() < data.len() {
            self.next_block(data.len());
        }
        self.block.extend_from_slice(data);
        self.block.split().freeze()
    }

    fn next_block(&mut self, at_least: usize) {
        let want = ARENA_BLOCK.max(at_least);
        let full = std::mem::take(&mut self.block);
        if full.capacity() > 0 {
            self.spare.push_back(full);
        }
        if let Some(front) = self.spare.front_mut()
            && front.try_reclaim(want)
            && let Some(b) = self.spare.pop_front()
        {
            self.block = b;
            return;
        }
        if self.spare.len() > ARENA_SPARE {
            self.spare.pop_front();
        }
        self.block = BytesMut::with_capacity(want);
    }

    /// Blocks the arena holds, in use or waiting to be reused.
    #[cfg(test)]
    fn blocks(&self) -> usize {
        self.spare.len() + usize::from(self.block.capacity() > 0)
    }
}

/// Preallocated send state of one socket.
#[derive(Debug)]
pub struct SendBatch {
    headers: MultiHeaders<SockaddrStorage>,
    /// One message with room for the segment size (`UDP_SEGMENT`).
    gso_headers: MultiHeaders<SockaddrStorage>,
    addrs: Vec<Option<SockaddrStorage>>,
    /// Segmented sends are tried until the kernel refuses one.
    gso: bool,
}

impl Default for SendBatch {
    fn default() -> Self {
        Self::new()
    }
}

/// How many of the datagrams from `from` on (of `count`) one segmented
/// send can carry, and their segment size: a run of equal lengths, which
/// one shorter datagram may end, within [`GSO_MAX_SEGMENTS`] and
/// [`GSO_MAX_BYTES`].
pub fn gso_run(len: impl Fn(usize) -> usize, from: usize, count: usize) -> (usize, usize) {
    let size = len(from);
    if size == 0 {
        return (1, 0);
    }
    let most = GSO_MAX_SEGMENTS.min(GSO_MAX_BYTES / size).max(1);
    let mut n = 1;
    while n < most && from + n < count {
        let l = len(from + n);
        if l > size || l == 0 {
            break;
        }
        n += 1;
        if l < size {
            break;
        }
    }
    (n, size)
}

/// An error that means segmentation itself is refused here (no kernel
/// support, a segment over the route's MTU, a device without checksum
/// offload), not that the datagrams cannot be sent.
fn gso_refused(e: &io::Error) -> bool {
    use nix::errno::Errno;
    e.raw_os_error().map(Errno::from_raw).is_some_and(|e| {
        matches!(
            e,
            Errno::EIO | Errno::EINVAL | Errno::EOPNOTSUPP | Errno::ENOPROTOOPT | Errno::EMSGSIZE
        )
    })
}

impl SendBatch {
    pub fn new() -> Self {
        Self {
            headers: MultiHeaders::preallocate(BATCH, None),
            gso_headers: MultiHeaders::preallocate(1, Some(nix::cmsg_space!(u16))),
            addrs: vec![None; BATCH],
            gso: true,
        }
    }

    /// A batch that never segments: one message per datagram.
    pub fn without_gso() -> Self {
        Self {
            gso: false,
            ..Self::new()
        }
    }

    /// Whether segmented sends are still in use.
    pub fn gso(&self) -> bool {
        self.gso
    }

    /// Sends `count` datagrams, the `i`th being the concatenation of the
    /// two slices `datagram(i)` gives, to `to`, waiting while the socket's
    /// buffer is full. Returns how many were sent; an error stops the
    /// batch (counted by the caller).
    pub async fn send<'d>(
        &mut self,
        socket: &UdpSocket,
        to: SocketAddr,
        count: usize,
        datagram: impl Fn(usize) -> (&'d [u8], &'d [u8]),
    ) -> io::Result<usize> {
        let dest = SockaddrStorage::from(to);
        for a in &mut self.addrs {
            *a = Some(dest);
        }
        let fd = socket.as_raw_fd();
        let len = |i: usize| {
            let (p, b) = datagram(i);
            p.len() + b.len()
        };
        let mut done = 0;
        // Bounded: every round sends at least one datagram or waits for room.
        while done < count {
            let (run, size) = if self.gso {
                gso_run(len, done, count)
            } else {
                (1, 0)
            };
            let sent = if run > 1 {
                let seg = u16::try_from(size).unwrap_or(u16::MAX);
                let Self {
                    gso_headers, addrs, ..
                } = self;
                let r = socket.try_io(Interest::WRITABLE, || {
                    let iovs: [IoSlice<'_>; 2 * GSO_MAX_SEGMENTS] = std::array::from_fn(|i| {
                        if i / 2 < run {
                            let (p, b) = datagram(done + i / 2);
                            IoSlice::new(if i % 2 == 0 { p } else { b })
                        } else {
                            IoSlice::new(&[])
                        }
                    });
                    let one: [&[IoSlice<'_>]; 1] = [&iovs[..2 * run]];
                    let res = sendmmsg(
                        fd,
                        gso_headers,
                        one.iter(),
                        &addrs[..1],
                        [ControlMessage::UdpGsoSegments(&seg)],
                        MsgFlags::MSG_DONTWAIT,
                    )
                    .map_err(io::Error::from)?;
                    Ok(if res.count() == 1 { run } else { 0 })
                });
                match r {
                    Err(e) if gso_refused(&e) => {
                        tracing::debug!(to = %to, error = %e, "segmented send refused; sending one datagram per message from now on");
                        self.gso = false;
                        continue;
                    }
                    r => r,
                }
            } else {
                // Up to the next run worth segmenting, one message each.
                let mut n = (count - done).min(BATCH);
                if self.gso {
                    n = 1;
                }
                let Self { headers, addrs, .. } = self;
                socket.try_io(Interest::WRITABLE, || {
                    let iovs: [[IoSlice<'_>; 2]; BATCH] = std::array::from_fn(|i| {
                        if i < n {
                            let (p, b) = datagram(done + i);
                            [IoSlice::new(p), IoSlice::new(b)]
                        } else {
                            [IoSlice::new(&[]), IoSlice::new(&[])]
                        }
                    });
                    let res = sendmmsg(
                        fd,
                        headers,
                        iovs[..n].iter(),
                        &addrs[..n],
                        [],
                        MsgFlags::MSG_DONTWAIT,
                    )
                    .map_err(io::Error::from)?;
                    Ok(res.count())
                })
            };
            match sent {
                Ok(0) => socket.writable().await?,
                Ok(k) => done += k,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => socket.writable().await?,
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn the_arena_reuses_a_block_once_its_packets_are_gone_and_never_one_in_use() {
        let mut arena = Arena::default();
        let mut live = std::collections::VecDeque::new();
        for i in 0..20_000usize {
            let d = datagram(i, 1328);
            live.push_back((i, arena.copy(&d)));
            // A merge's history: the last 1024 packets stay referenced.
            if live.len() > 1024 {
                live.pop_front();
            }
            if i % 997 == 0 {
                assert!(
                    live.iter().all(|(k, b)| b[..] == datagram(*k, 1328)[..]),
                    "a packet in use was overwritten"
                );
            }
        }
        // 1024 packets are 1.3 MiB, six blocks; the arena cycles through
        // about that many instead of one more every 197 packets.
        assert!(arena.blocks() <= 8, "{} blocks", arena.blocks());
    }

    #[test]
    fn a_run_is_equal_lengths_that_one_shorter_datagram_may_end() {
        let lens = [1328, 1328, 1328, 500, 1328, 188, 188, 3000, 0, 0];
        let len = |i: usize| lens[i];
        assert_eq!(gso_run(len, 0, lens.len()), (4, 1328));
        assert_eq!(gso_run(len, 4, lens.len()), (2, 1328));
        // A longer datagram ends the run before it.
        assert_eq!(gso_run(len, 5, lens.len()), (2, 188));
        assert_eq!(gso_run(len, 7, lens.len()), (1, 3000));
        // An empty datagram is sent alone.
        assert_eq!(gso_run(len, 8, lens.len()), (1, 0));
        // The count bounds the run.
        assert_eq!(gso_run(len, 0, 2), (2, 1328));
        // At most 64 segments, and at most GSO_MAX_BYTES.
        assert_eq!(gso_run(|_| 100, 0, 1000), (GSO_MAX_SEGMENTS, 100));
        assert_eq!(gso_run(|_| 1328, 0, 1000), (GSO_MAX_BYTES / 1328, 1328));
        assert_eq!(gso_run(|_| 40_000, 0, 1000), (1, 40_000));
    }

    /// Datagram `i` of the test stream: its length, and its bytes (the
    /// index in the first two, then a pattern).
    fn datagram(i: usize, len: usize) -> Vec<u8> {
        (0..len)
            .map(|k| match k {
                0 => (i >> 8) as u8,
                1 => i as u8,
                _ => (k * 7 + i) as u8,
            })
            .collect()
    }

    /// A loopback receive socket with room for every test datagram.
    fn bound(gro: bool) -> UdpSocket {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
        s.set_recv_buffer_size(4 << 20).unwrap();
        s.set_nonblocking(true).unwrap();
        s.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        let s: std::net::UdpSocket = s.into();
        if gro {
            assert!(enable_gro(&s), "this kernel offers UDP GRO");
        }
        UdpSocket::from_std(s).unwrap()
    }

    async fn receive_all(
        sock: &UdpSocket,
        batch: &mut RecvBatch,
        want: usize,
    ) -> (Vec<(Vec<u8>, bool)>, usize) {
        let mut got = Vec::new();
        let mut messages = 0;
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while got.len() < want {
            tokio::time::timeout_at(deadline, sock.readable())
                .await
                .expect("every datagram arrives")
                .unwrap();
            while let Ok(n) = batch.recv(sock) {
                if n == 0 {
                    break;
                }
                messages += batch.messages();
                for i in 0..n {
                    let (d, m) = batch.get(i).unwrap();
                    assert_eq!(m.len, d.len());
                    got.push((d.to_vec(), m.truncated));
                }
            }
        }
        (got, messages)
    }

    /// Segmented sends and GRO receives keep every datagram's bytes and
    /// boundaries, to a receiver with GRO and to one without.
    #[tokio::test]
    async fn segmented_sends_arrive_as_the_datagrams_sent_with_and_without_gro() {
        let mut lens = vec![1328; 100];
        lens.push(500);
        lens.extend([1328; 3]);
        lens.extend([188, 188]);
        lens.push(3000);
        lens.extend([1316; 60]);
        let sent: Vec<Vec<u8>> = lens
            .iter()
            .enumerate()
            .map(|(i, &l)| datagram(i, l))
            .collect();
        let (gro_sock, mut gro_batch) = (bound(true), RecvBatch::gro());
        let (plain_sock, mut plain_batch) = (bound(false), RecvBatch::new());
        let tx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut batch = SendBatch::new();
        for to in [
            gro_sock.local_addr().unwrap(),
            plain_sock.local_addr().unwrap(),
        ] {
            let n = batch
                .send(&tx, to, sent.len(), |i| (&sent[i][..2], &sent[i][2..]))
                .await
                .unwrap();
            assert_eq!(n, sent.len());
        }
        assert!(batch.gso(), "loopback takes segmented sends");
        for (sock, batch, gro) in [
            (&gro_sock, &mut gro_batch, true),
            (&plain_sock, &mut plain_batch, false),
        ] {
            let (got, messages) = receive_all(sock, batch, sent.len()).await;
            assert_eq!(got.len(), sent.len(), "gro: {gro}");
            for (i, ((d, truncated), want)) in got.iter().zip(&sent).enumerate() {
                if want.len() > SLOT {
                    // Over the slot: counted as oversize, with or without GRO.
                    assert!(truncated, "datagram {i} (gro: {gro})");
                    assert_eq!(&d[..SLOT], &want[..SLOT], "datagram {i} (gro: {gro})");
                } else {
                    assert!(!truncated, "datagram {i} (gro: {gro})");
                    assert_eq!(d, want, "datagram {i} (gro: {gro})");
                }
            }
            if gro {
                assert!(
                    messages < sent.len() / 10,
                    "GRO handed over runs: {messages} messages"
                );
            } else {
                assert_eq!(messages, sent.len());
            }
        }
    }

    #[tokio::test]
    async fn without_gso_every_datagram_is_its_own_message() {
        let sent: Vec<Vec<u8>> = (0..130).map(|i| datagram(i, 1328)).collect();
        let sock = bound(true);
        let tx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut batch = SendBatch::without_gso();
        let to = sock.local_addr().unwrap();
        let n = batch
            .send(&tx, to, sent.len(), |i| (&sent[i][..], &[][..]))
            .await
            .unwrap();
        assert_eq!(n, sent.len());
        let mut rb = RecvBatch::gro();
        let (got, messages) = receive_all(&sock, &mut rb, sent.len()).await;
        assert_eq!(messages, sent.len());
        assert!(got.iter().map(|(d, _)| d).eq(sent.iter()));
    }

    /// A loopback GRO receiver, its address, a sender and a GRO batch.
    async fn gro_receiver() -> (UdpSocket, SocketAddr, UdpSocket, RecvBatch) {
        let sock = bound(true);
        let to = sock.local_addr().unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        (sock, to, tx, RecvBatch::gro())
    }

    /// Receives once, once `sock` is readable: (datagrams, messages).
    async fn receive_once(sock: &UdpSocket, rb: &mut RecvBatch) -> (usize, usize) {
        tokio::time::timeout(std::time::Duration::from_secs(5), sock.readable())
            .await
            .expect("something arrives")
            .unwrap();
        let n = rb.recv(sock).unwrap();
        (n, rb.messages())
    }

    #[tokio::test]
    async fn a_gro_receive_takes_few_long_runs_or_many_lone_datagrams_per_call() {
        let (sock, to, tx, mut rb) = gro_receiver().await;
        // 20 runs of 48 datagrams (63 KiB each), twice.
        let runs: Vec<Vec<u8>> = (0..960).map(|i| datagram(i, 1328)).collect();
        let mut gso = SendBatch::new();
        gso.send(&tx, to, runs.len(), |i| (&runs[i][..], &[][..]))
            .await
            .unwrap();
        let (n, m) = receive_once(&sock, &mut rb).await;
        assert_eq!((n, m), (960, 20), "the first call asks for 64 messages");
        gso.send(&tx, to, runs.len(), |i| (&runs[i][..], &[][..]))
            .await
            .unwrap();
        let (n, m) = receive_once(&sock, &mut rb).await;
        assert!(
            m <= 8 && n <= 8 * 48,
            "after long runs, about 512 KiB: {m} messages, {n} datagrams"
        );
        let _ = receive_all(&sock, &mut rb, 960 - n).await;
        // Lone datagrams: the next call but one takes 64 of them.
        let lone: Vec<Vec<u8>> = (0..100).map(|i| datagram(i, 1328)).collect();
        SendBatch::without_gso()
            .send(&tx, to, lone.len(), |i| (&lone[i][..], &[][..]))
            .await
            .unwrap();
        let (first, _) = receive_once(&sock, &mut rb).await;
        let (n, m) = receive_once(&sock, &mut rb).await;
        assert_eq!((n, m), (64, 64), "after {first} lone datagrams, 64 a call");
    }

    /// The kernel shrinks a message's control length to what it wrote: a
    /// slot that last held a lone datagram (no segment size) must still
    /// take a run's segment size on the next receive.
    #[tokio::test]
    async fn a_gro_slot_that_held_a_lone_datagram_takes_a_run_next() {
        let (sock, to, tx, mut rb) = gro_receiver().await;
        let mut batch = SendBatch::new();
        let lone = [datagram(0, 188)];
        batch
            .send(&tx, to, 1, |i| (&lone[i][..], &[][..]))
            .await
            .unwrap();
        let (got, messages) = receive_all(&sock, &mut rb, 1).await;
        assert_eq!((got.len(), messages), (1, 1));
        let run: Vec<Vec<u8>> = (1..11).map(|i| datagram(i, 1328)).collect();
        batch
            .send(&tx, to, run.len(), |i| (&run[i][..], &[][..]))
            .await
            .unwrap();
        let (got, messages) = receive_all(&sock, &mut rb, run.len()).await;
        assert_eq!(messages, 1, "one GRO run");
        assert!(got.iter().all(|(_, t)| !t));
        assert!(got.iter().map(|(d, _)| d).eq(run.iter()));
    }
}
