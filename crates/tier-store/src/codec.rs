//! Customer value format: one format-version byte, then postcard.
//!
//! Version 1 is the only one so far. When the state type changes
//! incompatibly, add a version, keep decoding the old one in [`decode`] and
//! upcast it to the new type there; writers always use [`CURRENT_FORMAT`].

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::StoreError;

/// Version byte of postcard-encoded customer states.
pub(crate) const FORMAT_V1: u8 = 1;
/// The format every write uses.
pub(crate) const CURRENT_FORMAT: u8 = FORMAT_V1;

/// Encodes one customer state behind its format byte.
pub(crate) fn encode<S: Serialize>(id: &str, value: &S) -> Result<Vec<u8>, StoreError> {
    let mut buf = Vec::with_capacity(256);
    buf.push(CURRENT_FORMAT);
    postcard::to_extend(value, buf).map_err(|source| StoreError::Encode {
        id: id.to_owned(),
        source,
    })
}

/// Decodes one stored customer state, checking its format byte.
pub(crate) fn decode<S: DeserializeOwned>(id: &str, bytes: &[u8]) -> Result<S, StoreError> {
    match bytes.split_first() {
        None => Err(StoreError::Corrupt {
            id: id.to_owned(),
            source: postcard::Error::DeserializeUnexpectedEnd,
        }),
        Some((&FORMAT_V1, body)) => {
            postcard::from_bytes(body).map_err(|source| StoreError::Corrupt {
                id: id.to_owned(),
                source,
            })
        }
        Some((&version, _)) => Err(StoreError::UnknownFormatVersion {
            id: id.to_owned(),
            version,
            supported: CURRENT_FORMAT,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_version_checks() {
        let bytes = encode("c1", &(7u32, "gold".to_owned())).unwrap();
        assert_eq!(bytes[0], FORMAT_V1);
        let back: (u32, String) = decode("c1", &bytes).unwrap();
        assert_eq!(back, (7, "gold".to_owned()));

        let mut future = bytes.clone();
        future[0] = 9;
        let err = decode::<(u32, String)>("c1", &future).unwrap_err();
        assert!(matches!(
            err,
            StoreError::UnknownFormatVersion { version: 9, .. }
        ));
        assert!(err.to_string().contains("customer c1"), "{err}");

        let err = decode::<(u32, String)>("c1", &[]).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }));
        let err = decode::<(u32, String)>("c1", &[FORMAT_V1, 0xff]).unwrap_err();
        assert_eq!(
            err.to_string().split(':').next(),
            Some("stored value for customer c1 is corrupt")
        );
    }
}
