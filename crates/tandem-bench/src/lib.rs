//! Load scenarios that wrk cannot express, for `docs/benchmarks.md`.
//!
//! - [`client`]: a keep-alive HTTP/1.1 client that sends exactly what a test
//!   asks for; written here because the scenarios need precise timing of
//!   the last body byte and no client crate is needed for that.
//! - [`scenarios`]: publish latency, scale (channels × pipelines ×
//!   renditions with readers), memory during 2 GB transfers.
//! - [`mediastore`]: MediaStore-style PutObject/GetObject req/s beside
//!   nginx, and the time to first byte of a STREAMING GET.
//! - [`hostile`]: the encoder's upload latency under hostile loads.
//! - [`sign`]: SigV4 signing (`mediastore`, `s3`) by `aws-sigv4`.
//! - [`smooth`]: Smooth publishing points at scale, replaying the captured
//!   ffmpeg push with shifted `tfxd` times: publish delay, CPU, RSS.
//! - [`soak`]: live load held for a long time, the server's resources
//!   sampled to show they stay flat.
//! - [`digest`]: an HTTP Digest client (RFC 7616), as WebDAV encoders sign.
//! - [`chaos`]: kill points: `tandem serve` under load, SIGKILL at a
//!   seeded moment, restarted and checked against its promises.
//! - [`udp`]: the SMPTE ST 2022-7 merge's throughput on loopback (a flow
//!   run in process, no server).
//!
//! Everything but `chaos` targets a server given by URL and admin token;
//! `chaos` starts its own. Every loop is bounded in count and time.

pub mod chaos;
pub mod client;
pub mod digest;
pub mod hostile;
pub mod mediastore;
pub mod scenarios;
pub mod sign;
pub mod smooth;
pub mod soak;
pub mod udp;
