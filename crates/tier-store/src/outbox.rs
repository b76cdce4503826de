//! Outbox rows on disk: packed, up to [`PACK_MAX`] to a key.
//!
//! The store's interface is one row per sequence number
//! ([`Store::outbox_pending`](crate::Store::outbox_pending) and
//! [`Store::outbox_delete`](crate::Store::outbox_delete) take and give
//! sequences), but a key per row made the outbox most of a catch-up's
//! writes: a fresh customer's first event is a tier change, so a commit of
//! 5,000 events could write 2,000 customer states and 1,500 outbox rows,
//! and the publisher then deleted those 1,500 keys again. Every key is a
//! tree update in each backend, whatever its size.
//!
//! So a commit writes its rows in packs: one key (`y/` + the first row's
//! sequence, u64 BE) per [`PACK_MAX`] rows, whose value lists each row as
//! (sequence minus the key's, varint; length, varint; bytes). Deleting
//! rows rewrites a pack without them, or removes it once it is empty; the
//! publisher deletes the rows it read, oldest first, so that is almost
//! always whole packs.
//!
//! Stores written before packing hold one row per `x/` key
//! ([`layout::OUTBOX`]); those are still read (before every pack: their
//! sequences are lower, the counter only grows) and deleted.

use crate::StoreError;
use crate::layout;

/// The prefix of packed outbox rows.
pub(crate) const PACKED: &[u8] = b"y/";

/// Rows per pack at most: a publisher round (1,000 rows in tierd) spans a
/// few packs and rewrites at most the two at its ends.
pub(crate) const PACK_MAX: usize = 256;

/// The key of the pack whose first row is `first`.
pub(crate) fn pack_key(first: u64) -> [u8; 10] {
    layout::seq_key(PACKED, first)
}

/// The first sequence of the pack under `key`.
pub(crate) fn parse_pack_key(key: &[u8]) -> Result<u64, StoreError> {
    layout::parse_seq_key(PACKED, key)
}

/// The packs of rows numbered from `first`, in order: `(key, value)`.
pub(crate) fn pack(first: u64, rows: &[Vec<u8>]) -> Vec<([u8; 10], Vec<u8>)> {
    rows.chunks(PACK_MAX)
        .zip((first..).step_by(PACK_MAX))
        .map(|(chunk, start)| {
            let mut value = Vec::with_capacity(chunk.iter().map(|r| r.len() + 4).sum::<usize>());
            for (offset, row) in (0u64..).zip(chunk) {
                put_row(&mut value, offset, row);
            }
            (pack_key(start), value)
        })
        .collect()
}

/// The rows of the pack under `key`: `(sequence, bytes)`, in order.
pub(crate) fn unpack<'a>(key: &[u8], value: &'a [u8]) -> Result<Vec<(u64, &'a [u8])>, StoreError> {
    let first = parse_pack_key(key)?;
    let bad = |reason| layout::malformed("outbox", key, reason);
    let mut rows = Vec::new();
    let mut rest = value;
    while !rest.is_empty() {
        let offset = take_varint(&mut rest).ok_or_else(|| bad("truncated row offset"))?;
        let len = take_varint(&mut rest).ok_or_else(|| bad("truncated row length"))?;
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l <= rest.len())
            .ok_or_else(|| bad("row longer than the pack"))?;
        let seq = first
            .checked_add(offset)
            .ok_or_else(|| bad("row sequence overflows"))?;
        if rows.last().is_some_and(|&(prev, _)| prev >= seq) {
            return Err(bad("row sequences not increasing"));
        }
        let (row, after) = rest.split_at(len);
        rows.push((seq, row));
        rest = after;
    }
    if rows.is_empty() {
        return Err(bad("empty pack"));
    }
    Ok(rows)
}

/// One past the last sequence of the pack under `key`.
pub(crate) fn after_last(key: &[u8], value: &[u8]) -> Result<u64, StoreError> {
    end_of(&unpack(key, value)?)
}

/// One past the last sequence of a pack's rows.
fn end_of(rows: &[(u64, &[u8])]) -> Result<u64, StoreError> {
    rows.last()
        .and_then(|&(seq, _)| seq.checked_add(1))
        .ok_or(StoreError::OutboxExhausted)
}

