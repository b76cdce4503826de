//! The stored form of the applied event ids (the projection's `seen`:
//! each applied event id's hash, with the day it is kept until, to drop
//! redeliveries).
//!
//! In binary formats (postcard: the store and the engine's cold
//! customers) the ids are one byte string, since store format 6:
//!
//! - the number of ids (a varint), then the earliest of their days
//!   (zigzag varint); none of this when there are no ids (an empty
//!   string);
//! - every hash, 8 bytes little-endian;
//! - every day as days after the earliest (a varint each, in the hashes'
//!   order; a day is never before the window's start, so these are one
//!   or two bytes).
//!
//! Before, they were a map: per id a varint hash (9 or 10 bytes: the
//! hashes are uniform) and a zigzag varint day (3 bytes), about 13 bytes
//! where the string takes about 9.5. A decode for deciding only (the
//! engine's policy rescore, see [`deciding_only`](super::deciding_only))
//! could only skip the map by reading it entry by entry, which a profile
//! of the rescore put at a fifth of its time; the string is skipped in
//! one step, and a full decode reads fixed-width hashes.
//!
//! The window's header, the projection's first field, says which of the
//! two forms follows (see `sums`): a decode reads the window, which
//! announces the form here ([`announce`]), and the ids after it. The
//! marker is in the state, not in the store's format byte, so the store
//! stays ignorant of the state's layout. Human-readable formats write the
//! map.

use std::cell::{Cell, RefCell};
use std::fmt;

use serde::de::{Error as _, Visitor};
use serde::{Deserializer, Serialize, Serializer};

use super::idmap::{self, IdMap};
use crate::time::Day;
use crate::varint::{self, put as put_varint};

thread_local! {
    /// Whether the ids of the projection being decoded on this thread are
    /// packed, as its window's header announced; taken by their decode.
    static PACKED: Cell<Option<bool>> = const { Cell::new(None) };
    /// The string a projection's ids are packed into before postcard
    /// copies it.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Bytes of the scratch string kept between encodes: the busiest
/// customer's ids are not held for every later one.
const KEPT_SCRATCH: usize = 1 << 20;

/// The least bytes an id takes in the string: its hash and a one-byte
/// day.
const MIN_ID_BYTES: usize = 9;

/// Called by the window's decoder: whether the ids that follow in this
/// projection are packed (the window's header says).
pub(super) fn announce(packed: bool) {
    PACKED.with(|p| p.set(Some(packed)));
}

/// `seen`'s serializer (see the module docs).
pub(super) fn serialize<S: Serializer>(ids: &IdMap<Day>, s: S) -> Result<S::Ok, S::Error> {
    if s.is_human_readable() {
        return ids.serialize(s);
    }
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut buf) => {
            pack(ids, &mut buf);
            let done = s.serialize_bytes(&buf);
            if buf.capacity() > KEPT_SCRATCH {
                *buf = Vec::new();
            }
            done
        }
        // Only a serializer that encodes a state while encoding this one
        // gets here.
        Err(_) => {
            let mut buf = Vec::new();
            pack(ids, &mut buf);
            s.serialize_bytes(&buf)
        }
    })
}

/// `seen`'s deserializer: the form the window announced, left empty
/// inside [`deciding_only`](super::deciding_only).
pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<IdMap<Day>, D::Error> {
    if d.is_human_readable() {
        return idmap::unless_deciding_only(d);
    }
    match PACKED.with(Cell::take) {
        Some(true) => d.deserialize_bytes(Packed {
            read_past: idmap::is_deciding_only(),
        }),
        Some(false) => idmap::unless_deciding_only(d),
        // Only a change of the projection's field order gets here.
        None => Err(D::Error::custom(
            "the applied ids were read before the window that announces their form",
        )),
    }
}

/// Reads the packed string (see the module docs).
struct Packed {
    read_past: bool,
}

impl Visitor<'_> for Packed {
    type Value = IdMap<Day>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the applied event ids, packed")
    }

    fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<IdMap<Day>, E> {
        if self.read_past {
            return Ok(IdMap::default());
        }
        unpack(bytes).map_err(E::custom)
    }
}

/// `ids` packed into `out` (cleared first).
fn pack(ids: &IdMap<Day>, out: &mut Vec<u8>) {
    out.clear();
    let Some(base) = ids.values().map(|d| d.0).min() else {
        return;
    };
    out.reserve(2 + 5 + ids.len() * (MIN_ID_BYTES + 1));
    put_varint(out, ids.len() as u64);
    put_varint(out, varint::zigzag(i64::from(base)));
    for (hash, _) in ids.iter() {
        out.extend_from_slice(&hash.to_le_bytes());
    }
    // The same map, unchanged: the same order as the hashes.
    for day in ids.values() {
        put_varint(out, (i64::from(day.0) - i64::from(base)) as u64);
    }
}

/// What is wrong with a packed string.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
enum Damaged {
    #[error("the applied ids end inside a number")]
    Truncated,
    #[error("the applied ids hold a number over 64 bits")]
    Overlong,
    #[error("{count} applied ids cannot fit in {bytes} bytes")]
    TooMany { count: u64, bytes: usize },
    #[error("an applied id's day ({offset} days after day {base}) is out of range")]
    Day { base: i64, offset: u64 },
    #[error("{0} bytes follow the last applied id")]
    Trailing(usize),
}

