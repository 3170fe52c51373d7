//! The real AWS CLI (`aws mediastore-data`) against Tandem's MediaStore
//! listener: every operation, each answer's fields as the CLI prints them.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod support;

use sha2::{Digest, Sha256};
use support::{KEY0, KEY1, Server, aws, aws_json, peer};
use tandem_mediastore::Settings;

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_cli_put_get_describe_list_delete() {
    if !peer("aws") {
        return;
    }
    let srv = Server::start(Settings::default()).await;
    let ep = srv.endpoint("news-0");
    let dir = tempfile::tempdir().unwrap();
    let seg: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let seg_path = dir.path().join("seg.ts");
    std::fs::write(&seg_path, &seg).unwrap();
    let pl = b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n".to_vec();
    let pl_path = dir.path().join("pl.m3u8");
    std::fs::write(&pl_path, &pl).unwrap();

    // The CLI runs blocking; keep it off the server's runtime threads.
    let run = |ep: String, key: (&'static str, &'static str), args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            aws_json(&ep, key, &args)
        })
    };
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    let seg_arg = seg_path.to_str().unwrap().to_owned();
    let pl_arg = pl_path.to_str().unwrap().to_owned();

    // PutObject, STREAMING and STANDARD.
    let put = run(
        ep.clone(),
        KEY0,
        s(&[
            "put-object",
            "--path",
            "live/channel_1.ts",
            "--body",
            &seg_arg,
            "--content-type",
            "video/MP2T",
            "--cache-control",
            "max-age=31536000",
            "--storage-class",
            "TEMPORAL",
            "--upload-availability",
            "STREAMING",
        ]),
    )
    .await
    .unwrap();
    assert_eq!(put["ContentSHA256"], sha(&seg));
    assert_eq!(put["ETag"], sha(&seg));
    assert_eq!(put["StorageClass"], "TEMPORAL");
    for name in ["channel.m3u8", "a=b:c~d.m3u8", "z.m3u8"] {
        let put = run(
            ep.clone(),
            KEY0,
            s(&[
                "put-object",
                "--path",
                &format!("live/{name}"),
                "--body",
                &pl_arg,
                "--content-type",
                "application/x-mpegURL",
                "--cache-control",
                "max-age=1",
                "--upload-availability",
                "STANDARD",
            ]),
        )
        .await
        .unwrap();
        assert_eq!(put["ContentSHA256"], sha(&pl));
    }
    let put = run(
        ep.clone(),
        KEY0,
        s(&[
            "put-object",
            "--path",
            "live/sub/deep.ts",
            "--body",
            &pl_arg,
        ]),
    )
    .await
    .unwrap();
    assert_eq!(put["StorageClass"], "TEMPORAL");

    // GetObject with a range: 206 and the bytes asked for.
    let out = dir.path().join("out.bin");
    let out_arg = out.to_str().unwrap().to_owned();
    let got = run(
        ep.clone(),
        KEY1, // the other pipeline's key reads its partner container
        s(&[
            "get-object",
            "--path",
            "live/channel_1.ts",
            "--range",
            "bytes=1000-1999",
            &out_arg,
        ]),
    )
    .await
    .unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), &seg[1000..2000]);
    assert_eq!(got["StatusCode"], 206);
    assert_eq!(got["ContentLength"], 1000);
    assert_eq!(
        got["ContentRange"],
        format!("bytes 1000-1999/{}", seg.len())
    );
    assert_eq!(got["ContentType"], "video/MP2T");
    assert_eq!(got["CacheControl"], "max-age=31536000");
    assert_eq!(got["ETag"], sha(&seg));
    assert!(
        got["LastModified"]
            .as_str()
            .is_some_and(|t| t.contains("GMT")),
        "{got}"
    );

    // GetObject whole.
    let got = run(
        ep.clone(),
        KEY0,
        s(&["get-object", "--path", "live/channel_1.ts", &out_arg]),
    )
    .await
    .unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), seg);
    assert_eq!(got["StatusCode"], 200);
    assert_eq!(got["ContentLength"], seg.len());

    // DescribeObject.
    let d = run(
        ep.clone(),
        KEY0,
        s(&["describe-object", "--path", "live/a=b:c~d.m3u8"]),
    )
    .await
    .unwrap();
    assert_eq!(d["ContentLength"], pl.len());
    assert_eq!(d["ContentType"], "application/x-mpegURL");
    assert_eq!(d["CacheControl"], "max-age=1");
    assert_eq!(d["ETag"], sha(&pl));
    assert!(d["LastModified"].as_str().is_some(), "{d}");

    // ListItems, a page of two at a time by hand with NextToken.
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut args = s(&[
            "list-items",
            "--path",
            "live",
            "--max-results",
            "2",
            "--no-paginate",
        ]);
        if let Some(t) = &token {
            args.extend(s(&["--next-token", t]));
        }
        let page = run(ep.clone(), KEY0, args).await.unwrap();
        pages += 1;
        let items = page["Items"].as_array().unwrap();
        assert!(items.len() <= 2);
        for it in items {
            names.push(it["Name"].as_str().unwrap().to_owned());
            match it["Type"].as_str().unwrap() {
                "OBJECT" => {
                    assert!(it["ETag"].as_str().is_some_and(|e| e.len() == 64), "{it}");
                    assert!(it["ContentLength"].as_u64().is_some(), "{it}");
                    assert!(it["ContentType"].as_str().is_some(), "{it}");
                    // CLI v1 prints timestamps as they came: epoch seconds.
                    assert!(
                        it["LastModified"].as_f64().is_some_and(|t| t > 1.7e9),
                        "{it}"
                    );
                }
                "FOLDER" => assert_eq!(it["Name"], "sub"),
                t => panic!("type {t}"),
            }
        }
        match page["NextToken"].as_str() {
            Some(t) => token = Some(t.to_owned()),
            None => break,
        }
    }
    assert_eq!(
        names,
        [
            "a=b:c~d.m3u8",
            "channel.m3u8",
            "channel_1.ts",
            "sub",
            "z.m3u8"
        ]
    );
    assert_eq!(pages, 3);
    // The CLI's own paginator over pages of two gives the same list.
    let all = run(
        ep.clone(),
        KEY0,
        s(&["list-items", "--path", "live/", "--page-size", "2"]),
    )
    .await
    .unwrap();
    let listed: Vec<&str> = all["Items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["Name"].as_str().unwrap())
        .collect();
    assert_eq!(listed, names);
    let root = run(ep.clone(), KEY0, s(&["list-items"])).await.unwrap();
    assert_eq!(root["Items"][0]["Name"], "live");
    assert_eq!(root["Items"][0]["Type"], "FOLDER");

    // DeleteObject, then the object is gone.
    let del = run(
        ep.clone(),
        KEY0,
        s(&["delete-object", "--path", "live/z.m3u8"]),
    )
    .await
    .unwrap();
    assert_eq!(del, serde_json::Value::Null);
    let ep2 = ep.clone();
    let (code, _, err) = tokio::task::spawn_blocking(move || {
        aws(&ep2, KEY0, &["describe-object", "--path", "live/z.m3u8"])
    })
    .await
    .unwrap();
    assert_ne!(code, 0);
    assert!(err.contains("ObjectNotFoundException"), "{err}");

    // Errors as the CLI reports them.
    let ep3 = srv.endpoint("sport-0");
    let (code, _, err) = tokio::task::spawn_blocking(move || {
        aws(
            &ep3,
            ("tandem-admin", support::ADMIN_SECRET),
            &["list-items"],
        )
    })
    .await
    .unwrap();
    assert_ne!(code, 0);
    assert!(err.contains("ContainerNotFoundException"), "{err}");
    let ep4 = ep.clone();
    let (code, _, err) =
        tokio::task::spawn_blocking(move || aws(&ep4, (KEY0.0, "not-the-secret"), &["list-items"]))
            .await
            .unwrap();
    assert_ne!(code, 0);
    assert!(err.contains("InvalidSignatureException"), "{err}");
    let ep5 = ep.clone();
    let (code, _, err) = tokio::task::spawn_blocking(move || {
        aws(
            &ep5,
            KEY0,
            &[
                "get-object",
                "--path",
                "live/channel.m3u8",
                "--range",
                "bytes=5000-",
                "/dev/null",
            ],
        )
    })
    .await
    .unwrap();
    assert_ne!(code, 0);
    assert!(
        err.contains("RequestedRangeNotSatisfiableException"),
        "{err}"
    );
}
