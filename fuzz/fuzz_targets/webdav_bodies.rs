//! WebDAV request bodies (PROPFIND, PROPPATCH) over arbitrary bytes: a
//! typed refusal or a parse, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tandem_server::ingest::webdav::{parse_propfind, parse_proppatch};

fuzz_target!(|data: &[u8]| {
    let _ = parse_propfind(data);
    let _ = parse_proppatch(data);
});
