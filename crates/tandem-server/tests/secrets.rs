//! Secrets: the data directory and what it holds are the owner's only,
//! and one input's password can be changed without disturbing the other
//! input or the output.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use support::{Resp, TestServer, digest_md5};
use tandem_core::InputCredentials;
use tandem_server::{Server, ServerConfig};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn the_data_directory_and_its_secrets_are_created_for_the_owner_only() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("srv").join("tandem-data");
    let mut cfg = ServerConfig::new("127.0.0.1:0".parse().unwrap(), root.clone());
    cfg.s3_listen = Some("127.0.0.1:0".parse().unwrap());
    cfg.mediastore_listen = Some("127.0.0.1:0".parse().unwrap());
    let server = Server::bind(cfg).await.unwrap();
    let modes = [
        (root.clone(), 0o700),
        (root.join("objects"), 0o700),
        (root.join("staging"), 0o700),
        (root.join("channels.redb"), 0o600),
        (root.join("admin-token"), 0o600),
    ];
    for (path, want) in &modes {
        assert_eq!(mode(path), *want, "{}: {:o}", path.display(), mode(path));
    }
    drop(server);
    // Secrets found with a looser mode (copied in, written by hand) are
    // tightened when the server opens them.
    for name in ["channels.redb", "admin-token"] {
        std::fs::set_permissions(root.join(name), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let mut cfg = ServerConfig::new("127.0.0.1:0".parse().unwrap(), root.clone());
    cfg.s3_listen = None;
    cfg.mediastore_listen = None;
    let again = Server::bind(cfg).await.unwrap();
    assert_eq!(mode(&root.join("channels.redb")), 0o600);
    assert_eq!(mode(&root.join("admin-token")), 0o600);
    drop(again);
}

fn playlist(first: u64, last: u64) -> String {
    let mut t = format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:{first}\n"
    );
    for k in first..=last {
        t.push_str(&format!(
            "#EXT-X-PROGRAM-DATE-TIME:2026-11-25T04:00:{:02}.000+0000\n#EXTINF:2.000000,\nchannel{k}.ts\n",
            2 * k
        ));
    }
    t
}

fn basic(c: &InputCredentials) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", c.username, c.password))
    )
}

/// Segment `k` and the playlist naming it, on pipeline `p`, with `auth`.
async fn push(s: &TestServer, p: usize, k: u64, auth: &str) {
    let seg = format!("p{p}-seg{k}").repeat(100);
    let r = s
        .put(
            &format!("/in/demo/{p}/live/channel{k}.ts"),
            auth,
            seg.as_bytes(),
        )
        .await;
    assert_eq!(r.status / 100, 2, "pipeline {p} segment {k}: {}", r.text());
    let pl = playlist(k.saturating_sub(2), k);
    let r = s
        .put(
            &format!("/in/demo/{p}/live/channel.m3u8"),
            auth,
            pl.as_bytes(),
        )
        .await;
    assert_eq!(r.status / 100, 2, "pipeline {p} playlist {k}: {}", r.text());
}

async fn output_until(s: &TestServer, want: impl Fn(&str) -> bool) -> Resp {
    for _ in 0..300 {
        let r = s.send("GET", "/out/demo/live/channel.m3u8", &[], b"").await;
        if r.status == 200 && want(&r.text()) {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the output never listed what the test waits for");
}

fn media_sequence(text: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// A Digest PUT as ffmpeg makes it: challenge, then credentials.
async fn digest_put(s: &TestServer, path: &str, c: &InputCredentials, body: &[u8]) -> u16 {
    let ch = s.send("PUT", path, &[], b"").await;
    assert_eq!(ch.status, 401);
    let www = ch
        .all("www-authenticate")
        .into_iter()
        .find(|w| w.contains("MD5"))
        .unwrap()
        .to_owned();
    let auth = digest_md5(&www, c, "PUT", path, 1);
    s.put(path, &auth, body).await.status
}

#[tokio::test]
async fn rotating_one_inputs_password_locks_out_the_old_one_at_once_and_disturbs_nothing_else() {
    let s = TestServer::start(|_| {}).await;
    let old0 = s.creds("demo", 0);
    let creds1 = s.creds("demo", 1);
    for k in 0..=3 {
        push(&s, 0, k, &basic(&old0)).await;
        push(&s, 1, k, &basic(&creds1)).await;
    }
    let before = output_until(&s, |t| t.contains("3.ts")).await.text();
    // Rotate input 0 through the control API.
    let token = format!("Bearer {}", s.state.admin_token);
    let r = s
        .send(
            "POST",
            "/api/v1/channels/demo/inputs/0/rotate-password",
            &[("Authorization", &token)],
            b"",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let view: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let new0 = InputCredentials {
        username: view["inputs"][0]["username"].as_str().unwrap().to_owned(),
        password: view["inputs"][0]["password"].as_str().unwrap().to_owned(),
    };
    assert_eq!(new0.username, old0.username);
    assert_ne!(new0.password, old0.password);
    assert_eq!(view["inputs"][1]["password"], creds1.password.as_str());
    // The old password stops working at once, with Basic and Digest.
    let path = "/in/demo/0/live/extra.ts";
    assert_eq!(s.put(path, &basic(&old0), b"old").await.status, 401);
    assert_eq!(digest_put(&s, path, &old0, b"old").await, 401);
    // The new one works, with both.
    assert_eq!(s.put(path, &basic(&new0), b"new-basic").await.status, 201);
    assert_eq!(digest_put(&s, path, &new0, b"new-digest").await, 204);
    assert_eq!(
        s.get(path, &basic(&new0)).await.body,
        b"new-digest",
        "what the new password uploaded is stored"
    );
    // The output was not disturbed: still served, same media sequence.
    let after = s.send("GET", "/out/demo/live/channel.m3u8", &[], b"").await;
    assert_eq!(after.status, 200);
    assert_eq!(media_sequence(&after.text()), media_sequence(&before));
    // The other input goes on with its unchanged password; input 0 with
    // its new one; the output moves on from both.
    push(&s, 1, 4, &basic(&creds1)).await;
    push(&s, 0, 4, &basic(&new0)).await;
    let moved = output_until(&s, |t| t.contains("4.ts")).await.text();
    assert!(media_sequence(&moved) >= media_sequence(&before));
    // The change is durable and shown by the API.
    let shown = s
        .send(
            "GET",
            "/api/v1/channels/demo",
            &[("Authorization", &token)],
            b"",
        )
        .await;
    let shown: serde_json::Value = serde_json::from_slice(&shown.body).unwrap();
    assert_eq!(shown["inputs"][0]["password"], new0.password.as_str());
    let id = tandem_core::ChannelId::parse("demo").unwrap();
    let stored = s.state.db.get(&id).unwrap().unwrap();
    assert_eq!(stored.inputs[0].password, new0.password);
    assert_eq!(stored.inputs[1].password, creds1.password);
    // Unknown input or channel.
    let bad = s
        .send(
            "POST",
            "/api/v1/channels/demo/inputs/2/rotate-password",
            &[("Authorization", &token)],
            b"",
        )
        .await;
    assert_eq!(bad.status, 404);
    let none = s
        .send(
            "POST",
            "/api/v1/channels/nope/inputs/0/rotate-password",
            &[("Authorization", &token)],
            b"",
        )
        .await;
    assert_eq!(none.status, 404);
}
