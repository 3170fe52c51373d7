//! `tandem channel …` with and without a running server, and `tandem serve`
//! on its defaults.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;

use serde_json::Value;
use support::{Input, Tandem, bin, run};

fn cli(data: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    run(Command::new(bin())
        .arg("--data")
        .arg(data)
        .args(args)
        .env_remove("TANDEM_LISTEN")
        .env_remove("TANDEM_DATA"))
}

fn input(v: &Value, p: usize) -> Input {
    let i = &v["inputs"][p];
    Input {
        url: i["url"].as_str().unwrap().into(),
        username: i["username"].as_str().unwrap().into(),
        password: i["password"].as_str().unwrap().into(),
    }
}

#[test]
fn channels_created_offline_are_served_when_the_server_starts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (ok, out, err) = cli(&data, &["channel", "create", "news", "--json"]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["id"], "news");
    assert_eq!(v["inputs"][0]["url"], "http://127.0.0.1:8080/in/news/0/");
    assert_eq!(v["output"], "http://127.0.0.1:8080/out/news/");
    let (ok, _, err) = cli(&data, &["channel", "create", "news"]);
    assert!(!ok && err.contains("already exists"), "{err}");
    let (ok, _, err) = cli(&data, &["channel", "create", "Bad Id"]);
    assert!(!ok && err.contains("a-z"), "{err}");

    let t = Tandem::start(&data, &[]);
    assert!(
        t.demo.is_empty(),
        "no demo channel when channels exist:\n{}",
        t.banner
    );
    let news = input(&v, 1);
    assert_eq!(
        t.request("PUT", "/in/news/1/live/a.ts", Some(&news), b"abc")
            .0,
        201
    );
    assert_eq!(
        t.request("PUT", "/in/news/0/live/a.ts", Some(&news), b"abc")
            .0,
        401
    );
}

#[test]
fn with_a_server_running_the_cli_goes_through_the_api_and_the_channel_is_served_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let t = Tandem::start(&data, &[]);
    let (ok, out, err) = cli(&data, &["channel", "create", "sport", "--json"]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["inputs"][0]["url"],
        format!("{}/in/sport/0/", t.base),
        "URLs carry the running server's address"
    );
    assert_eq!(
        t.request("PUT", "/in/sport/0/x.ts", Some(&input(&v, 0)), &[1u8; 100])
            .0,
        201
    );

    let (ok, out, _) = cli(&data, &["channel", "show", "sport"]);
    assert!(ok);
    let blocks: Vec<&str> = out.split("\n\n").collect();
    assert!(
        blocks.iter().any(|b| b.contains("input 0")
            && b.contains(&format!("URL:      {}/in/sport/0/", t.base))
            && b.contains("username: sport_0")),
        "{out}"
    );
    assert!(out.contains("state:    receiving"), "{out}");
    let (ok, out, _) = cli(&data, &["channel", "show", "sport", "--json"]);
    assert!(ok);
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["inputs"][0]["bytes_received"], 100);
    assert_eq!(shown["inputs"][0]["password"], v["inputs"][0]["password"]);

    let (ok, out, _) = cli(&data, &["channel", "list", "--json"]);
    assert!(ok);
    let ids: Vec<String> = serde_json::from_str::<Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["demo", "sport"]);
    let (ok, _, err) = cli(&data, &["channel", "delete", "sport"]);
    assert!(ok, "{err}");
    assert_eq!(
        t.request("PUT", "/in/sport/0/x.ts", Some(&input(&v, 0)), b"x")
            .0,
        404
    );

    // Another data directory, same server: --server and --token.
    let other = dir.path().join("elsewhere");
    let (ok, out, err) = cli(
        &other,
        &[
            "channel",
            "--server",
            &t.base,
            "--token",
            &t.token(),
            "list",
        ],
    );
    assert!(ok, "{err}");
    assert!(out.starts_with("demo\t"), "{out}");
    let (ok, _, err) = cli(
        &other,
        &["channel", "--server", &t.base, "--token", "wrong", "list"],
    );
    assert!(!ok && err.contains("401"), "{err}");
}

