//! Customer value format: one format-version byte, then postcard.
//!
//! - 1: the state without the figures at its last tier change.
//! - 2: the same state with those figures (tier-core's
//!   `CustomerState::indicators_at_change`, an `Option`) as its last
//!   field. A format-1 body is therefore a format-2 body whose last field
//!   is absent: [`decode`] upcasts it by appending postcard's `None` (one
//!   zero byte). Such a customer's next change compares its reasons with
//!   no baseline, as it did before, once; writing it stores format 2.
//! - 3: the state's window sums compact (only the nonzero figures; see
//!   tier-core's `projection::sums`). The state's own decoder tells the
//!   two window forms apart by a marker, so a format-2 body is decoded as
//!   it is; the new version keeps an older build, which would misread a
//!   compact window, from reading one.
//! - 4: an open invoice's payments keep their instants (tier-core's
//!   projection: when the payments first covered the invoice in event
//!   time), and the profile writes an instant its fields share once.
//!   Told apart from format 3's by a marker in the state (and the
//!   profile's older form is a special case of the new), so a format-3
//!   body is decoded as it is.
//!
//! When the state type changes incompatibly, add a version, keep decoding
//! the old ones in [`decode`] and upcast them there; writers always use
//! [`CURRENT_FORMAT`].

use std::sync::Arc;

use postcard::ser_flavors::Flavor;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::StoreError;

/// Version byte of postcard-encoded states without a trailing baseline.
pub(crate) const FORMAT_V1: u8 = 1;
/// Version byte of postcard-encoded states ending in the optional
/// baseline of the next change's reasons.
pub(crate) const FORMAT_V2: u8 = 2;
/// Version byte of states whose window sums are compact.
pub(crate) const FORMAT_V3: u8 = 3;
/// Version byte of states whose invoices' payments keep their instants.
pub(crate) const FORMAT_V4: u8 = 4;
/// The format every write uses.
pub(crate) const CURRENT_FORMAT: u8 = FORMAT_V4;

/// Bytes of the per-thread scratch buffer states are encoded into; a state
/// that does not fit is encoded into a growing vector instead. The busiest
/// customers of a Zipf-shaped workload encode to more than 128 KiB (a
/// profile of a catch-up found their vectors regrown at every seal); a
/// mebibyte holds them, and its pages are only touched as far as a state
/// reaches.
const SCRATCH_BYTES: usize = 1 << 20;

thread_local! {
    /// Postcard writes a state a varint or a few bytes at a time: into a
    /// slice each write is a bounds check and a copy, where a growing
    /// vector checks its capacity and length on every one. The engine's
    /// seal encodes every customer a unit touched, so this is its hot path.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; SCRATCH_BYTES]);
}

/// Encodes one customer state behind its format byte, into one shared
/// allocation: the engine hands it to the commit and may hold it (see
/// [`current_body`]) without a copy.
pub(crate) fn encode<S: Serialize>(id: &str, value: &S) -> Result<Arc<[u8]>, StoreError> {
    postcard_after(&[CURRENT_FORMAT], value).map_err(|source| StoreError::Encode {
        id: id.to_owned(),
        source,
    })
}

/// The postcard body of a customer value this build encoded (behind the
/// current format byte), or `None` for any other value. The engine cools a
/// customer whose stored value it still holds by keeping this body instead
/// of encoding the state again.
pub fn current_body(value: &[u8]) -> Option<&[u8]> {
    match value.split_first() {
        Some((&CURRENT_FORMAT, body)) => Some(body),
        _ => None,
    }
}

