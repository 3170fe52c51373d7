//! Path and name validation over arbitrary text: channel, archive and
//! container ids, object paths from URLs, and archive file naming. Never a
//! panic; what is accepted is accepted again in its printed form; an
//! accepted object path never climbs out of its root.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tandem_core::{ArchiveId, ChannelId, ContainerId, ObjectPath};
use tandem_ts::NamePattern;

fuzz_target!(|data: (&str, &str)| {
    let (a, b) = data;
    if let Ok(id) = ChannelId::parse(a) {
        assert_eq!(ChannelId::parse(id.as_str()).ok().as_ref(), Some(&id));
    }
    if let Ok(id) = ArchiveId::parse(a) {
        assert_eq!(ArchiveId::parse(id.as_str()).ok().as_ref(), Some(&id));
    }
    let _ = ContainerId::parse(a);
    if let Ok(p) = ObjectPath::from_url_path(a) {
        let url = p.to_url_path();
        assert!(
            !url.split('/').any(|s| s == ".." || s == "."),
            "{a:?} became {url:?}"
        );
        assert_eq!(
            ObjectPath::from_url_path(&url).ok().as_ref(),
            Some(&p),
            "{a:?}"
        );
    }
    if let Ok(pattern) = NamePattern::parse(a) {
        let _ = pattern.index_of(b);
    }
    let _ = NamePattern::first_match(&NamePattern::default_patterns(), b);
    let _ = tandem_ts::archive::file_name_of(b);
});