#[test]
fn serve_without_flags_uses_tandem_data_in_the_working_directory_and_prints_the_demo_inputs() {
    let dir = tempfile::tempdir().unwrap();
    // Only the port is overridden (through the environment), so parallel
    // test runs do not fight over 8080.
    let mut child = Command::new(bin())
        .arg("serve")
        .current_dir(dir.path())
        .env("TANDEM_LISTEN", "127.0.0.1:0")
        .env("TANDEM_S3_LISTEN", "127.0.0.1:0")
        .env("TANDEM_MEDIASTORE_LISTEN", "127.0.0.1:0")
        .env_remove("TANDEM_DATA")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut banner = String::new();
    while !banner.contains("output:") {
        assert!(
            std::io::BufRead::read_line(&mut out, &mut banner).unwrap() > 0,
            "{banner}"
        );
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(dir.path().join("tandem-data/channels.redb").is_file());
    assert!(dir.path().join("tandem-data/admin-token").is_file());
    assert!(banner.starts_with("tandem "), "{banner}");
    for needle in [
        "channel demo",
        "/in/demo/0/",
        "/in/demo/1/",
        "username: demo_0",
        "username: demo_1",
        "password: ",
        "output: http://127.0.0.1:",
        "Authorization: Bearer ",
    ] {
        assert!(banner.contains(needle), "{needle} missing from:\n{banner}");
    }
}

#[test]
fn defaults_are_loopback_8080_and_tandem_data() {
    assert_eq!(tandem_server::config::DEFAULT_LISTEN, "127.0.0.1:8080");
    assert_eq!(tandem_server::config::DEFAULT_DATA, "tandem-data");
    let (ok, _, err) = run(Command::new(bin()).args(["serve", "--listen", "nonsense"]));
    assert!(!ok && err.starts_with("error: --listen"), "{err}");
}

#[test]
fn archive_pairs_are_managed_with_or_without_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cli = |args: &[&str]| {
        let out = Command::new(bin())
            .arg("--data")
            .arg(&data)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // No server: straight to the database.
    let (ok, out, err) = cli(&["archive", "create", "news", "--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["destinations"][0]["bucket"], "news-0");
    assert_eq!(v["destinations"][1]["url"], "s3://news-1/");
    assert_eq!(v["destinations"][0]["region"], "us-east-1");
    assert_ne!(
        v["destinations"][0]["access_key_id"],
        v["destinations"][1]["access_key_id"]
    );
    let (ok, _, err) = cli(&["archive", "create", "News"]);
    assert!(
        !ok && err.contains("archive id \"News\" is invalid"),
        "{err}"
    );
    let (ok, _, err) = cli(&["archive", "create", "news"]);
    assert!(!ok && err.contains("already exists"), "{err}");
    let (ok, out, _) = cli(&["archive", "show", "news"]);
    assert!(ok && out.contains("secret access key:"), "{out}");
    // A server started later serves it: the key written above opens its bucket.
    let t = Tandem::start(&data, &[]);
    let (ok, out, _) = cli(&["archive", "list", "--json"]);
    assert!(ok);
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        list[0]["destinations"][0]["access_key_id"],
        v["destinations"][0]["access_key_id"]
    );
    assert_eq!(list[0]["destinations"][0]["endpoint"], t.s3.as_str());
    let k0 = support::archive_keys(&v, 0);
    assert_eq!(
        s3_call(&t.s3, &k0, "PUT", "/news-0/a.000001.ts", b"offline key").0,
        200,
        "the key written with no server running opens its bucket"
    );
    let (ok, out, err) = cli(&["archive", "delete", "news"]);
    assert!(ok && out.contains("deleted archive news"), "{err}");
    let (ok, out, _) = cli(&["archive", "list", "--json"]);
    assert!(ok && out.trim() == "[]", "{out}");
}

/// One SigV4-signed S3 request (path style) to `endpoint` with `key`;
/// status and body.
fn s3_call(
    endpoint: &str,
    key: &(String, String),
    method: &str,
    path: &str,
    body: &[u8],
) -> (u16, Vec<u8>) {
    use aws_credential_types::Credentials;
    use aws_sigv4::http_request::{
        PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
        UriPathNormalizationMode, sign,
    };
    use aws_sigv4::sign::v4;
    let url = format!("{endpoint}{path}");
    let host = endpoint.split("://").nth(1).unwrap();
    let identity = Credentials::new(&key.0, &key.1, None, None, "test").into();
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(std::time::SystemTime::now())
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let signable = SignableRequest::new(
        method,
        url.as_str(),
        [("host", host)].into_iter(),
        SignableBody::Bytes(body),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut req = http::Request::builder().method(method).uri(&url);
    for (name, value) in instructions.headers() {
        req = req.header(name, value);
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(30)))
        .build()
        .into();
    let resp = agent.run(req.body(body.to_vec()).unwrap()).unwrap();
    let status = resp.status().as_u16();
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut resp.into_body().into_reader(), &mut out).unwrap();
    (status, out)
}

#[test]
fn after_a_restart_an_archive_pairs_keys_still_write_and_read_its_buckets() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut t = Tandem::start(&data, &[]);
    // Created through the running server's API.
    let pair = t.create_archive("keep");
    let (k0, k1) = (
        support::archive_keys(&pair, 0),
        support::archive_keys(&pair, 1),
    );
    let before = support::pattern(70_000, 1);
    assert_eq!(
        s3_call(&t.s3, &k0, "PUT", "/keep-0/rec/before.000001.ts", &before).0,
        200
    );
    t.child.kill().unwrap();
    t.child.wait().unwrap();

    // A new process on the same data directory (and new ports): the keys
    // it loads at start are the only way in.
    let t = Tandem::start(&data, &[]);
    let after = support::pattern(50_000, 2);
    let (status, body) = s3_call(&t.s3, &k0, "PUT", "/keep-0/rec/after.000002.ts", &after);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    // Pipeline 1's key reads pipeline 0's bucket: both objects, whole.
    assert_eq!(
        s3_call(&t.s3, &k1, "GET", "/keep-0/rec/after.000002.ts", b""),
        (200, after)
    );
    assert_eq!(
        s3_call(&t.s3, &k1, "GET", "/keep-0/rec/before.000001.ts", b""),
        (200, before)
    );
    // And each key still writes only its own bucket.
    assert_eq!(s3_call(&t.s3, &k0, "PUT", "/keep-1/rec/x.ts", b"x").0, 403);
    assert_eq!(s3_call(&t.s3, &k1, "PUT", "/keep-1/rec/x.ts", b"x").0, 200);
}