/// `prefix`, then `value` in postcard, in one allocation of exactly that
/// length (a `Vec<u8>`, `Box<[u8]>` or `Arc<[u8]>`): written into a
/// per-thread scratch slice first (a value that does not fit goes into a
/// growing vector instead). Besides the store's values, the engine holds
/// its cold customers this way.
pub fn postcard_after<T, S>(prefix: &[u8], value: &S) -> Result<T, postcard::Error>
where
    T: for<'a> From<&'a [u8]> + From<Vec<u8>>,
    S: Serialize + ?Sized,
{
    let fitted = SCRATCH.with_borrow_mut(|scratch| {
        let (head, body) = scratch.split_at_mut_checked(prefix.len())?;
        head.copy_from_slice(prefix);
        match postcard::serialize_with_flavor(value, Runs { buf: body, len: 0 }) {
            Ok(written) => {
                let len = prefix.len() + written;
                Some(Ok(T::from(&scratch[..len])))
            }
            Err(postcard::Error::SerializeBufferFull) => None,
            Err(e) => Some(Err(e)),
        }
    });
    fitted.unwrap_or_else(|| {
        let mut buf = Vec::with_capacity(2 * SCRATCH_BYTES);
        buf.extend_from_slice(prefix);
        postcard::to_extend(value, buf).map(T::from)
    })
}

/// Postcard's output into a slice, as its own `Slice` flavor writes it,
/// except that the short runs postcard hands over (a varint, a few bytes
/// at a time) are copied inline: through `copy_nonoverlapping` of a
/// length only known at run time, each was a call to `memmove`, which a
/// profile of the engine's seal put at about a tenth of encoding a state.
struct Runs<'a> {
    buf: &'a mut [u8],
    /// Bytes written.
    len: usize,
}

impl Flavor for Runs<'_> {
    type Output = usize;

    #[inline]
    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        let slot = self
            .buf
            .get_mut(self.len)
            .ok_or(postcard::Error::SerializeBufferFull)?;
        *slot = byte;
        self.len += 1;
        Ok(())
    }

    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        let dst = self
            .len
            .checked_add(data.len())
            .and_then(|end| self.buf.get_mut(self.len..end))
            .ok_or(postcard::Error::SerializeBufferFull)?;
        copy_run(dst, data);
        self.len += data.len();
        Ok(())
    }

    fn finalize(self) -> postcard::Result<usize> {
        Ok(self.len)
    }
}

/// `dst.copy_from_slice(src)` (equal lengths), with the copies of up to 16
/// bytes done as two fixed-size copies that overlap (no call).
#[inline(always)]
fn copy_run(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    debug_assert_eq!(dst.len(), n);
    match n {
        0 => {}
        1..=3 => {
            // Covers every byte of 1, 2 or 3.
            dst[0] = src[0];
            dst[n / 2] = src[n / 2];
            dst[n - 1] = src[n - 1];
        }
        4..=7 => {
            dst[..4].copy_from_slice(&src[..4]);
            dst[n - 4..].copy_from_slice(&src[n - 4..]);
        }
        8..=16 => {
            dst[..8].copy_from_slice(&src[..8]);
            dst[n - 8..].copy_from_slice(&src[n - 8..]);
        }
        _ => dst.copy_from_slice(src),
    }
}

/// Decodes one stored customer state, checking its format byte.
pub(crate) fn decode<S: DeserializeOwned>(id: &str, bytes: &[u8]) -> Result<S, StoreError> {
    match bytes.split_first() {
        None => Err(StoreError::Corrupt {
            id: id.to_owned(),
            source: postcard::Error::DeserializeUnexpectedEnd,
        }),
        Some((&(FORMAT_V4 | FORMAT_V3 | FORMAT_V2), body)) => {
            postcard::from_bytes(body).map_err(corrupt(id))
        }
        Some((&FORMAT_V1, body)) => {
            let mut upcast = Vec::with_capacity(body.len() + 1);
            upcast.extend_from_slice(body);
            upcast.push(0);
            postcard::from_bytes(&upcast).map_err(corrupt(id))
        }
        Some((&version, _)) => Err(StoreError::UnknownFormatVersion {
            id: id.to_owned(),
            version,
            supported: CURRENT_FORMAT,
        }),
    }
}