/// The ids of a packed string: every number checked, nothing allocated
/// for more ids than the string can hold.
fn unpack(mut bytes: &[u8]) -> Result<IdMap<Day>, Damaged> {
    if bytes.is_empty() {
        return Ok(IdMap::default());
    }
    let count = take_varint(&mut bytes)?;
    let base = varint::unzigzag(take_varint(&mut bytes)?);
    let fits = bytes.len() / MIN_ID_BYTES;
    let n = usize::try_from(count)
        .ok()
        .filter(|n| *n <= fits)
        .ok_or(Damaged::TooMany {
            count,
            bytes: bytes.len(),
        })?;
    let (hashes, mut days) = bytes.split_at(n * 8);
    let mut ids = IdMap::with_capacity(n);
    for hash in hashes.chunks_exact(8) {
        let mut le = [0; 8];
        le.copy_from_slice(hash);
        let offset = take_varint(&mut days)?;
        let day = i64::try_from(offset)
            .ok()
            .and_then(|offset| base.checked_add(offset))
            .and_then(|day| i32::try_from(day).ok())
            .ok_or(Damaged::Day { base, offset })?;
        ids.insert(u64::from_le_bytes(le), Day(day));
    }
    if days.is_empty() {
        Ok(ids)
    } else {
        Err(Damaged::Trailing(days.len()))
    }
}

/// A varint off the front of `bytes`.
fn take_varint(bytes: &mut &[u8]) -> Result<u64, Damaged> {
    varint::take(bytes).map_err(|bad| match bad {
        varint::Bad::Truncated => Damaged::Truncated,
        varint::Bad::Overlong => Damaged::Overlong,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn map(entries: &[(u64, i32)]) -> IdMap<Day> {
        let mut m = IdMap::default();
        for (k, d) in entries {
            m.insert(*k, Day(*d));
        }
        m
    }

    fn packed(ids: &IdMap<Day>) -> Vec<u8> {
        let mut out = Vec::new();
        pack(ids, &mut out);
        out
    }

    proptest! {
        #[test]
        fn packed_ids_read_back(
            // Days within a window, as the projection keeps them, or any.
            entries in prop_oneof![
                prop::collection::vec((any::<u64>(), 20_000i32..21_200), 0..40),
                prop::collection::vec((any::<u64>(), any::<i32>()), 0..40),
            ],
        ) {
            let ids = map(&entries);
            prop_assert_eq!(unpack(&packed(&ids)), Ok(ids));
        }
    }

    #[test]
    fn the_extreme_days_and_hashes_read_back() {
        let ids = map(&[(0, i32::MIN), (u64::MAX, i32::MAX), (1 << 63, 0)]);
        assert_eq!(unpack(&packed(&ids)), Ok(ids));
        assert_eq!(packed(&IdMap::default()), Vec::<u8>::new());
    }

    #[test]
    fn an_id_takes_nine_bytes_and_a_day_within_the_window_one_or_two_more() {
        let ids = map(&(0..100u64)
            .map(|k| {
                (
                    k.wrapping_mul(0x9e37_79b9_7f4a_7c15),
                    20_000 + (k as i32 % 100),
                )
            })
            .collect::<Vec<_>>());
        // count (1), base (3), hashes (800), days (100).
        assert_eq!(packed(&ids).len(), 1 + 3 + 800 + 100);
    }

    #[test]
    fn a_damaged_string_is_an_error_not_a_panic_or_an_allocation() {
        let good = packed(&map(&[(7, 20_000), (9, 20_003)]));
        // Cut anywhere: an error.
        for cut in 1..good.len() {
            assert!(unpack(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = good.clone();
        longer.push(0);
        assert_eq!(unpack(&longer), Err(Damaged::Trailing(1)));
        // A count far beyond the bytes: refused before allocating.
        let mut huge = Vec::new();
        put_varint(&mut huge, u64::MAX);
        put_varint(&mut huge, 0);
        huge.extend_from_slice(&[0; 9]);
        assert_eq!(
            unpack(&huge),
            Err(Damaged::TooMany {
                count: u64::MAX,
                bytes: 9
            })
        );
        // A day past i32.
        let mut far = Vec::new();
        put_varint(&mut far, 1);
        put_varint(&mut far, varint::zigzag(i64::from(i32::MAX)));
        far.extend_from_slice(&[1; 8]);
        put_varint(&mut far, 1);
        assert_eq!(
            unpack(&far),
            Err(Damaged::Day {
                base: i64::from(i32::MAX),
                offset: 1
            })
        );
        // A varint of eleven bytes, or one over 64 bits.
        assert_eq!(take_varint(&mut &[0xff; 11][..]), Err(Damaged::Overlong));
        let mut over = vec![0xff; 9];
        over.push(0x02);
        assert_eq!(take_varint(&mut &over[..]), Err(Damaged::Overlong));
        let mut max = vec![0xff; 9];
        max.push(0x01);
        assert_eq!(take_varint(&mut &max[..]), Ok(u64::MAX));
    }
}
