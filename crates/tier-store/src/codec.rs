//! Customer value format: one format-version byte, then postcard (formats
//! 5 and 7: then a zstd frame of a format-4 or format-6 body).
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
//! - 5: a format-4 body compressed by zstd with the dictionary
//!   `states.zdict` (built into the binary; trained on the states the
//!   bench suite's workload leaves, see tier-engine's `state_dictionary`
//!   example). The frame carries its content size, no checksum (sled,
//!   fjall and redb check their own pages) and no dictionary id: the
//!   format byte names the dictionary, so `states.zdict` never changes;
//!   another dictionary is another format.
//! - 6: the state's applied event ids are packed into one byte string
//!   (fixed-width hashes, then their days; tier-core's
//!   `projection::applied`), where they were a map. Told apart from
//!   format 4's by a marker in the state (its window's header), so a
//!   format-4 body is decoded as it is.
//! - 7: a format-6 body compressed as format 5 compresses a format-4 one,
//!   with the same dictionary.
//!
//! The engine encodes format 6 ([`encode`]) and holds that value; the
//! store compresses it as it writes ([`stored`], on the committing
//! thread), keeping format 6 where compression saves nothing.
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
/// Version byte of format-4 bodies compressed with [`DICTIONARY`].
pub(crate) const FORMAT_V5_ZSTD: u8 = 5;
/// Version byte of states whose applied event ids are packed.
pub(crate) const FORMAT_V6: u8 = 6;
/// Version byte of format-6 bodies compressed with [`DICTIONARY`].
pub(crate) const FORMAT_V7_ZSTD: u8 = 7;
/// The format every encoding uses: the engine's values and a store
/// value that compression would not shrink.
pub(crate) const CURRENT_FORMAT: u8 = FORMAT_V6;
/// The newest format this build reads.
pub(crate) const NEWEST_FORMAT: u8 = FORMAT_V7_ZSTD;

/// The zstd dictionary of formats 5 and 7. Never edit it: values written with it
/// are read with it.
const DICTIONARY: &[u8] = include_bytes!("states.zdict");
/// zstd's level for stored states: level 1 with the dictionary keeps a
/// state's compression to about a microsecond (the committer compresses
/// every customer a batch touched).
const LEVEL: i32 = 1;
/// Bodies shorter than this are stored as they are: a frame's header and
/// the block's own header leave too little to save.
const MIN_COMPRESSED_BODY: usize = 32;
/// How many times its own length a zstd frame can decompress to at most:
/// a block of up to 128 KiB written as one repeated byte takes 4 bytes.
const MAX_BLOCK_RATIO: u64 = 128 * 1024 / 4;
/// The largest body a compressed value (format 5 or 7) may claim (its frame's content
/// size); a larger claim is a corrupt value, not an allocation. The
/// busiest customers of the bench workload encode to a few MiB.
const MAX_BODY: u64 = 1 << 30;

static ENCODER_DICTIONARY: std::sync::LazyLock<zstd::dict::EncoderDictionary<'static>> =
    std::sync::LazyLock::new(|| zstd::dict::EncoderDictionary::copy(DICTIONARY, LEVEL));
static DECODER_DICTIONARY: std::sync::LazyLock<zstd::dict::DecoderDictionary<'static>> =
    std::sync::LazyLock::new(|| zstd::dict::DecoderDictionary::copy(DICTIONARY));

thread_local! {
    /// A compression context per thread, with the dictionary loaded once
    /// (`None` when setting its parameters failed: values are then stored
    /// uncompressed), and the buffer it compresses into.
    static COMPRESSOR: std::cell::RefCell<(Option<zstd::bulk::Compressor<'static>>, Vec<u8>)> =
        std::cell::RefCell::new((compressor(), Vec::new()));
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        std::cell::RefCell::new(zstd::bulk::Decompressor::with_prepared_dictionary(&DECODER_DICTIONARY).ok());
}

fn compressor() -> Option<zstd::bulk::Compressor<'static>> {
    let mut c = zstd::bulk::Compressor::with_prepared_dictionary(&ENCODER_DICTIONARY).ok()?;
    c.include_checksum(false).ok()?;
    c.include_dictid(false).ok()?;
    c.include_contentsize(true).ok()?;
    Some(c)
}

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