fn corrupt(id: &str) -> impl FnOnce(postcard::Error) -> StoreError + '_ {
    move |source| StoreError::Corrupt {
        id: id.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_larger_than_the_scratch_buffer_round_trips() {
        let big: Vec<u64> = (0..SCRATCH_BYTES as u64).map(|i| i << 20).collect();
        let bytes = encode("c1", &big).unwrap();
        assert!(bytes.len() > SCRATCH_BYTES);
        assert_eq!(decode::<Vec<u64>>("c1", &bytes).unwrap(), big);
        let small = encode("c2", &(1u8, "x".to_owned())).unwrap();
        assert_eq!(*small, [CURRENT_FORMAT, 1, 1, b'x']);
        assert_eq!(current_body(&small), Some(&[1, 1, b'x'][..]));
        // Without a prefix: postcard alone, in an exact allocation.
        let bare: Vec<u8> = postcard_after(&[], &(1u8, "x".to_owned())).unwrap();
        assert_eq!(bare, [1, 1, b'x']);
        assert_eq!(bare.capacity(), bare.len());
        let bare_big: Box<[u8]> = postcard_after(&[], &big).unwrap();
        assert_eq!(*bare_big, *postcard::to_allocvec(&big).unwrap());
        assert_eq!(current_body(&bytes), Some(&bare_big[..]));
    }

    #[test]
    fn runs_of_every_length_are_copied_whole() {
        let src: Vec<u8> = (1..=40).collect();
        for n in 0..=40 {
            let mut dst = vec![0u8; n];
            copy_run(&mut dst, &src[..n]);
            assert_eq!(dst, src[..n], "{n} bytes");
        }
    }

    proptest::proptest! {
        /// The inline runs write exactly postcard's bytes.
        #[test]
        fn encodings_are_postcards_own(
            value in proptest::collection::vec(
                (proptest::prelude::any::<u64>(), proptest::prelude::any::<i32>(),
                 ".{0,40}", proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
                 proptest::prelude::any::<Option<u16>>()),
                0..50,
            ),
        ) {
            let ours: Vec<u8> = postcard_after(&[], &value).unwrap();
            proptest::prop_assert_eq!(ours, postcard::to_allocvec(&value).unwrap());
        }
    }

    #[test]
    fn round_trip_and_version_checks() {
        let bytes = encode("c1", &(7u32, "gold".to_owned())).unwrap();
        assert_eq!(bytes[0], FORMAT_V4);
        let back: (u32, String) = decode("c1", &bytes).unwrap();
        assert_eq!(back, (7, "gold".to_owned()));

        // Format 3: the body as it is (the state's decoder tells its old
        // invoice payments' form from the new).
        let v3 = [&[FORMAT_V3][..], &bytes[1..]].concat();
        let back: (u32, String) = decode("c1", &v3).unwrap();
        assert_eq!(back, (7, "gold".to_owned()));
        assert_eq!(current_body(&v3), None, "not the format writes use");

        // Format 2: the body as it is (the state's decoder tells its old
        // window form from the new).
        let v2 = [&[FORMAT_V2][..], &bytes[1..]].concat();
        let back: (u32, String) = decode("c1", &v2).unwrap();
        assert_eq!(back, (7, "gold".to_owned()));
        assert_eq!(current_body(&v2), None, "not the format writes use");

        // Format 1: the same value without its last field, an option.
        let v1 = [&[FORMAT_V1][..], &bytes[1..]].concat();
        let back: (u32, String, Option<u64>) = decode("c1", &v1).unwrap();
        assert_eq!(back, (7, "gold".to_owned(), None));
        let v2 = encode("c1", &(7u32, "gold".to_owned(), Some(3u64))).unwrap();
        let back: (u32, String, Option<u64>) = decode("c1", &v2).unwrap();
        assert_eq!(back, (7, "gold".to_owned(), Some(3)));

        let mut future = bytes.to_vec();
        future[0] = 9;
        assert_eq!(current_body(&future), None, "not this build's format");
        assert_eq!(current_body(&v1), None);
        assert_eq!(current_body(&[]), None);
        let err = decode::<(u32, String)>("c1", &future).unwrap_err();
        assert!(matches!(
            err,
            StoreError::UnknownFormatVersion { version: 9, .. }
        ));
        assert!(err.to_string().contains("customer c1"), "{err}");

        let err = decode::<(u32, String)>("c1", &[]).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }));
        let err = decode::<(u32, String)>("c1", &[FORMAT_V3, 0xff]).unwrap_err();
        assert_eq!(
            err.to_string().split(':').next(),
            Some("stored value for customer c1 is corrupt")
        );
    }
}
