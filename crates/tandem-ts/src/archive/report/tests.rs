use std::time::Duration;

use super::{
    Coverage, FileFacts, FileState, IndexReport, ListedFile, MAX_INDEX_SPAN, Side, SideListing,
    VerifyError, verify,
};
use crate::archive::{NamePattern, Repair};
use crate::check::{PACKET_SIZE, TsState, check_ts};

const SEGMENTS: [&[u8]; 3] = [
    include_bytes!("../../../../../testdata/ts/ffmpeg_segment_2s.000000.ts"),
    include_bytes!("../../../../../testdata/ts/ffmpeg_segment_2s.000001.ts"),
    include_bytes!("../../../../../testdata/ts/ffmpeg_segment_2s.000002.ts"),
];

const P0: &str = "p0/archive/curling/";
const P1: &str = "p1/archive/curling/";

fn whole(secs: f64) -> FileFacts {
    FileFacts::Checked {
        state: TsState::Whole,
        duration: Some(Duration::from_secs_f64(secs)),
    }
}

fn state(state: TsState) -> FileFacts {
    FileFacts::Checked {
        state,
        duration: Some(Duration::from_secs(1)),
    }
}

fn key(prefix: &str, index: u64) -> String {
    format!("{prefix}curling-20171012T033162.{index:06}.m2ts")
}

fn listing(prefix: &str, files: &[(u64, FileFacts)]) -> SideListing {
    SideListing {
        prefix: prefix.to_owned(),
        files: files
            .iter()
            .map(|&(index, facts)| (key(prefix, index), index, facts).into())
            .collect(),
    }
}

fn row(index: u64, primary: FileState, backup: FileState, covered_by: Coverage) -> IndexReport {
    IndexReport {
        index,
        primary,
        backup,
        covered_by,
        primary_key: (primary != FileState::Missing).then(|| key(P0, index)),
        backup_key: (backup != FileState::Missing).then(|| key(P1, index)),
    }
}

/// Indexes 1..=7 at a 2 s rollover: primary 3 truncated, backup 4 missing,
/// primary 5 corrupt, 6 missing on both, 7 the last and short.
fn scenario() -> (SideListing, SideListing) {
    let primary = listing(
        P0,
        &[
            (1, whole(2.0)),
            (2, whole(2.0)),
            (3, state(TsState::Truncated)),
            (4, whole(2.0)),
            (5, state(TsState::Corrupt)),
            (7, whole(0.5)),
        ],
    );
    let backup = listing(
        P1,
        &[
            (1, whole(2.0)),
            (2, whole(2.0)),
            (3, whole(2.0)),
            (5, whole(2.0)),
            (7, whole(0.5)),
        ],
    );
    (primary, backup)
}

#[test]
fn scenario_reports_each_index_and_is_incomplete_because_of_the_gap() {
    use Coverage as C;
    use FileState::{Corrupt, Missing, Truncated, Whole};
    let (primary, backup) = scenario();
    let report = verify(&primary, &backup, Some(Duration::from_secs(2))).unwrap();
    assert_eq!(
        report.indexes,
        vec![
            row(1, Whole, Whole, C::Both),
            row(2, Whole, Whole, C::Both),
            row(3, Truncated, Whole, C::Backup),
            row(4, Whole, Missing, C::Primary),
            row(5, Corrupt, Whole, C::Backup),
            row(6, Missing, Missing, C::None),
            row(7, Whole, Whole, C::Both),
        ]
    );
    assert!(!report.complete);
}

#[test]
fn scenario_repairs_copy_the_whole_side_over_the_other() {
    let (primary, backup) = scenario();
    let report = verify(&primary, &backup, Some(Duration::from_secs(2))).unwrap();
    assert_eq!(
        report.repairs(),
        vec![
            Repair {
                index: 3,
                from: Side::Backup,
                to: Side::Primary,
                from_key: key(P1, 3),
                to_key: key(P0, 3),
                replaces: Some(key(P0, 3)),
            },
            Repair {
                index: 4,
                from: Side::Primary,
                to: Side::Backup,
                from_key: key(P0, 4),
                to_key: key(P1, 4),
                replaces: None,
            },
            Repair {
                index: 5,
                from: Side::Backup,
                to: Side::Primary,
                from_key: key(P1, 5),
                to_key: key(P0, 5),
                replaces: Some(key(P0, 5)),
            },
        ]
    );
}

