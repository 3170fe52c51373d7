//! The control API's JSON inputs and the settings file over arbitrary
//! text: never a panic; failover settings the API accepts run the merge
//! engine's timers without a panic.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use tandem_core::FailoverSettings;
use tandem_hls::{MergeConfig, RenditionMerge};

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<tandem_server::api::SourceView>(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = toml::from_str::<tandem_server::config::FileConfig>(text);
    }
    let Ok(f) = serde_json::from_slice::<FailoverSettings>(data) else {
        return;
    };
    if tandem_server::api::check_failover(&f).is_err() {
        return;
    }
    let defaults = MergeConfig::default();
    let cfg = MergeConfig {
        loss_after_targets: f.loss_after_targets.unwrap_or(defaults.loss_after_targets),
        pdt_tolerance_targets: f
            .pdt_tolerance_targets
            .unwrap_or(defaults.pdt_tolerance_targets),
        hold_down: f
            .hold_down_secs
            .map_or(defaults.hold_down, Duration::from_secs),
        ..defaults
    };
    let mut m = RenditionMerge::new(cfg);
    let t0 = Instant::now();
    let pl = tandem_hls::playlist::parse_media(
        "#EXTM3U\n#EXT-X-TARGETDURATION:86400\n#EXTINF:86400,\na.ts\n",
    )
    .expect("a valid playlist");
    for p in tandem_core::Pipeline::BOTH {
        let _ = m.on_playlist(t0, p, &pl);
        let _ = m.on_segment_stored(t0, p, "a.ts");
    }
    let _ = m.next_deadline();
    let _ = m.on_tick(t0 + Duration::from_secs(86_400 * 200));
    m.check_invariants();
});
