//! The MPEG-TS archive checks over arbitrary bytes: never a panic, and the
//! verdict does not depend on anything but the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tandem_ts::check_ts;

fuzz_target!(|data: &[u8]| {
    let a = check_ts(data);
    let b = check_ts(data);
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
});
