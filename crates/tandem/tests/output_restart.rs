//! A restart of Tandem itself (SIGKILL): the output continues the window
//! players already saw, and an encoder that restarted too is marked with
//! one discontinuity.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::{Input, Tandem, http};

fn playlist(first: u64, last: u64) -> String {
    let mut t = format!("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:{first}\n");
    for k in first..=last {
        t.push_str(&format!("#EXTINF:2.000,\nseg{k}.ts\n"));
    }
    t
}

fn push(t: &Tandem, input: &Input, k: u64) {
    assert_eq!(
        t.request(
            "PUT",
            &format!("/in/demo/0/live/seg{k}.ts"),
            Some(input),
            &[0x47u8; 188 * 4]
        )
        .0 / 100,
        2
    );
    let pl = playlist(k.saturating_sub(2), k);
    assert_eq!(
        t.request(
            "PUT",
            "/in/demo/0/live/index.m3u8",
            Some(input),
            pl.as_bytes()
        )
        .0 / 100,
        2
    );
}

fn output_with(t: &Tandem, needle: &str) -> String {
    for _ in 0..300 {
        let (status, body) = http(t.addr, "GET", "/out/demo/live/index.m3u8", None, b"");
        let text = String::from_utf8_lossy(&body).into_owned();
        if status == 200 && text.contains(needle) {
            return text;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("the output never named {needle}");
}

#[test]
fn after_a_restart_the_output_continues_its_media_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut t = Tandem::start(&data, &[]);
    let input = t.demo[0].clone();
    for k in 0..=9 {
        push(&t, &input, k);
    }
    let before = output_with(&t, "seg9.ts");
    assert!(before.contains("#EXT-X-MEDIA-SEQUENCE:7\n"), "{before}");
    t.child.kill().unwrap();
    t.child.wait().unwrap();

    // The encoder restarted as well: it counts from 0 again.
    let t = Tandem::start(&data, &[]);
    for k in 0..=1 {
        push(&t, &input, k);
    }
    let after = output_with(&t, "seg1.ts");
    assert_eq!(
        after,
        "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:9\n#EXTINF:2.000,\nindex/9/seg9.ts\n#EXT-X-DISCONTINUITY\n#EXTINF:2.000,\nindex/10/seg0.ts\n#EXTINF:2.000,\nindex/11/seg1.ts\n"
    );
    let (status, body) = http(t.addr, "GET", "/out/demo/live/index/11/seg1.ts", None, b"");
    assert_eq!((status, body.len()), (200, 188 * 4));
}
