//! MediaStore's object and folder names: letters, digits and `. _ ~ - = :`,
//! `/` between at most 10 folder levels, 900 characters in all.

use crate::error::MsError;

/// Longest path MediaStore accepts.
pub const MAX_PATH: usize = 900;
/// Deepest folder nesting MediaStore accepts.
pub const MAX_FOLDERS: usize = 10;

fn name_ok(seg: &str) -> bool {
    !seg.is_empty()
        && seg != "."
        && seg != ".."
        && seg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._~-=:".contains(&b))
}

/// Splits a decoded object path (`live/channel_1.ts`) into its segments,
/// refusing what MediaStore refuses.
pub fn object_segments(path: &str) -> Result<Vec<String>, MsError> {
    folder_or_object(path, false)
}

/// Splits a decoded folder path for ListItems: empty (the container's
/// root), with or without leading and trailing `/`.
pub fn folder_segments(path: &str) -> Result<Vec<String>, MsError> {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    folder_or_object(trimmed, true)
}

fn folder_or_object(path: &str, folder: bool) -> Result<Vec<String>, MsError> {
    if path.is_empty() {
        return Err(MsError::Validation("Path is empty".into()));
    }
    if path.len() > MAX_PATH {
        return Err(MsError::Validation(format!(
            "Path is longer than {MAX_PATH} characters"
        )));
    }
    let segs: Vec<String> = path.split('/').map(str::to_owned).collect();
    if let Some(bad) = segs.iter().find(|s| !name_ok(s)) {
        return Err(MsError::Validation(format!(
            "Name {bad:?} is not valid: use letters, digits and . _ ~ - = : only"
        )));
    }
    let folders = if folder { segs.len() } else { segs.len() - 1 };
    if folders > MAX_FOLDERS {
        return Err(MsError::Validation(format!(
            "Path has more than {MAX_FOLDERS} folder levels"
        )));
    }
    Ok(segs)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names_follow_mediastore_rules() {
        for good in [
            "a.ts",
            "live/channel_1.ts",
            "a=b:c~d-e.m3u8",
            "1/2/3/4/5/6/7/8/9/10/x.ts",
        ] {
            assert!(object_segments(good).is_ok(), "{good}");
        }
        let long = "a".repeat(901);
        for bad in [
            "",
            "a b",
            "a/../b",
            "./a",
            "a//b",
            "/a",
            "a/",
            "caf\u{e9}",
            "a%2fb",
            "a?b",
            "1/2/3/4/5/6/7/8/9/10/11/x.ts",
            long.as_str(),
        ] {
            assert!(object_segments(bad).is_err(), "{bad}");
        }
        assert_eq!(folder_segments("").unwrap(), Vec::<String>::new());
        assert_eq!(folder_segments("/").unwrap(), Vec::<String>::new());
        assert_eq!(folder_segments("/live/sub/").unwrap(), ["live", "sub"]);
        assert!(folder_segments("1/2/3/4/5/6/7/8/9/10/11").is_err());
    }
}