#[test]
fn scenario_json_has_lowercase_states_and_the_four_fields() {
    let (primary, backup) = scenario();
    let report = verify(&primary, &backup, Some(Duration::from_secs(2))).unwrap();
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["complete"], false);
    assert_eq!(
        json["indexes"][2],
        serde_json::json!({
            "index": 3,
            "primary": "truncated",
            "backup": "whole",
            "covered_by": "backup",
            "primary_key": key(P0, 3),
            "backup_key": key(P1, 3),
        })
    );
    assert_eq!(
        json["indexes"][5],
        serde_json::json!({
            "index": 6,
            "primary": "missing",
            "backup": "missing",
            "covered_by": "none",
        })
    );
    assert_eq!(
        json.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["complete", "indexes"]
    );
}

#[test]
fn table_has_one_aligned_line_per_index() {
    let (primary, backup) = scenario();
    let report = verify(&primary, &backup, Some(Duration::from_secs(2))).unwrap();
    assert_eq!(
        report.table(),
        "\
index  primary    backup   covered by
1      whole      whole    both
2      whole      whole    both
3      truncated  whole    backup
4      whole      missing  primary
5      corrupt    whole    backup
6      missing    missing  none
7      whole      whole    both
"
    );
}

#[test]
fn filling_the_gap_makes_the_archive_complete() {
    let (mut primary, backup) = scenario();
    primary.files.push((key(P0, 6), 6, whole(2.0)).into());
    let report = verify(&primary, &backup, Some(Duration::from_secs(2))).unwrap();
    assert!(report.complete);
}

#[test]
fn whole_file_too_short_for_the_interval_is_truncated_and_too_long_is_corrupt() {
    let primary = listing(
        P0,
        &[
            (0, whole(1.79)),
            (1, whole(1.81)),
            (2, whole(2.19)),
            (3, whole(2.21)),
            (4, whole(0.1)),
        ],
    );
    let report = verify(
        &primary,
        &SideListing::default(),
        Some(Duration::from_secs(2)),
    )
    .unwrap();
    let states: Vec<FileState> = report.indexes.iter().map(|i| i.primary).collect();
    assert_eq!(
        states,
        [
            FileState::Truncated,
            FileState::Whole,
            FileState::Whole,
            FileState::Corrupt,
            FileState::Whole,
        ]
    );
}

#[test]
fn whole_file_without_a_duration_is_corrupt_unless_last() {
    let no_clock = FileFacts::Checked {
        state: TsState::Whole,
        duration: None,
    };
    let primary = listing(P0, &[(0, no_clock), (1, no_clock)]);
    let report = verify(
        &primary,
        &SideListing::default(),
        Some(Duration::from_secs(2)),
    )
    .unwrap();
    assert_eq!(report.indexes[0].primary, FileState::Corrupt);
    assert_eq!(report.indexes[1].primary, FileState::Whole);
}

#[test]
fn rollover_is_inferred_as_the_median_without_the_last_index() {
    let primary = listing(
        P0,
        &[
            (0, whole(6.0)),
            (1, whole(6.1)),
            (2, whole(3.0)),
            (3, whole(1.0)),
        ],
    );
    let backup = listing(P1, &[(0, whole(6.0)), (1, whole(5.9))]);
    let report = verify(&primary, &backup, None).unwrap();
    // Sorted 3.0, 5.9, 6.0, 6.0, 6.1: the 1.0 s last file is left out.
    assert_eq!(report.rollover(), Some(Duration::from_secs(6)));
    assert_eq!(report.indexes[2].primary, FileState::Truncated);
    assert_eq!(report.indexes[3].primary, FileState::Whole);
}

#[test]
fn no_whole_file_means_no_rollover_and_no_duration_rule() {
    let primary = listing(P0, &[(0, state(TsState::Corrupt)), (1, whole(0.2))]);
    let report = verify(&primary, &SideListing::default(), None).unwrap();
    assert_eq!(report.rollover(), None);
    assert_eq!(report.indexes[1].primary, FileState::Whole);
}

#[test]
fn best_listed_file_per_index_counts() {
    let mut primary = listing(P0, &[(0, state(TsState::Truncated))]);
    primary.files.push(
        (
            "p0/archive/curling/other-name.000000.ts".into(),
            0,
            whole(2.0),
        )
            .into(),
    );
    let report = verify(&primary, &SideListing::default(), None).unwrap();
    assert_eq!(report.indexes[0].primary, FileState::Whole);
    assert_eq!(
        report.indexes[0].primary_key.as_deref(),
        Some("p0/archive/curling/other-name.000000.ts")
    );
}

