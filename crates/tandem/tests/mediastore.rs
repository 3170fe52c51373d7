//! Container pairs end to end: `tandem container create` hands out what a
//! MediaStore destination asks for, the AWS CLI writes with it, each key
//! writes only its own container, and `delete` takes it all away.

#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;

use support::{Aws, Tandem, bin, peer, run};

fn tandem(t: &Tandem, args: &[&str]) -> (bool, String, String) {
    run(Command::new(bin()).arg("--data").arg(&t.data).args(args))
}

#[test]
fn container_pairs_are_created_written_listed_and_deleted() {
    if !peer("aws") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let t = Tandem::start(&dir.path().join("data"), &[]);
    let base = t
        .banner
        .lines()
        .find_map(|l| l.strip_prefix("MediaStore (container pairs): "))
        .and_then(|r| r.split(' ').next())
        .unwrap()
        .to_owned();

    let (ok, out, err) = tandem(&t, &["container", "create", "news", "--json"]);
    assert!(ok, "{err}");
    let pair: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(pair["id"], "news");
    let c = pair["containers"].as_array().unwrap();
    assert_eq!(c.len(), 2);
    for (p, c) in c.iter().enumerate() {
        assert_eq!(c["pipeline"], p);
        assert_eq!(c["container"], format!("news-{p}"));
        assert_eq!(c["endpoint"], format!("{base}/news-{p}"));
        assert_eq!(c["region"], "us-east-1");
        assert!(c["access_key_id"].as_str().unwrap().starts_with("TDM"));
        assert!(c["secret_access_key"].as_str().unwrap().len() >= 40);
    }
    let (ok, _, err) = tandem(&t, &["container", "create", "news"]);
    assert!(!ok && err.contains("already exists"), "{err}");
    let (ok, _, err) = tandem(&t, &["container", "create", "News_1"]);
    assert!(!ok && err.contains("invalid"), "{err}");

    let key = |p: usize| {
        (
            c[p]["access_key_id"].as_str().unwrap().to_owned(),
            c[p]["secret_access_key"].as_str().unwrap().to_owned(),
        )
    };
    let ep0 = c[0]["endpoint"].as_str().unwrap().to_owned();
    let ep1 = c[1]["endpoint"].as_str().unwrap().to_owned();
    let body = dir.path().join("seg.ts");
    std::fs::write(&body, b"a segment").unwrap();
    let body = body.to_str().unwrap();
    let p0 = Aws {
        endpoint: &ep0,
        key: key(0),
    };
    let put = p0.json(&[
        "mediastore-data",
        "put-object",
        "--path",
        "live/seg1.ts",
        "--body",
        body,
        "--content-type",
        "video/MP2T",
        "--upload-availability",
        "STREAMING",
    ]);
    assert_eq!(put["StorageClass"], "TEMPORAL");
    // Pipeline 1's key reads pipeline 0's container...
    let out = dir.path().join("out.ts");
    let p1_on_0 = Aws {
        endpoint: &ep0,
        key: key(1),
    };
    let got = p1_on_0.json(&[
        "mediastore-data",
        "get-object",
        "--path",
        "live/seg1.ts",
        out.to_str().unwrap(),
    ]);
    assert_eq!(got["ContentType"], "video/MP2T");
    assert_eq!(std::fs::read(&out).unwrap(), b"a segment");
    // ...but does not write it; pipeline 0's key does not write news-1.
    let (ok, _, err) = run(&mut p1_on_0.cmd(&[
        "mediastore-data",
        "put-object",
        "--path",
        "live/x.ts",
        "--body",
        body,
    ]));
    assert!(!ok && err.contains("AccessDeniedException"), "{err}");
    let p0_on_1 = Aws {
        endpoint: &ep1,
        key: key(0),
    };
    let (ok, _, err) = run(&mut p0_on_1.cmd(&[
        "mediastore-data",
        "put-object",
        "--path",
        "live/x.ts",
        "--body",
        body,
    ]));
    assert!(!ok && err.contains("AccessDeniedException"), "{err}");

    // list and show.
    let (ok, out, _) = tandem(&t, &["container", "list", "--json"]);
    assert!(ok);
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list[0]["id"], "news");
    let (ok, out, _) = tandem(&t, &["container", "show", "news"]);
    assert!(ok);
    assert!(out.contains(&format!("endpoint:          {ep1}")), "{out}");
    let (ok, _, err) = tandem(&t, &["container", "show", "sport"]);
    assert!(!ok && err.contains("does not exist"), "{err}");

    // delete: the keys no longer sign, the objects are gone.
    let (ok, _, err) = tandem(&t, &["container", "delete", "news"]);
    assert!(ok, "{err}");
    let (ok, _, err) = run(&mut p0.cmd(&["mediastore-data", "list-items"]));
    assert!(!ok && err.contains("UnrecognizedClientException"), "{err}");
    let admin = Aws {
        endpoint: &ep0,
        key: ("tandem-admin".into(), t.token()),
    };
    let (ok, _, err) = run(&mut admin.cmd(&["mediastore-data", "list-items"]));
    assert!(!ok && err.contains("ContainerNotFoundException"), "{err}");
    assert!(!t.data.join("ms.containers/news-0").exists());
}
