//! Real S3 clients against Tandem's S3 listener: the AWS CLI (multipart
//! `s3 cp`, `s3api` put, ranged get, delimited listing, batch delete) and a
//! boto3 presigned GET. Each check reads what arrived: bytes on disk,
//! bytes downloaded, keys listed.

#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;

use support::{Aws, Tandem, archive_keys as keys, pattern, peer, python_module, run};

fn stored(t: &Tandem, bucket: &str, key: &str) -> Option<Vec<u8>> {
    std::fs::read(t.data.join("objects/s3.buckets").join(bucket).join(key)).ok()
}

#[test]
fn aws_cli_uploads_reads_lists_and_deletes() {
    if !peer("aws") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let t = Tandem::start(&dir.path().join("data"), &[]);
    let archive = t.create_archive("news");
    assert_eq!(archive["destinations"][0]["endpoint"], t.s3.as_str());
    let aws = Aws {
        endpoint: &t.s3,
        key: keys(&archive, 0),
    };

    // 40 MB: the CLI splits it into 8 MiB parts (multipart upload).
    let big = pattern(40_000_000, 7);
    let src = dir.path().join("big.m2ts");
    std::fs::write(&src, &big).unwrap();
    aws.ok(&[
        "s3",
        "cp",
        src.to_str().unwrap(),
        "s3://news-0/archive/big.m2ts",
    ]);
    assert!(
        stored(&t, "news-0", "archive/big.m2ts") == Some(big.clone()),
        "stored bytes differ"
    );
    let head = aws.json(&[
        "s3api",
        "head-object",
        "--bucket",
        "news-0",
        "--key",
        "archive/big.m2ts",
    ]);
    assert_eq!(head["ContentLength"], 40_000_000);
    assert!(head["ETag"].as_str().unwrap().ends_with("-5\""), "{head}");
    let back = dir.path().join("back.m2ts");
    aws.ok(&[
        "s3",
        "cp",
        "s3://news-0/archive/big.m2ts",
        back.to_str().unwrap(),
    ]);
    assert!(
        std::fs::read(&back).unwrap() == big,
        "downloaded bytes differ"
    );

    // put-object, then a ranged get-object.
    let small = pattern(10_000, 8);
    let small_path = dir.path().join("small.ts");
    std::fs::write(&small_path, &small).unwrap();
    let put = aws.json(&[
        "s3api",
        "put-object",
        "--bucket",
        "news-0",
        "--key",
        "archive/seg.000001.ts",
        "--body",
        small_path.to_str().unwrap(),
    ]);
    let md5 = {
        use md5::Digest;
        let d = md5::Md5::digest(&small);
        d.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    assert_eq!(put["ETag"], format!("\"{md5}\""));
    let part = dir.path().join("part.bin");
    let got = aws.json(&[
        "s3api",
        "get-object",
        "--bucket",
        "news-0",
        "--key",
        "archive/seg.000001.ts",
        "--range",
        "bytes=100-199",
        part.to_str().unwrap(),
    ]);
    assert_eq!(got["ContentRange"], "bytes 100-199/10000");
    assert_eq!(std::fs::read(&part).unwrap(), small[100..200].to_vec());

    // list-objects-v2 with a delimiter: folders fold into common prefixes.
    aws.ok(&[
        "s3api",
        "put-object",
        "--bucket",
        "news-0",
        "--key",
        "top.txt",
        "--body",
        small_path.to_str().unwrap(),
    ]);
    let list = aws.json(&[
        "s3api",
        "list-objects-v2",
        "--bucket",
        "news-0",
        "--delimiter",
        "/",
    ]);
    assert_eq!(list["CommonPrefixes"][0]["Prefix"], "archive/");
    assert_eq!(list["Contents"].as_array().unwrap().len(), 1);
    assert_eq!(list["Contents"][0]["Key"], "top.txt");
    let inner = aws.json(&[
        "s3api",
        "list-objects-v2",
        "--bucket",
        "news-0",
        "--prefix",
        "archive/",
    ]);
    let names: Vec<&str> = inner["Contents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["Key"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["archive/big.m2ts", "archive/seg.000001.ts"]);

    // delete-objects removes what it names, and reports a key that was
    // never there as deleted (S3 semantics).
    let del = aws.json(&[
        "s3api",
        "delete-objects",
        "--bucket",
        "news-0",
        "--delete",
        r#"{"Objects":[{"Key":"archive/seg.000001.ts"},{"Key":"top.txt"},{"Key":"never"}]}"#,
    ]);
    assert_eq!(del["Deleted"].as_array().unwrap().len(), 3, "{del}");
    assert_eq!(stored(&t, "news-0", "top.txt"), None);
    let after = aws.json(&["s3api", "list-objects-v2", "--bucket", "news-0"]);
    let names: Vec<&str> = after["Contents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["Key"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["archive/big.m2ts"]);

    // Pipeline 0's key reads the backup bucket but may not write it.
    let (ok, _, err) = run(&mut aws.cmd(&[
        "s3api",
        "put-object",
        "--bucket",
        "news-1",
        "--key",
        "x.ts",
        "--body",
        small_path.to_str().unwrap(),
    ]));
    assert!(!ok && err.contains("AccessDenied"), "{err}");
    assert_eq!(stored(&t, "news-1", "x.ts"), None);
    aws.ok(&["s3api", "list-objects-v2", "--bucket", "news-1"]);

    // A signature for another region is refused as S3 refuses it.
    let (ok, _, err) = run(aws
        .cmd(&["s3api", "list-objects-v2", "--bucket", "news-0"])
        .env("AWS_DEFAULT_REGION", "eu-west-1"));
    assert!(!ok && err.contains("AuthorizationHeaderMalformed"), "{err}");
}

#[test]
fn boto3_presigned_get_returns_the_object() {
    if !peer("python3") || !python_module("boto3") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let t = Tandem::start(&dir.path().join("data"), &[]);
    let archive = t.create_archive("news");
    let (ak, sk) = keys(&archive, 1);
    let body = pattern(300_000, 9);
    let src = dir.path().join("seg.ts");
    std::fs::write(&src, &body).unwrap();
    let script = r#"
import sys, urllib.request, urllib.error, boto3
from botocore.config import Config
endpoint, src, out = sys.argv[1], sys.argv[2], sys.argv[3]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
s3.upload_file(src, "news-1", "live/seg.000007.ts")
url = s3.generate_presigned_url("get_object", Params={"Bucket": "news-1", "Key": "live/seg.000007.ts"}, ExpiresIn=300)
with urllib.request.urlopen(url) as r:
    open(out, "wb").write(r.read())
try:
    i = url.index("X-Amz-Signature=") + len("X-Amz-Signature=")
    urllib.request.urlopen(url[:i] + ("1" if url[i] == "0" else "0") + url[i + 1:])
    print("tampered: 200")
except urllib.error.HTTPError as e:
    print("tampered:", e.code)
try:
    urllib.request.urlopen(endpoint + "/news-1/live/seg.000007.ts")
    print("anonymous: 200")
except urllib.error.HTTPError as e:
    print("anonymous:", e.code)
"#;
    let out = dir.path().join("got.ts");
    let (ok, stdout, err) = run(Command::new("python3")
        .args([
            "-c",
            script,
            &t.s3,
            src.to_str().unwrap(),
            out.to_str().unwrap(),
        ])
        .env("AWS_ACCESS_KEY_ID", &ak)
        .env("AWS_SECRET_ACCESS_KEY", &sk)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"));
    assert!(ok, "{err}");
    assert!(
        std::fs::read(&out).unwrap() == body,
        "presigned GET returned other bytes"
    );
    assert!(stdout.contains("tampered: 403"), "{stdout}");
    assert!(stdout.contains("anonymous: 403"), "{stdout}");
    assert!(stored(&t, "news-1", "live/seg.000007.ts") == Some(body));
}

/// What tools that empty or sync buckets send: ListObjects v1 paged by
/// marker, ListObjectVersions and DeleteObject(s) with version `null`,
/// GetBucketVersioning, GetBucketLocation.
#[test]
fn tools_that_empty_and_sync_buckets_work() {
    if !peer("aws") || !peer("python3") || !python_module("boto3") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let t = Tandem::start(&dir.path().join("data"), &[]);
    let admin = Aws {
        endpoint: &t.s3,
        key: ("tandem-admin".to_owned(), t.token()),
    };
    // `s3 sync --delete`: uploads what is new, deletes what went away.
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("live")).unwrap();
    for i in 0..5 {
        std::fs::write(
            src.join(format!("live/s{i}.ts")),
            pattern(1000 + i, i as u32),
        )
        .unwrap();
    }
    admin.ok(&["s3api", "create-bucket", "--bucket", "scratch"]);
    admin.ok(&["s3", "sync", src.to_str().unwrap(), "s3://scratch/"]);
    std::fs::remove_file(src.join("live/s0.ts")).unwrap();
    std::fs::remove_file(src.join("live/s1.ts")).unwrap();
    admin.ok(&[
        "s3",
        "sync",
        "--delete",
        src.to_str().unwrap(),
        "s3://scratch/",
    ]);
    let listed = admin.json(&["s3api", "list-objects", "--bucket", "scratch"]);
    let keys: Vec<&str> = listed["Contents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["Key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["live/s2.ts", "live/s3.ts", "live/s4.ts"]);
    assert_eq!(stored(&t, "scratch", "live/s0.ts"), None);

    // ListObjects v1, paged by marker, two keys a page.
    let page = admin.json(&[
        "s3api",
        "list-objects",
        "--bucket",
        "scratch",
        "--max-items",
        "2",
        "--page-size",
        "2",
    ]);
    let first: Vec<&str> = page["Contents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["Key"].as_str().unwrap())
        .collect();
    assert_eq!(first, ["live/s2.ts", "live/s3.ts"], "{page}");
    let token = page["NextToken"].as_str().unwrap();
    let rest = admin.json(&[
        "s3api",
        "list-objects",
        "--bucket",
        "scratch",
        "--starting-token",
        token,
    ]);
    assert_eq!(rest["Contents"][0]["Key"], "live/s4.ts", "{rest}");
    assert_eq!(rest["Contents"].as_array().unwrap().len(), 1);
    assert_eq!(
        admin.json(&["s3api", "get-bucket-versioning", "--bucket", "scratch"]),
        serde_json::Value::Null,
        "never versioned: no status"
    );
    let versions = admin.json(&["s3api", "list-object-versions", "--bucket", "scratch"]);
    let v: Vec<(&str, &str, bool)> = versions["Versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["Key"].as_str().unwrap(),
                o["VersionId"].as_str().unwrap(),
                o["IsLatest"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        v,
        [
            ("live/s2.ts", "null", true),
            ("live/s3.ts", "null", true),
            ("live/s4.ts", "null", true)
        ]
    );
    admin.ok(&[
        "s3api",
        "delete-object",
        "--bucket",
        "scratch",
        "--key",
        "live/s2.ts",
        "--version-id",
        "null",
    ]);
    assert_eq!(stored(&t, "scratch", "live/s2.ts"), None);
    let (ok, _, err) = run(&mut admin.cmd(&[
        "s3api",
        "delete-object",
        "--bucket",
        "scratch",
        "--key",
        "live/s3.ts",
        "--version-id",
        "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY",
    ]));
    assert!(!ok && err.contains("InvalidArgument"), "{err}");

    // boto3 empties a bucket by its versions and by its objects.
    let script = r#"
import sys, boto3
from botocore.config import Config
s3 = boto3.resource("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                    config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
b = s3.Bucket("scratch")
print("location:", s3.meta.client.get_bucket_location(Bucket="scratch").get("LocationConstraint"))
b.object_versions.all().delete()
print("after versions:", sorted(o.key for o in b.objects.all()))
for i in range(3):
    b.put_object(Key=f"x/{i}", Body=b"x")
b.objects.all().delete()
print("after objects:", sorted(o.key for o in b.objects.all()))
"#;
    let (ok, stdout, err) = run(Command::new("python3")
        .args(["-c", script, &t.s3])
        .env("AWS_ACCESS_KEY_ID", "tandem-admin")
        .env("AWS_SECRET_ACCESS_KEY", t.token())
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"));
    assert!(ok, "{err}");
    assert!(stdout.contains("after versions: []"), "{stdout}");
    assert!(stdout.contains("after objects: []"), "{stdout}");

    // `s3 rb --force` removes every object, then the bucket.
    admin.ok(&["s3", "sync", src.to_str().unwrap(), "s3://scratch/"]);
    admin.ok(&["s3", "rb", "--force", "s3://scratch"]);
    let buckets = admin.json(&["s3api", "list-buckets"]);
    assert!(
        !buckets["Buckets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["Name"] == "scratch"),
        "{buckets}"
    );
}
