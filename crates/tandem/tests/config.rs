//! Configuration precedence, as an operator meets it: a flag beats an
//! environment variable, which beats the TOML file, which beats the
//! default. Each level is read back from what `tandem serve` prints.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::bin;

/// Runs `tandem serve ARGS` in `cwd` with exactly the `TANDEM_*` variables
/// in `env`, returns its banner, and stops it.
fn banner(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(bin());
    cmd.current_dir(cwd).arg("serve").args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("TANDEM_") && k != "TANDEM_REQUIRE_PEERS" {
            cmd.env_remove(k);
        }
    }
    // Not under test here; port 0 so parallel runs do not fight over 9010.
    cmd.env("TANDEM_MEDIASTORE_LISTEN", "127.0.0.1:0");
    cmd.envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in out.lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut banner = String::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                banner.push_str(&line);
                banner.push('\n');
                if line.starts_with("output:") || line.contains("channel(s)") {
                    break;
                }
            }
            Err(_) => {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                panic!(
                    "no banner from tandem serve {args:?}; stdout:\n{banner}\nstderr:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    banner
}

/// The value after `label` on the banner line that starts with it.
fn field<'a>(banner: &'a str, label: &str) -> &'a str {
    banner
        .lines()
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label:?} in:\n{banner}"))
        .trim()
}

/// The IP address in a printed URL such as `http://127.0.0.3:41234/…`.
fn host(url: &str) -> &str {
    let rest = url.split("://").nth(1).unwrap();
    rest.split(':').next().unwrap()
}

#[test]
fn flags_beat_environment_beats_toml_beats_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let toml = cwd.join("tandem.toml");
    std::fs::write(
        &toml,
        format!(
            "data = {:?}\nlisten = \"127.0.0.2:0\"\ns3_listen = \"127.0.0.2:0\"\n",
            cwd.join("from-toml").display()
        ),
    )
    .unwrap();
    let toml = toml.to_str().unwrap();
    let (d_flag, d_env) = (cwd.join("from-flag"), cwd.join("from-env"));
    let (d_flag, d_env) = (d_flag.to_str().unwrap(), d_env.to_str().unwrap());
    let env = [
        ("TANDEM_DATA", d_env),
        ("TANDEM_LISTEN", "127.0.0.3:0"),
        ("TANDEM_S3_LISTEN", "127.0.0.3:0"),
    ];
    let listened = |b: &str| host(b.lines().next().unwrap().rsplit(' ').next().unwrap()).to_owned();
    let s3 = |b: &str| host(field(b, "S3 (archive pairs):")).to_owned();

    // Flags, environment and file all set: the flags win.
    let b = banner(
        cwd,
        &[
            "--config",
            toml,
            "--data",
            d_flag,
            "--listen",
            "127.0.0.4:0",
            "--s3-listen",
            "127.0.0.4:0",
        ],
        &env,
    );
    assert_eq!(field(&b, "data directory:"), d_flag, "{b}");
    assert_eq!(
        (listened(&b), s3(&b)),
        ("127.0.0.4".into(), "127.0.0.4".into())
    );

    // Environment and file: the environment wins.
    let b = banner(cwd, &["--config", toml], &env);
    assert_eq!(field(&b, "data directory:"), d_env, "{b}");
    assert_eq!(
        (listened(&b), s3(&b)),
        ("127.0.0.3".into(), "127.0.0.3".into())
    );

    // The file alone.
    let b = banner(cwd, &["--config", toml], &[]);
    assert_eq!(
        field(&b, "data directory:"),
        cwd.join("from-toml").to_str().unwrap(),
        "{b}"
    );
    assert_eq!(
        (listened(&b), s3(&b)),
        ("127.0.0.2".into(), "127.0.0.2".into())
    );
    // The config path from the environment works the same as the flag.
    let b = banner(cwd, &[], &[("TANDEM_CONFIG", toml)]);
    assert_eq!(listened(&b), "127.0.0.2");

    // Nothing set: the default data directory, relative to the working
    // directory. (The default listen addresses, 127.0.0.1:8080 and :9000,
    // may be taken on a test machine; defaults_are_loopback_8080_and_
    // tandem_data in cli.rs checks those constants.)
    let b = banner(cwd, &["--listen", "127.0.0.1:0", "--s3-listen", "off"], &[]);
    assert_eq!(field(&b, "data directory:"), "tandem-data", "{b}");
    assert!(cwd.join("tandem-data/admin-token").is_file());
    assert!(b.contains("S3 listener: off"), "{b}");
    for d in ["from-flag", "from-env", "from-toml"] {
        assert!(cwd.join(d).join("admin-token").is_file(), "{d} was used");
    }
}
