//! Moving a broken data directory out of the way, never deleting it.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::StoreError;

/// Renames `dir` to `<dir>.quarantined-<unix-millis>` (with `-1`, `-2`, ...
/// appended should that name exist) and returns the new path. The data is
/// kept for inspection; nothing is deleted. The store must not be open.
pub fn quarantine(dir: &Path) -> Result<PathBuf, StoreError> {
    let fail = |source| StoreError::Quarantine {
        dir: dir.to_owned(),
        source,
    };
    let name = dir.file_name().ok_or_else(|| {
        fail(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the path has no final component to rename",
        ))
    })?;
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let base = format!("{}.quarantined-{millis}", name.to_string_lossy());
    let mut target = dir.with_file_name(&base);
    let mut n = 0u32;
    while target.try_exists().map_err(fail)? {
        n += 1;
        target = dir.with_file_name(format!("{base}-{n}"));
    }
    std::fs::rename(dir, &target).map_err(fail)?;
    Ok(target)
}

/// Open a store with `open`; a data dir that is corrupt (or of an older
/// schema) is moved aside with [`quarantine`] and a fresh store opened in
/// its place, with a log line saying which. The one rule of every
/// backend's `open_or_quarantine`.
pub(crate) fn open_or_quarantine<S>(
    dir: &Path,
    opts: crate::StoreOptions,
    open: impl Fn(&Path, crate::StoreOptions) -> Result<S, StoreError>,
) -> Result<(S, Option<PathBuf>), StoreError> {
    match open(dir, opts.clone()) {
        Ok(store) => Ok((store, None)),
        Err(err) if err.is_corruption() => {
            let moved = quarantine(dir)?;
            if let StoreError::SchemaMismatch {
                found, supported, ..
            } = &err
            {
                tracing::warn!(
                    dir = %dir.display(),
                    set_aside = %moved.display(),
                    found,
                    supported,
                    "data dir was written by an older tierd; set it aside and rebuilding the state from Kafka"
                );
            } else {
                tracing::warn!(
                    dir = %dir.display(),
                    quarantined = %moved.display(),
                    error = %err,
                    "data dir is corrupt; quarantined it and starting with an empty store"
                );
            }
            Ok((open(dir, opts)?, Some(moved)))
        }
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renames_next_to_the_original_and_never_overwrites() {
        let parent = tempfile::tempdir().unwrap();
        let mut moved = Vec::new();
        for round in 0..3 {
            let dir = parent.path().join("data");
            std::fs::create_dir(&dir).unwrap();
            std::fs::write(dir.join("file"), format!("round {round}")).unwrap();
            // A trailing slash must not put the copy inside the directory.
            let with_slash = PathBuf::from(format!("{}/", dir.display()));
            let target = quarantine(&with_slash).unwrap();
            assert_eq!(target.parent(), Some(parent.path()));
            assert!(
                target
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("data.quarantined-")
            );
            assert!(!dir.exists());
            assert_eq!(
                std::fs::read_to_string(target.join("file")).unwrap(),
                format!("round {round}")
            );
            moved.push(target);
        }
        moved.sort();
        moved.dedup();
        assert_eq!(moved.len(), 3);
    }

    #[test]
    fn missing_dir_is_an_error() {
        let parent = tempfile::tempdir().unwrap();
        let err = quarantine(&parent.path().join("absent")).unwrap_err();
        assert!(matches!(err, StoreError::Quarantine { .. }));
        assert!(
            err.to_string().starts_with("could not quarantine data dir"),
            "{err}"
        );
    }
}