/// What the store writes for `value`, an encoded customer value: a
/// format-6 value compressed (format 7) when that makes it shorter, any
/// other value as it is.
pub(crate) fn stored(value: &[u8]) -> Vec<u8> {
    match value.split_first() {
        // Format 7 is format 6 compressed: a later current format needs a
        // compressed format of its own.
        Some((&FORMAT_V6, body))
            if body.len() >= MIN_COMPRESSED_BODY && body.len() as u64 <= MAX_BODY =>
        {
            compressed(body).unwrap_or_else(|| value.to_vec())
        }
        _ => value.to_vec(),
    }
}

const _: () = assert!(
    CURRENT_FORMAT == FORMAT_V6,
    "format 7 compresses format-6 bodies: a new current format needs its own compressed format"
);

/// `body` as a format-7 value, or `None` when that is not shorter than the
/// format-6 value (or zstd failed: the value is then stored as it is).
fn compressed(body: &[u8]) -> Option<Vec<u8>> {
    COMPRESSOR.with_borrow_mut(|(c, frame)| {
        let c = c.as_mut()?;
        frame.clear();
        frame.reserve(zstd::zstd_safe::compress_bound(body.len()));
        let done = c.compress_to_buffer(body, frame);
        let out = (done.is_ok() && frame.len() < body.len()).then(|| {
            let mut out = Vec::with_capacity(1 + frame.len());
            out.push(FORMAT_V7_ZSTD);
            out.extend_from_slice(frame);
            out
        });
        // The busiest customer's frame is not kept for every later one.
        if frame.capacity() > SCRATCH_BYTES {
            *frame = Vec::new();
        }
        out
    })
}

