//! What the engine reports, in order: the driver logs, counts and stores it.

use std::time::Instant;

use tandem_core::{InputState, Pipeline};

/// Why the output changed pipelines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SwitchReason {
    /// The first segment of the output.
    Started,
    /// The active pipeline stopped advancing for the loss threshold.
    Stalled,
    /// The active pipeline ended its playlist.
    Ended,
    /// The active pipeline restarted (media sequence went back) while the
    /// other stayed aligned.
    Restarted,
    /// The preferred pipeline has been healthy for the hold-down time.
    Preferred,
    /// The output had ended and resumed on this pipeline.
    Resumed,
}

impl SwitchReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::Stalled => "stalled",
            Self::Ended => "ended",
            Self::Restarted => "restarted",
            Self::Preferred => "preferred",
            Self::Resumed => "resumed",
        }
    }
}

/// What happened, in order. The driver logs, counts and stores them.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    InputStateChanged {
        at: Instant,
        pipeline: Pipeline,
        from: InputState,
        to: InputState,
        inputs: [InputState; 2],
    },
    InputRestarted {
        at: Instant,
        pipeline: Pipeline,
        media_sequence: u64,
    },
    Switched {
        at: Instant,
        from: Option<Pipeline>,
        to: Pipeline,
        reason: SwitchReason,
        discontinuity: bool,
        inputs: [InputState; 2],
    },
    /// A segment entered the output. `filled`: taken from the standby
    /// pipeline because the active one's never completed.
    SegmentAdded {
        at: Instant,
        media_sequence: u64,
        from: Pipeline,
        source_uri: String,
        filled: bool,
    },
    /// A segment left the output window; `discontinuity`: it carried
    /// `EXT-X-DISCONTINUITY`, so the discontinuity sequence went up.
    SegmentRemoved {
        at: Instant,
        media_sequence: u64,
        discontinuity: bool,
    },
    /// A position that neither pipeline delivered whole; the output skipped
    /// it with a discontinuity.
    SegmentMissing {
        at: Instant,
        pipeline: Pipeline,
        source_uri: String,
    },
    /// Both pipelines ended: the output carries `EXT-X-ENDLIST`.
    Ended { at: Instant },
    /// The output had ended and a pipeline started again: output segment
    /// `media_sequence`, from `pipeline`, carries `EXT-X-DISCONTINUITY`
    /// and the playlist no longer ends.
    Resumed {
        at: Instant,
        pipeline: Pipeline,
        media_sequence: u64,
    },
    /// An operator reset the output: the window emptied (a
    /// [`Event::SegmentRemoved`] for each segment) and the next segment
    /// gets `media_sequence`.
    Reset { at: Instant, media_sequence: u64 },
}

#[cfg(test)]
mod tests {
    use super::SwitchReason;

    /// The names the server writes into events and metric labels, which
    /// operators' alert rules match on.
    #[test]
    fn switch_reasons_have_their_documented_names() {
        let names: Vec<&str> = [
            SwitchReason::Started,
            SwitchReason::Stalled,
            SwitchReason::Ended,
            SwitchReason::Restarted,
            SwitchReason::Preferred,
            SwitchReason::Resumed,
        ]
        .into_iter()
        .map(SwitchReason::as_str)
        .collect();
        assert_eq!(
            names,
            [
                "started",
                "stalled",
                "ended",
                "restarted",
                "preferred",
                "resumed"
            ]
        );
    }
}