#[test]
fn empty_listings_are_not_complete() {
    let report = verify(&SideListing::default(), &SideListing::default(), None).unwrap();
    assert!(!report.complete);
    assert!(report.indexes.is_empty());
    assert!(report.repairs().is_empty());
}

#[test]
fn stray_index_far_away_is_refused() {
    let primary = listing(P0, &[(0, whole(2.0)), (MAX_INDEX_SPAN, whole(2.0))]);
    assert_eq!(
        verify(&primary, &SideListing::default(), None),
        Err(VerifyError::IndexSpanTooLarge {
            first: 0,
            last: MAX_INDEX_SPAN,
            max: MAX_INDEX_SPAN
        })
    );
}

#[test]
fn repair_never_targets_an_object_found_whole() {
    // The caller indexed a primary object as 9 whose name says 3; copying
    // backup's index 3 to that name would overwrite a whole file.
    let primary = SideListing {
        prefix: P0.into(),
        files: vec![
            ListedFile {
                key: key(P0, 3),
                index: 9,
                facts: whole(2.0),
            },
            ListedFile {
                key: key(P0, 3).replace(".m2ts", ".ts"),
                index: 3,
                facts: state(TsState::Corrupt),
            },
        ],
    };
    let backup = listing(P1, &[(3, whole(2.0)), (9, whole(2.0))]);
    let report = verify(&primary, &backup, Some(Duration::from_secs(2))).unwrap();
    assert_eq!(report.indexes[0].covered_by, Coverage::Backup);
    assert!(report.repairs().is_empty());
}

#[test]
fn repair_into_a_different_name_reports_the_broken_object_it_leaves() {
    let primary = SideListing {
        prefix: P0.into(),
        files: vec![ListedFile {
            key: "p0/archive/curling/curling-20171012T040000.000003.m2ts".into(),
            index: 3,
            facts: state(TsState::Truncated),
        }],
    };
    let backup = listing(P1, &[(3, whole(2.0))]);
    let report = verify(&primary, &backup, Some(Duration::from_secs(2))).unwrap();
    let repairs = report.repairs();
    assert_eq!(repairs.len(), 1);
    assert_eq!(repairs[0].to_key, key(P0, 3));
    assert_eq!(
        repairs[0].replaces.as_deref(),
        Some("p0/archive/curling/curling-20171012T040000.000003.m2ts")
    );
}

/// The three ffmpeg segments checked for real, with primary's index 1 cut
/// to half at a packet boundary: it still parses whole, but is too short.
#[test]
fn real_segment_cut_at_a_packet_boundary_is_truncated_by_duration() {
    let patterns = NamePattern::default_patterns();
    let side = |prefix: &str, cut_index: Option<u64>| SideListing {
        prefix: prefix.to_owned(),
        files: SEGMENTS
            .iter()
            .enumerate()
            .map(|(i, data)| {
                let key = format!("{prefix}ffmpeg_segment_2s.{i:06}.ts");
                let index = NamePattern::first_match(&patterns, &key).unwrap();
                let data = if cut_index == Some(index) {
                    &data[..data.len() / PACKET_SIZE / 2 * PACKET_SIZE]
                } else {
                    data
                };
                let check = check_ts(data);
                assert_eq!(check.state, TsState::Whole, "{key}: {:?}", check.problems);
                ListedFile {
                    key,
                    index,
                    facts: (&check).into(),
                }
            })
            .collect(),
    };
    let report = verify(&side(P0, Some(1)), &side(P1, None), None).unwrap();
    // Median of 1.0 s (the cut file) and three 1.96 s spans; index 2 is last.
    assert_eq!(report.rollover(), Some(Duration::from_millis(1960)));
    let states: Vec<(FileState, FileState)> = report
        .indexes
        .iter()
        .map(|i| (i.primary, i.backup))
        .collect();
    assert_eq!(
        states,
        [
            (FileState::Whole, FileState::Whole),
            (FileState::Truncated, FileState::Whole),
            (FileState::Whole, FileState::Whole),
        ]
    );
    assert!(report.complete);
    assert_eq!(
        report.repairs(),
        vec![Repair {
            index: 1,
            from: Side::Backup,
            to: Side::Primary,
            from_key: format!("{P1}ffmpeg_segment_2s.000001.ts"),
            to_key: format!("{P0}ffmpeg_segment_2s.000001.ts"),
            replaces: Some(format!("{P0}ffmpeg_segment_2s.000001.ts")),
        }]
    );
}