/// A format-5 or format-7 value's body, decompressed.
fn decompressed(id: &str, frame: &[u8]) -> Result<Vec<u8>, StoreError> {
    let bad = |reason: String| StoreError::Undecompressable {
        id: id.to_owned(),
        reason,
    };
    // No frame holds more than 128 KiB per 4 bytes (an RLE block), so a
    // header claiming more is damage, refused before anything is
    // allocated for it.
    let most = MAX_BODY.min((frame.len() as u64).saturating_mul(MAX_BLOCK_RATIO));
    let len = match zstd::zstd_safe::get_frame_content_size(frame) {
        Ok(Some(len)) if len <= most => len,
        Ok(Some(len)) => return Err(bad(format!("it claims {len} bytes"))),
        Ok(None) => return Err(bad("its frame has no content size".to_owned())),
        Err(_) => return Err(bad("its frame header is not zstd's".to_owned())),
    };
    let len = usize::try_from(len).map_err(|_| bad(format!("it claims {len} bytes")))?;
    DECOMPRESSOR.with_borrow_mut(|d| {
        let d = d
            .as_mut()
            .ok_or_else(|| bad("zstd could not create a decompression context".to_owned()))?;
        let mut body = Vec::new();
        body.try_reserve_exact(len)
            .map_err(|_| bad(format!("{len} bytes could not be allocated for it")))?;
        d.decompress_to_buffer(frame, &mut body)
            .map_err(|e| bad(e.to_string()))?;
        if body.len() == len {
            Ok(body)
        } else {
            Err(bad(format!(
                "it claims {len} bytes and holds {}",
                body.len()
            )))
        }
    })
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
        Some((&(FORMAT_V6 | FORMAT_V4 | FORMAT_V3 | FORMAT_V2), body)) => {
            postcard::from_bytes(body).map_err(corrupt(id))
        }
        Some((&(FORMAT_V7_ZSTD | FORMAT_V5_ZSTD), frame)) => {
            postcard::from_bytes(&decompressed(id, frame)?).map_err(corrupt(id))
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
            supported: NEWEST_FORMAT,
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

    /// A value shaped like a customer state: strings, small numbers and
    /// repeated runs, which compress.
    fn state_like(n: u32) -> Vec<(String, u32, Option<i64>)> {
        (0..n)
            .map(|i| {
                (
                    format!("order-{}", i % 7),
                    i % 3,
                    Some(i64::from(i) * 1_000),
                )
            })
            .collect()
    }

    #[test]
    fn the_store_compresses_current_values_and_reads_them_back() {
        let state = state_like(40);
        let value = encode("c1", &state).unwrap();
        let packed = stored(&value);
        assert_eq!(packed[0], FORMAT_V7_ZSTD);
        assert!(
            packed.len() < value.len() / 2,
            "{} bytes stored for {}",
            packed.len(),
            value.len()
        );
        assert_eq!(
            decode::<Vec<(String, u32, Option<i64>)>>("c1", &packed).unwrap(),
            state
        );
        // Only the engine's own (uncompressed) values are bodies it holds.
        assert_eq!(current_body(&packed), None);

        // Too short to gain: stored as it is.
        let small = encode("c2", &(1u8, "x".to_owned())).unwrap();
        assert_eq!(stored(&small), small.to_vec());
        // Incompressible: stored as it is.
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        let noise: Vec<u8> = (0..600)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes()[0]
            })
            .collect();
        let noisy = encode("c3", &noise).unwrap();
        assert_eq!(stored(&noisy), noisy.to_vec());
        assert_eq!(decode::<Vec<u8>>("c3", &stored(&noisy)).unwrap(), noise);
        // An older format is never rewritten by the store.
        for older in [FORMAT_V3, FORMAT_V4] {
            let old = [&[older][..], &value[1..]].concat();
            assert_eq!(stored(&old), old);
        }

        // A state larger than the scratch buffer (the busiest customers).
        let big = state_like(100_000);
        let value = encode("c4", &big).unwrap();
        let packed = stored(&value);
        assert_eq!(packed[0], FORMAT_V7_ZSTD);
        assert!(packed.len() < value.len() / 4);
        assert_eq!(
            decode::<Vec<(String, u32, Option<i64>)>>("c4", &packed).unwrap(),
            big
        );
    }

    #[test]
    fn a_damaged_compressed_value_is_corrupt_and_says_so() {
        let value = stored(&encode("c1", &state_like(40)).unwrap());
        assert_eq!(value[0], FORMAT_V7_ZSTD);
        let read = |bytes: &[u8]| decode::<Vec<(String, u32, Option<i64>)>>("c1", bytes);

        let truncated = &value[..value.len() - 3];
        let err = read(truncated).unwrap_err();
        assert!(matches!(err, StoreError::Undecompressable { .. }), "{err}");
        assert!(err.is_corruption());
        assert!(
            err.to_string()
                .starts_with("stored value for customer c1 is corrupt"),
            "{err}"
        );

        let err = read(&[FORMAT_V5_ZSTD, 1, 2, 3, 4, 5, 6]).unwrap_err();
        assert!(err.to_string().contains("not zstd's"), "{err}");

        // A frame claiming more than a state can be is refused before
        // anything is allocated for it.
        let frame = zstd_frame_claiming(MAX_BODY + 1);
        let err = read(&[&[FORMAT_V5_ZSTD][..], &frame].concat()).unwrap_err();
        assert!(err.to_string().contains("claims"), "{err}");
        // Under the cap, but more than a frame of its length can hold.
        let frame = zstd_frame_claiming(100 << 20);
        let err = read(&[&[FORMAT_V5_ZSTD][..], &frame].concat()).unwrap_err();
        assert!(err.to_string().contains("claims 104857600 bytes"), "{err}");

        // A frame without its content size.
        let mut c = zstd::bulk::Compressor::new(1).unwrap();
        c.include_contentsize(false).unwrap();
        let frame = c.compress(&value[1..]).unwrap();
        let err = read(&[&[FORMAT_V5_ZSTD][..], &frame].concat()).unwrap_err();
        assert!(err.to_string().contains("no content size"), "{err}");
    }

    /// A format-5 value written by the build that introduced it: every
    /// later build reads it, so `states.zdict` (which it needs) is never
    /// edited. Without the dictionary the frame does not decompress.
    #[test]
    fn a_value_compressed_by_the_first_format_5_build_still_reads() {
        const WRITTEN: [u8; 120] = [
            5, 40, 181, 47, 253, 32, 176, 117, 3, 0, 3, 6, 21, 32, 24, 139, 188, 130, 254, 27, 23,
            77, 102, 108, 208, 93, 131, 237, 234, 27, 244, 237, 17, 194, 69, 38, 24, 244, 239, 176,
            128, 106, 89, 130, 238, 28, 222, 35, 157, 160, 239, 13, 16, 53, 103, 163, 160, 191,
            198, 95, 101, 65, 131, 238, 30, 118, 51, 94, 65, 223, 29, 190, 100, 195, 6, 253, 57,
            44, 128, 244, 13, 186, 111, 108, 223, 26, 62, 200, 0, 5, 39, 144, 193, 11, 64, 32, 17,
            11, 252, 18, 8, 43, 238, 123, 168, 206, 112, 75, 29, 45, 82, 70, 115, 153, 90, 111,
            211, 36, 11, 22,
        ];
        let expected: Vec<(String, u32, Option<i64>)> = (0..12u32)
            .map(|i| {
                (
                    format!("order-{}", i % 5),
                    i % 3,
                    Some(i64::from(i) * 86_400_000),
                )
            })
            .collect();
        assert_eq!(
            decode::<Vec<(String, u32, Option<i64>)>>("c1", &WRITTEN).unwrap(),
            expected
        );
        assert!(zstd::bulk::decompress(&WRITTEN[1..], 1 << 16).is_err());
    }

    /// The header of a zstd frame (magic, a frame header with an 8-byte
    /// content size) claiming `len` bytes, and an empty last raw block.
    fn zstd_frame_claiming(len: u64) -> Vec<u8> {
        let mut f = vec![0x28, 0xb5, 0x2f, 0xfd];
        // Frame header descriptor: content size field of 8 bytes, single
        // segment (no window descriptor), no checksum, no dictionary id.
        f.push(0b1110_0000);
        f.extend_from_slice(&len.to_le_bytes());
        // A last raw block of zero bytes.
        f.extend_from_slice(&[0x01, 0x00, 0x00]);
        f
    }

    proptest::proptest! {
        /// Whatever the store makes of a value, it decodes to the value.
        #[test]
        fn stored_values_decode_to_what_was_encoded(
            value in proptest::collection::vec(
                (proptest::prelude::any::<u64>(), ".{0,12}", proptest::prelude::any::<Option<u16>>()),
                0..80,
            ),
        ) {
            let packed = stored(&encode("c", &value).unwrap());
            let back: Vec<(u64, String, Option<u16>)> = decode("c", &packed).unwrap();
            proptest::prop_assert_eq!(back, value);
        }
    }

    #[test]
    fn round_trip_and_version_checks() {
        let bytes = encode("c1", &(7u32, "gold".to_owned())).unwrap();
        assert_eq!(bytes[0], FORMAT_V6);
        let back: (u32, String) = decode("c1", &bytes).unwrap();
        assert_eq!(back, (7, "gold".to_owned()));

        // Format 4: the body as it is (the state's decoder tells its old
        // applied ids' form from the new).
        let v4 = [&[FORMAT_V4][..], &bytes[1..]].concat();
        let back: (u32, String) = decode("c1", &v4).unwrap();
        assert_eq!(back, (7, "gold".to_owned()));
        assert_eq!(current_body(&v4), None, "not the format writes use");

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