#[test]
fn status_shows_what_the_running_server_sees() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // No server: a clear refusal.
    let (ok, _, err) = cli(&data, &["status"]);
    assert!(!ok);
    assert!(err.contains("no server is running"), "{err}");

    let t = Tandem::start(&data, &[]);
    // Pipeline 0 publishes a segment and its playlist; the output starts on it.
    let seg = b"segment";
    let pl = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:2.0,\nchannel0.ts\n";
    let (s, _) = t.request("PUT", "/in/demo/0/live/channel0.ts", Some(&t.demo[0]), seg);
    assert_eq!(s / 100, 2);
    let (s, _) = t.request(
        "PUT",
        "/in/demo/0/live/channel.m3u8",
        Some(&t.demo[0]),
        pl.as_bytes(),
    );
    assert_eq!(s / 100, 2);
    let mut screen = String::new();
    for _ in 0..100 {
        let (ok, out, err) = cli(&data, &["status"]);
        assert!(ok, "{err}");
        screen = out;
        if screen.contains("pipeline 0") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let demo = screen
        .lines()
        .find(|l| l.starts_with("demo "))
        .unwrap_or_else(|| panic!("{screen}"));
    assert!(demo.contains("receiving"), "{demo}");
    assert!(demo.contains("idle"), "{demo}");
    assert!(demo.contains("pipeline 0"), "{demo}");
    assert!(demo.contains("(started)"), "{demo}");
    assert!(screen.contains("live/channel.m3u8"), "{screen}");
    assert!(!screen.contains('\x1b'), "no colours when not a terminal");

    // The same facts as JSON, through --server and --token.
    let (ok, out, err) = cli(
        &data,
        &[
            "status",
            "--json",
            "--server",
            &t.base,
            "--token",
            &t.token(),
        ],
    );
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let ch = v["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "demo")
        .unwrap();
    assert_eq!(ch["active_pipeline"], 0);
    assert_eq!(ch["inputs"][0]["state"], "receiving");
    let (ok, _, err) = cli(&data, &["status", "--server", &t.base, "--token", "wrong"]);
    assert!(!ok);
    assert!(err.contains("HTTP 401"), "{err}");
}

#[test]
fn a_channel_s_input_history_is_set_with_the_cli_and_kept_with_the_channel() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (ok, out, err) = cli(
        &data,
        &[
            "channel",
            "create",
            "dvr",
            "--input-retention",
            "7200",
            "--json",
        ],
    );
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["retention"], serde_json::json!({"input_secs": 7200}));
    let (ok, _, err) = cli(&data, &["channel", "retention", "dvr", "0"]);
    assert!(!ok && err.contains("'off'"), "{err}");

    // The running server has it from the database, and changes it.
    let t = Tandem::start(&data, &[]);
    let (ok, out, err) = cli(&data, &["channel", "show", "dvr"]);
    assert!(ok, "{err}");
    assert!(out.contains("input history: 7200 s"), "{out}");
    let (ok, out, err) = cli(&data, &["channel", "retention", "dvr", "600", "--json"]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["retention"], serde_json::json!({"input_secs": 600}));
    let (ok, _, err) = cli(&data, &["channel", "retention", "dvr", "off"]);
    assert!(ok, "{err}");
    let (ok, out, _) = cli(&data, &["channel", "show", "dvr", "--json"]);
    assert!(ok);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(v.get("retention").is_none(), "{v}");
    drop(t);
    // Durable: the database says so with the server gone.
    let (ok, out, _) = cli(&data, &["channel", "show", "dvr", "--json"]);
    assert!(ok);
    assert!(
        serde_json::from_str::<Value>(&out)
            .unwrap()
            .get("retention")
            .is_none()
    );
}

