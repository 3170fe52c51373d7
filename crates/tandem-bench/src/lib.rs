//! Load scenarios that wrk cannot express, for `docs/benchmarks.md`.
//!
//! - [`client`]: a keep-alive HTTP/1.1 client that sends exactly what a test
//!   asks for; written here because the scenarios need precise timing of
//!   the last body byte and no client crate is needed for that.
//! - [`scenarios`]: publish latency, scale (channels × pipelines ×
//!   renditions with readers), memory during 2 GB transfers.
//! - [`mediastore`]: MediaStore-style PutObject/GetObject req/s beside
//!   nginx, and the time to first byte of a STREAMING GET.
//! - [`sign`]: SigV4 signing (`mediastore`, `s3`) by `aws-sigv4`.
//! - [`soak`]: live load held for a long time, the server's resources
//!   sampled to show they stay flat.
//! - [`udp`]: the SMPTE ST 2022-7 merge's throughput on loopback (a flow
//!   run in process, no server).
//!
//! Everything targets a server given by URL and admin token; every loop is
//! bounded in count and time.

pub mod client;
pub mod mediastore;
pub mod scenarios;
pub mod sign;
pub mod soak;
pub mod udp;
