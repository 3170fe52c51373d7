//! `tandem udp` without a server (the database) and with one (the API):
//! a flow stored while no server runs starts with the server; refusals say
//! why.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::UdpSocket;
use std::process::Command;

use support::udp_relay::free_base;
use support::{Tandem, bin, run};

fn udp(data: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    run(Command::new(bin())
        .arg("--data")
        .arg(data)
        .arg("udp")
        .args(args))
}

#[test]
fn a_flow_stored_without_a_server_starts_with_it_and_refusals_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let base = free_base();
    let (l0, l1) = (
        format!("127.0.0.1:{base}"),
        format!("127.0.0.1:{}", base + 10),
    );
    let create = |id: &str, l0: &str, l1: &str| {
        udp(
            &data,
            &[
                "create",
                id,
                "--mode",
                "rtp-2022-7",
                "--leg0",
                l0,
                "--leg1",
                l1,
                "--forward",
                "udp://127.0.0.1:9",
            ],
        )
    };
    let (ok, out, err) = create("feed", &l0, &l1);
    assert!(ok, "{err}");
    assert!(out.contains("state: stopped"), "{out}");
    let (ok, _, err) = create("feed", &l0, &l1);
    assert!(!ok);
    assert_eq!(err.trim(), "error: udp flow feed already exists");
    let (ok, _, err) = create("other", &l0, &l0);
    assert!(!ok);
    assert!(err.contains("a flow needs two different legs"), "{err}");
    let (ok, _, err) = create("other", "239.1.1.1", &l1);
    assert!(!ok);
    assert!(
        err.contains("--leg0") && err.contains("is not [SOURCE@]ADDR:PORT"),
        "{err}"
    );
    let (ok, _, err) = udp(
        &data,
        &[
            "create",
            "x",
            "--mode",
            "rtp",
            "--leg0",
            &l0,
            "--leg1",
            &l1,
            "--forward",
            "udp://127.0.0.1:9",
        ],
    );
    assert!(!ok && err.contains("use rtp-2022-7 or udp-switch"), "{err}");
    // The server opens the stored flow's sockets when it starts.
    let t = Tandem::start(&data, &[]);
    let (ok, out, err) = udp(&data, &["show", "feed", "--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["state"], "running", "{v}");
    assert!(
        UdpSocket::bind(("127.0.0.1", base)).is_err(),
        "leg 0 is bound"
    );
    let (ok, out, _) = udp(&data, &["list"]);
    assert!(
        ok && out.contains("feed\trtp-2022-7") && out.contains("running"),
        "{out}"
    );
    let (ok, _, err) = udp(&data, &["delete", "feed"]);
    assert!(ok, "{err}");
    UdpSocket::bind(("127.0.0.1", base)).expect("deleting the flow closed its sockets");
    let (ok, _, err) = udp(&data, &["show", "feed"]);
    assert!(!ok && err.contains("udp flow feed does not exist"), "{err}");
    drop(t);
}