#[test]
fn rotate_password_prints_the_new_one_once_and_only_that_input_changes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let t = Tandem::start(&data, &[]);
    let (ok, out, err) = cli(&data, &["channel", "create", "news", "--json"]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let (old1, kept0) = (input(&v, 1), input(&v, 0));
    // Through the running server's API: in force at once.
    let (ok, out, err) = cli(&data, &["channel", "rotate-password", "news", "1"]);
    assert!(ok, "{err}");
    let new_password = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("password:"))
        .map(|p| p.trim().to_owned())
        .unwrap_or_else(|| panic!("no password printed:\n{out}"));
    assert_ne!(new_password, old1.password);
    assert!(
        out.contains(&old1.username) && !out.contains(&kept0.password),
        "only the rotated input is printed:\n{out}"
    );
    let new1 = Input {
        password: new_password,
        ..old1.clone()
    };
    assert_eq!(
        t.request("PUT", "/in/news/1/a.ts", Some(&old1), b"x").0,
        401
    );
    assert_eq!(
        t.request("PUT", "/in/news/1/a.ts", Some(&new1), b"x").0,
        201
    );
    assert_eq!(
        t.request("PUT", "/in/news/0/a.ts", Some(&kept0), b"x").0,
        201
    );
    let (ok, out, _) = cli(&data, &["channel", "show", "news", "--json"]);
    assert!(ok);
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(input(&shown, 1).password, new1.password);
    assert_eq!(input(&shown, 0).password, kept0.password);
    let (ok, _, err) = cli(&data, &["channel", "rotate-password", "news", "2"]);
    assert!(!ok && err.contains('2'), "{err}");
}

/// What a listener at `addr` answers a GET on a fresh connection, whole.
fn answer(addr: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    s.write_all(format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())
        .unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
fn serve_applies_max_connections_per_ip_from_its_flag_to_every_listener() {
    let dir = tempfile::tempdir().unwrap();
    let t = Tandem::start(&dir.path().join("data"), &["--max-connections-per-ip", "2"]);
    let listener = |label: &str| -> String {
        let url = t
            .banner
            .lines()
            .find_map(|l| l.strip_prefix(label))
            .and_then(|r| r.split(' ').next())
            .unwrap_or_else(|| panic!("no {label} line in the banner:\n{}", t.banner));
        url.trim_start_matches("http://").to_owned()
    };
    let addrs = [
        t.addr.to_string(),
        listener("S3 (archive pairs): "),
        listener("MediaStore (container pairs): "),
    ];
    for addr in addrs {
        // Two idle connections from 127.0.0.1 hold the address's share;
        // the listener accepts in order, so the third comes after them.
        let held: Vec<std::net::TcpStream> = (0..2)
            .map(|_| std::net::TcpStream::connect(&addr).unwrap())
            .collect();
        let refused = answer(&addr);
        assert!(refused.starts_with("HTTP/1.1 429"), "{addr}: {refused}");
        assert!(
            refused.to_ascii_lowercase().contains("retry-after: 1\r\n"),
            "{addr}: {refused}"
        );
        drop(held);
        // Their share comes back once the server has seen them close.
        let mut last = String::new();
        for _ in 0..200 {
            last = answer(&addr);
            if !last.starts_with("HTTP/1.1 429") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(last.starts_with("HTTP/1.1 "), "{addr}: {last}");
        assert!(!last.starts_with("HTTP/1.1 429"), "{addr}: {last}");
    }
}
