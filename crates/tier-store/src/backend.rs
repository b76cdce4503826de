//! Choosing a store backend: the [`Backend`] names (parsed from
//! configuration, checked against what this build compiled in) and telling
//! from a data dir's files which backend wrote it.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::StoreError;

/// File name of the redb database inside a data dir.
pub(crate) const REDB_FILE: &str = "state.redb";

/// A store backend. sled is always compiled in and the default; fjall and
/// redb need tier-store's cargo features `fjall` and `redb` (tierd forwards
/// them as `store-fjall` and `store-redb`).
///
/// Every variant exists in every build so that a configuration naming a
/// backend this build lacks gets a clear error rather than "unknown".
/// Parsing ([`FromStr`], and serde) accepts only the backends compiled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Backend {
    /// [`SledStore`](crate::SledStore): one sled tree, always compiled in.
    #[default]
    Sled,
    /// `FjallStore`: one fjall keyspace (an LSM tree); feature `fjall`.
    Fjall,
    /// `RedbStore`: one redb table (a copy-on-write B-tree); feature `redb`.
    Redb,
}

impl Backend {
    /// Every backend, compiled in or not.
    pub const ALL: [Backend; 3] = [Backend::Sled, Backend::Fjall, Backend::Redb];

    /// The configuration name: `sled`, `fjall` or `redb`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sled => "sled",
            Backend::Fjall => "fjall",
            Backend::Redb => "redb",
        }
    }

    /// True if this build can open stores of this backend.
    pub fn is_compiled_in(self) -> bool {
        match self {
            Backend::Sled => true,
            Backend::Fjall => cfg!(feature = "fjall"),
            Backend::Redb => cfg!(feature = "redb"),
        }
    }

    /// The backends this build can open, in [`Backend::ALL`] order.
    pub fn compiled_in() -> Vec<Backend> {
        Self::ALL
            .into_iter()
            .filter(|b| b.is_compiled_in())
            .collect()
    }

    /// `"sled, fjall, redb"`: the compiled-in backends, for messages.
    pub fn compiled_in_list() -> String {
        Self::compiled_in()
            .iter()
            .map(|b| b.name())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `Ok(self)` if compiled in, else [`StoreError::BackendNotCompiled`].
    pub fn ensure_compiled_in(self) -> Result<Self, StoreError> {
        if self.is_compiled_in() {
            Ok(self)
        } else {
            Err(StoreError::BackendNotCompiled {
                backend: self,
                feature: self.name(),
                compiled: Self::compiled_in_list(),
            })
        }
    }

    /// Which backend's files `dir` holds, judged by file names only (no
    /// file is opened): sled keeps `conf` and `db`, fjall `version` and
    /// `keyspaces/`, redb the one file `state.redb`. `None` for a missing
    /// or empty dir and for a dir holding none of these.
    pub fn detect(dir: &Path) -> Option<Backend> {
        if dir.join(REDB_FILE).is_file() {
            Some(Backend::Redb)
        } else if dir.join("version").is_file() && dir.join("keyspaces").is_dir() {
            Some(Backend::Fjall)
        } else if dir.join("conf").is_file() || dir.join("db").is_file() {
            Some(Backend::Sled)
        } else {
            None
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Backend {
    type Err = StoreError;

    /// Case-insensitive `sled`, `fjall` or `redb`; a backend not compiled
    /// into this build is an error naming the ones that are.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim();
        Self::ALL
            .into_iter()
            .find(|b| b.name().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| StoreError::UnknownBackend {
                name: s.to_owned(),
                compiled: Self::compiled_in_list(),
            })?
            .ensure_compiled_in()
    }
}

impl Serialize for Backend {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Backend {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_list_what_is_compiled_in() {
        for b in Backend::compiled_in() {
            assert_eq!(b.to_string().parse::<Backend>().unwrap(), b);
            assert_eq!(b.name().to_uppercase().parse::<Backend>().unwrap(), b);
        }
        assert_eq!(Backend::default(), Backend::Sled);
        let err = "rocksdb".parse::<Backend>().unwrap_err();
        assert!(matches!(err, StoreError::UnknownBackend { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "unknown store backend \"rocksdb\": this build supports {}",
                Backend::compiled_in_list()
            )
        );
        assert!(Backend::compiled_in_list().starts_with("sled"));
    }

    #[test]
    fn a_backend_not_compiled_in_is_refused_by_name() {
        for b in Backend::ALL {
            match b.name().parse::<Backend>() {
                Ok(parsed) => {
                    assert!(b.is_compiled_in());
                    assert_eq!(parsed, b);
                }
                Err(err) => {
                    assert!(!b.is_compiled_in());
                    let msg = err.to_string();
                    assert!(
                        msg.starts_with(&format!(
                            "store backend {b} is not compiled into this build (it needs cargo feature store-{b} of tierd, {b} of tier-store)"
                        )),
                        "{msg}"
                    );
                    assert!(msg.ends_with("this build supports sled") || msg.contains("sled, "));
                }
            }
        }
        assert_eq!(cfg!(feature = "fjall"), Backend::Fjall.is_compiled_in());
        assert_eq!(cfg!(feature = "redb"), Backend::Redb.is_compiled_in());
    }

    #[test]
    fn detect_tells_the_backends_apart_by_their_files() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        assert_eq!(Backend::detect(&d.join("missing")), None);
        assert_eq!(Backend::detect(d), None);
        std::fs::write(d.join("unrelated"), b"x").unwrap();
        assert_eq!(Backend::detect(d), None);
        std::fs::write(d.join("db"), b"x").unwrap();
        assert_eq!(Backend::detect(d), Some(Backend::Sled));
        let f = d.join("f");
        std::fs::create_dir_all(f.join("keyspaces")).unwrap();
        std::fs::write(f.join("version"), b"x").unwrap();
        assert_eq!(Backend::detect(&f), Some(Backend::Fjall));
        let r = d.join("r");
        std::fs::create_dir_all(&r).unwrap();
        std::fs::write(r.join(REDB_FILE), b"x").unwrap();
        assert_eq!(Backend::detect(&r), Some(Backend::Redb));
    }
}