/// Checks the pack under `key` for [`Store::verify`](crate::Store::verify):
/// its rows decode and lie below the outbox sequence (`next`, reloaded
/// with `current_next` once, since a commit may land while verify runs).
/// Returns its row count.
pub(crate) fn verify_pack(
    key: &[u8],
    value: &[u8],
    next: &mut u64,
    current_next: impl Fn() -> u64,
) -> Result<usize, StoreError> {
    let rows = unpack(key, value)?;
    let end = end_of(&rows)?;
    if end > *next {
        *next = current_next();
    }
    if end > *next {
        return Err(layout::malformed(
            "outbox",
            key,
            "pack reaches past the outbox sequence",
        ));
    }
    Ok(rows.len())
}

/// `keys` ascending without duplicates; `None` when empty.
pub(crate) fn sorted(keys: &[u64]) -> Option<Vec<u64>> {
    let mut sorted = keys.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    (!sorted.is_empty()).then_some(sorted)
}

/// What [`Store::outbox_pending`](crate::Store::outbox_pending) returns,
/// from a backend's scans of the single rows and of the packs: up to
/// `limit` rows, single rows first.
pub(crate) fn pending<K: AsRef<[u8]>, V: AsRef<[u8]>>(
    singles: impl Iterator<Item = Result<(K, V), StoreError>>,
    packs: impl Iterator<Item = Result<(K, V), StoreError>>,
    limit: usize,
) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
    let mut rows = Vec::new();
    for item in singles.take(limit) {
        let (key, raw) = item?;
        rows.push((
            layout::parse_outbox_key(key.as_ref())?,
            raw.as_ref().to_vec(),
        ));
    }
    for item in packs {
        if rows.len() >= limit {
            break;
        }
        let (key, pack) = item?;
        let left = limit - rows.len();
        rows.extend(
            unpack(key.as_ref(), pack.as_ref())?
                .into_iter()
                .take(left)
                .map(|(seq, row)| (seq, row.to_vec())),
        );
    }
    Ok(rows)
}

/// A pack's key and the value to write under it (`None`: remove the key).
pub(crate) type PackChange<K> = (K, Option<Vec<u8>>);

/// The packs (from a backend's scan, in key order) that deleting the
/// rows in `sorted` changes: each with the value to write under its key,
/// or `None` to remove it. The scan stops past the last of the rows.
pub(crate) fn edits<K: AsRef<[u8]>, V: AsRef<[u8]>>(
    packs: impl Iterator<Item = Result<(K, V), StoreError>>,
    sorted: &[u64],
) -> Result<Vec<PackChange<K>>, StoreError> {
    let Some(&last) = sorted.last() else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for item in packs {
        let (key, pack) = item?;
        if parse_pack_key(key.as_ref())? > last {
            break;
        }
        match edit(key.as_ref(), pack.as_ref(), sorted)? {
            PackEdit::Keep => {}
            PackEdit::Remove => out.push((key, None)),
            PackEdit::Rewrite(value) => out.push((key, Some(value))),
        }
    }
    Ok(out)
}

/// The rows held by the packs of a backend's scan.
pub(crate) fn rows_in<K: AsRef<[u8]>, V: AsRef<[u8]>>(
    packs: impl Iterator<Item = Result<(K, V), StoreError>>,
) -> Result<usize, StoreError> {
    packs
        .map(|item| {
            let (key, pack) = item?;
            Ok(unpack(key.as_ref(), pack.as_ref())?.len())
        })
        .sum()
}

/// What deleting some rows does to one pack.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PackEdit {
    /// None of its rows is deleted.
    Keep,
    /// All of its rows are: remove the key.
    Remove,
    /// Some are: write this value under the same key.
    Rewrite(Vec<u8>),
}

/// The edit deleting the rows in `sorted` (ascending, no duplicates) makes
/// to the pack under `key`.
pub(crate) fn edit(key: &[u8], value: &[u8], sorted: &[u64]) -> Result<PackEdit, StoreError> {
    let first = parse_pack_key(key)?;
    let rows = unpack(key, value)?;
    let kept: Vec<(u64, &[u8])> = rows
        .iter()
        .copied()
        .filter(|(seq, _)| sorted.binary_search(seq).is_err())
        .collect();
    Ok(if kept.len() == rows.len() {
        PackEdit::Keep
    } else if kept.is_empty() {
        PackEdit::Remove
    } else {
        let mut value = Vec::with_capacity(value.len());
        for (seq, row) in kept {
            put_row(&mut value, seq - first, row);
        }
        PackEdit::Rewrite(value)
    })
}

/// One row of a pack: its sequence's offset from the pack's key, its
/// length, its bytes.
fn put_row(out: &mut Vec<u8>, offset: u64, row: &[u8]) {
    put_varint(out, offset);
    put_varint(out, row.len() as u64);
    out.extend_from_slice(row);
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn take_varint(input: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for (i, &b) in input.iter().enumerate().take(10) {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            *input = &input[i + 1..];
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn rows(n: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| vec![i as u8; i % 300]).collect()
    }

    #[test]
    fn a_commit_packs_its_rows_in_order_at_most_pack_max_to_a_key() {
        let rows = rows(2 * PACK_MAX + 3);
        let packs = pack(1_000, &rows);
        assert_eq!(packs.len(), 3);
        let keys: Vec<u64> = packs
            .iter()
            .map(|(k, _)| parse_pack_key(k).unwrap())
            .collect();
        let max = PACK_MAX as u64;
        assert_eq!(keys, vec![1_000, 1_000 + max, 1_000 + 2 * max]);
        let back: Vec<(u64, Vec<u8>)> = packs
            .iter()
            .flat_map(|(k, v)| {
                unpack(k, v)
                    .unwrap()
                    .into_iter()
                    .map(|(s, r)| (s, r.to_vec()))
                    .collect::<Vec<_>>()
            })
            .collect();
        let expected: Vec<(u64, Vec<u8>)> = (1_000..).zip(rows).collect();
        assert_eq!(back, expected);
        assert!(pack(7, &[]).is_empty());
    }

    #[test]
    fn deleting_rows_rewrites_the_pack_without_them_and_removes_an_empty_one() {
        let rows = rows(5);
        let (key, value) = pack(10, &rows).pop().unwrap();
        assert_eq!(edit(&key, &value, &[3, 9, 15, 99]).unwrap(), PackEdit::Keep);
        let PackEdit::Rewrite(left) = edit(&key, &value, &[9, 11, 13]).unwrap() else {
            panic!("a partial delete rewrites");
        };
        let seqs: Vec<(u64, Vec<u8>)> = unpack(&key, &left)
            .unwrap()
            .into_iter()
            .map(|(s, r)| (s, r.to_vec()))
            .collect();
        assert_eq!(
            seqs,
            vec![
                (10, rows[0].clone()),
                (12, rows[2].clone()),
                (14, rows[4].clone())
            ]
        );
        assert_eq!(edit(&key, &left, &[10, 12, 14]).unwrap(), PackEdit::Remove);
        assert_eq!(
            edit(&key, &value, &[10, 11, 12, 13, 14]).unwrap(),
            PackEdit::Remove
        );
    }

    #[test]
    fn a_damaged_pack_is_refused_with_the_reason() {
        let (key, value) = pack(0, &rows(3)).pop().unwrap();
        for (bytes, reason) in [
            (&value[..value.len() - 1], "row longer than the pack"),
            (&[][..], "empty pack"),
            (&[0x80][..], "truncated row offset"),
            (&[0, 0, 0, 0][..], "row sequences not increasing"),
        ] {
            let err = unpack(&key, bytes).unwrap_err().to_string();
            assert!(err.contains(reason), "{err}");
        }
        assert!(parse_pack_key(b"x/\0\0\0\0\0\0\0\0").is_err());
    }

    #[test]
    fn varints_round_trip_at_their_edges() {
        for v in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            let mut input = &out[..];
            assert_eq!(take_varint(&mut input), Some(v));
            assert!(input.is_empty());
        }
    }
}
