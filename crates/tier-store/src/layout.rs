//! Key layout of the single keyspace (a sled tree, a fjall keyspace, a redb
//! table), and the validation every backend shares.
//!
//! The table of prefixes is in the crate docs.
//!
//! Big-endian integers keep the stores' byte order equal to numeric order, so
//! partitions and outbox rows scan oldest/lowest first.

use crate::StoreError;

pub(crate) const CUSTOMER: &[u8] = b"c/";
pub(crate) const OFFSET: &[u8] = b"o/";
pub(crate) const OUTBOX: &[u8] = b"x/";
pub(crate) const META: &[u8] = b"m/";

/// Value: u32 BE, [`SCHEMA_VERSION`].
pub(crate) const META_SCHEMA: &[u8] = b"m/schema";
/// Value: u64 BE, the next outbox sequence to hand out (written with every commit).
pub(crate) const META_OUTBOX_NEXT: &[u8] = b"m/outbox_next";
/// Value: u64 BE, unix millis when the store was created.
pub(crate) const META_CREATED_AT: &[u8] = b"m/created_at_ms";
/// Value: UTF-8, `tier-store <version>` that created the store.
pub(crate) const META_CREATED_BY: &[u8] = b"m/created_by";

/// Version of this layout; bump it (and add a migration) when it changes.
///
/// - 1: customer states with month-bucket windows decided on processing time.
/// - 2: business-day windows anchored at each customer's event-time
///   watermark (tier-core's clock model). A version-1 dir cannot be
///   upcast (its figures were computed under other rules): it is set aside
///   and the state is rebuilt from Kafka.
/// - 3: customer states carry each complaint's resolution deadline (fixed
///   from the tier at its opening) and whether it was announced overdue.
///   A version-2 dir does not know the tier each open complaint was opened
///   under, so it is set aside and rebuilt from Kafka like version 1.
/// - 4: customer keys are scoped by input partition (`c/` + partition
///   u32 BE + id, see [`Scope`]), so one partition's customers are one
///   key range. A version-3 dir is upgraded in place on open
///   ([`upgrade_v3`]), in one atomic write.
/// - 5: outbox rows are packed, up to 256 to a key (`y/`, see the `outbox`
///   module). A version-4 dir is version 5 with only single rows (`x/`),
///   which are still read, so opening one just marks it 5; the mark keeps
///   an older tierd from taking packs for damage.
/// - 6: customer values may be format 2 (a state stores the figures at
///   its last tier change, the baseline of its next change's reasons; see
///   the `codec` module). Format-1 values are still read, so a version 4
///   or 5 dir is only marked 6; the mark keeps an older tierd from
///   failing on every customer written since.
/// - 7: customer values may be format 3 (a state's window sums compact;
///   see the `codec` module). Format-2 values are still read as they are,
///   so a version 4, 5 or 6 dir is only marked 7, for the same reason.
/// - 8: customer values may be format 4 (an open invoice's payments keep
///   their instants). Format-3 values are still read as they are, so a
///   version 4 to 7 dir is only marked 8, for the same reason.
/// - 9: customer values may be format 5 (a format-4 body compressed with
///   zstd and the built-in dictionary). Format-4 values are still read as
///   they are, so a version 4 to 8 dir is only marked 9, for the same
///   reason.
/// - 10: customer values may be format 6 or 7 (a state's applied event
///   ids packed; format 7 compressed as format 5). Format-4 and format-5
///   values are still read as they are, so a version 4 to 9 dir is only
///   marked 10, for the same reason.
pub const SCHEMA_VERSION: u32 = 10;

/// The versions whose dirs are read as they are (see [`SCHEMA_VERSION`]:
/// only the version is rewritten).
pub(crate) const SCHEMA_READ_AS_IS: std::ops::Range<u32> = 4..SCHEMA_VERSION;

/// The input partition whose records reach a customer: the scope of its
/// key. All of a partition's customers are one key range, so they can be
/// loaded (on assignment) or handed over (when the partition moves to
/// another instance) together.
///
/// Input topics are co-partitioned by customer id, so a customer's
/// records arrive on the same partition number of every input topic; the
/// scope is that number. A customer no record has reached yet (one known
/// only from a command, such as an override) is [`Scope::UNSCOPED`]; so is
/// one a schema upgrade could not place, until its next record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Scope(u32);

impl Scope {
    /// No input partition (yet).
    pub const UNSCOPED: Scope = Scope(u32::MAX);

    /// The scope of input partition `partition`; `None` for a negative one
    /// (Kafka never hands those out).
    pub fn partition(partition: i32) -> Option<Scope> {
        u32::try_from(partition).ok().map(Scope)
    }

    /// The input partition, or `None` for [`Scope::UNSCOPED`].
    pub fn as_partition(self) -> Option<i32> {
        i32::try_from(self.0).ok()
    }

    pub(crate) fn to_be_bytes(self) -> [u8; 4] {
        self.0.to_be_bytes()
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.as_partition() {
            Some(p) => write!(f, "partition {p}"),
            None => f.write_str("unscoped"),
        }
    }
}

/// Prefix of application records (see `CommitBatch::meta`).
pub(crate) const META_APP: &[u8] = b"m/app.";

/// The key of application record `name`, after checking the name.
pub(crate) fn app_key(name: &str) -> Result<Vec<u8>, StoreError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if !ok {
        return Err(StoreError::InvalidMetaName {
            name: name.to_owned(),
        });
    }
    Ok(prefixed(META_APP, name.as_bytes()))
}

fn prefixed(prefix: &[u8], rest: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(prefix.len() + rest.len() + 5);
    key.extend_from_slice(prefix);
    key.extend_from_slice(rest);
    key
}

pub(crate) fn customer_key(scope: Scope, id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(CUSTOMER.len() + 4 + id.len());
    key.extend_from_slice(CUSTOMER);
    key.extend_from_slice(&scope.to_be_bytes());
    key.extend_from_slice(id.as_bytes());
    key
}

/// The id bytes of a customer key, without checking the scope.
pub(crate) fn customer_key_id(key: &[u8]) -> Option<&[u8]> {
    key.strip_prefix(CUSTOMER)?.get(4..)
}

/// The prefix of every customer key of `scope`.
pub(crate) fn scope_prefix(scope: Scope) -> Vec<u8> {
    prefixed(CUSTOMER, &scope.to_be_bytes())
}

pub(crate) fn parse_customer_key(key: &[u8]) -> Result<(Scope, String), StoreError> {
    let rest = key
        .strip_prefix(CUSTOMER)
        .ok_or_else(|| malformed("customers", key, "missing prefix"))?;
    let (scope, id) = rest
        .split_first_chunk::<4>()
        .ok_or_else(|| malformed("customers", key, "too short for a scope"))?;
    let scope = Scope(u32::from_be_bytes(*scope));
    if scope != Scope::UNSCOPED && scope.as_partition().is_none() {
        return Err(malformed("customers", key, "scope is not a partition"));
    }
    let id = std::str::from_utf8(id)
        .map_err(|_| malformed("customers", key, "customer id is not UTF-8"))?;
    Ok((scope, id.to_owned()))
}

/// The writes that upgrade a version-3 keyspace (customer keys `c/` + id)
/// to version 4, given every entry under the customer prefix and the
/// stored offsets; applied atomically with the new schema marker, so a
/// crash leaves the old layout or the new one, never a mix.
///
/// Which partition a version-3 customer came from is not stored. When the
/// offsets name a single partition number (every input topic has one
/// partition, or only one was ever consumed) every customer is scoped to
/// it. Otherwise the customers are kept [`Scope::UNSCOPED`] and each moves
/// to its partition with its next record (the engine re-scopes it then).
pub(crate) fn upgrade_v3(
    customers: Vec<(Vec<u8>, Vec<u8>)>,
    offsets: &[(String, i32)],
) -> Result<V3Upgrade, StoreError> {
    let mut partitions: Vec<i32> = offsets.iter().map(|(_, p)| *p).collect();
    partitions.sort_unstable();
    partitions.dedup();
    let scope = match partitions.as_slice() {
        [one] => Scope::partition(*one).unwrap_or(Scope::UNSCOPED),
        _ => Scope::UNSCOPED,
    };
    let mut deletes = Vec::with_capacity(customers.len());
    let mut puts = Vec::with_capacity(customers.len());
    for (key, value) in customers {
        let rest = key
            .strip_prefix(CUSTOMER)
            .ok_or_else(|| malformed("customers", &key, "missing prefix"))?;
        let id = std::str::from_utf8(rest)
            .map_err(|_| malformed("customers", &key, "customer id is not UTF-8"))?;
        puts.push((customer_key(scope, id), value));
        deletes.push(key);
    }
    Ok(V3Upgrade {
        scope,
        deletes,
        puts,
    })
}

/// What [`upgrade_v3`] writes: delete every old key, then put the new
/// ones and the new schema marker.
#[derive(Debug)]
pub(crate) struct V3Upgrade {
    pub scope: Scope,
    pub deletes: Vec<Vec<u8>>,
    pub puts: Vec<(Vec<u8>, Vec<u8>)>,
}

impl V3Upgrade {
    /// What to log once the upgrade is written: `(scope, customers)`.
    pub(crate) fn summary(&self) -> (Scope, usize) {
        (self.scope, self.puts.len())
    }
}

/// Logs what an upgrade of `customers` customers to `scope` did (after
/// it was written).
pub(crate) fn log_v3_upgrade(dir: &std::path::Path, (scope, customers): (Scope, usize)) {
    match scope.as_partition() {
        Some(p) => tracing::warn!(
            dir = %dir.display(),
            customers,
            partition = p,
            "upgraded the data dir from schema 3 to 4 in place: customer keys are now scoped by input partition (every stored offset is of partition {p}, so every customer was scoped to it)"
        ),
        None => tracing::warn!(
            dir = %dir.display(),
            customers,
            "upgraded the data dir from schema 3 to 4 in place: customer keys are now scoped by input partition; the stored offsets span several partitions, so customers stay unscoped until their next record moves each to its partition"
        ),
    }
}

/// Checks what Kafka guarantees anyway, so that keys stay parseable.
pub(crate) fn validate_position(topic: &str, partition: i32) -> Result<(), StoreError> {
    if topic.is_empty() || topic.as_bytes().contains(&0) {
        return Err(StoreError::InvalidTopic {
            topic: topic.to_owned(),
        });
    }
    if partition < 0 {
        return Err(StoreError::NegativePartition {
            topic: topic.to_owned(),
            partition,
        });
    }
    Ok(())
}

pub(crate) fn validate_offset(topic: &str, partition: i32, offset: i64) -> Result<(), StoreError> {
    validate_position(topic, partition)?;
    if offset < 0 {
        return Err(StoreError::NegativeOffset {
            topic: topic.to_owned(),
            partition,
            offset,
        });
    }
    Ok(())
}

/// Callers validate with [`validate_position`] first.
pub(crate) fn offset_key(topic: &str, partition: i32) -> Vec<u8> {
    let mut key = prefixed(OFFSET, topic.as_bytes());
    key.push(0);
    key.extend_from_slice(&partition.to_be_bytes());
    key
}

pub(crate) fn parse_offset_key(key: &[u8]) -> Result<(String, i32), StoreError> {
    let bad = |reason| malformed("offsets", key, reason);
    let rest = key
        .strip_prefix(OFFSET)
        .ok_or_else(|| bad("missing prefix"))?;
    let split = rest.len().checked_sub(5).ok_or_else(|| bad("too short"))?;
    let (topic, tail) = rest.split_at(split);
    let (&sep, partition) = tail.split_first().ok_or_else(|| bad("too short"))?;
    if sep != 0 {
        return Err(bad("no NUL between topic and partition"));
    }
    let topic = std::str::from_utf8(topic).map_err(|_| bad("topic is not UTF-8"))?;
    let partition = i32::from_be_bytes(partition.try_into().map_err(|_| bad("too short"))?);
    validate_position(topic, partition).map_err(|_| bad("invalid topic or partition"))?;
    Ok((topic.to_owned(), partition))
}

pub(crate) fn parse_offset_value(key: &[u8], value: &[u8]) -> Result<i64, StoreError> {
    let bad = |reason| malformed("offsets", key, reason);
    let offset = i64::from_be_bytes(value.try_into().map_err(|_| bad("value is not 8 bytes"))?);
    if offset < 0 {
        return Err(bad("negative offset"));
    }
    Ok(offset)
}

pub(crate) fn outbox_key(seq: u64) -> [u8; 10] {
    seq_key(OUTBOX, seq)
}

pub(crate) fn parse_outbox_key(key: &[u8]) -> Result<u64, StoreError> {
    parse_seq_key(OUTBOX, key)
}

/// An outbox key: a two-byte prefix (`x/` or `y/`), the sequence u64 BE.
pub(crate) fn seq_key(prefix: &[u8], seq: u64) -> [u8; 10] {
    let mut key = [0u8; 10];
    key[..2].copy_from_slice(prefix);
    key[2..].copy_from_slice(&seq.to_be_bytes());
    key
}

/// The sequence of an outbox key under `prefix`.
pub(crate) fn parse_seq_key(prefix: &[u8], key: &[u8]) -> Result<u64, StoreError> {
    key.strip_prefix(prefix)
        .and_then(|rest| <[u8; 8]>::try_from(rest).ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| malformed("outbox", key, "key is not the prefix and 8 bytes"))
}

pub(crate) fn parse_u64(
    section: &'static str,
    key: &[u8],
    value: &[u8],
) -> Result<u64, StoreError> {
    <[u8; 8]>::try_from(value)
        .map(u64::from_be_bytes)
        .map_err(|_| malformed(section, key, "value is not a u64"))
}

pub(crate) fn parse_u32(
    section: &'static str,
    key: &[u8],
    value: &[u8],
) -> Result<u32, StoreError> {
    <[u8; 4]>::try_from(value)
        .map(u32::from_be_bytes)
        .map_err(|_| malformed(section, key, "value is not a u32"))
}

pub(crate) fn malformed(section: &'static str, key: &[u8], reason: &'static str) -> StoreError {
    StoreError::MalformedEntry {
        section,
        key: printable(key),
        reason,
    }
}

/// Key bytes for messages: UTF-8 where possible, escapes elsewhere.
pub(crate) fn printable(key: &[u8]) -> String {
    key.escape_ascii().to_string()
}

/// Known meta keys must parse; unknown ones are allowed (meta is extensible).
pub(crate) fn verify_meta(key: &[u8], raw: &[u8]) -> Result<(), StoreError> {
    if key == META_SCHEMA {
        if parse_u32("meta", key, raw)? != SCHEMA_VERSION {
            return Err(malformed("meta", key, "schema version changed while open"));
        }
    } else if key == META_OUTBOX_NEXT || key == META_CREATED_AT {
        parse_u64("meta", key, raw)?;
    } else if key == META_CREATED_BY && std::str::from_utf8(raw).is_err() {
        return Err(malformed("meta", key, "value is not UTF-8"));
    }
    Ok(())
}

/// Checks every entry of a store's keyspace, in key order, against this
/// layout: each customer state decodes as `S`, each offset and meta record
/// parses, each outbox row (single or packed) lies below the outbox
/// sequence. `current_next` reads the sequence the store hands out now: a
/// commit may land while the walk runs, so a row at or past the sequence
/// first read is checked against a fresh one before it is called
/// malformed. What every backend's `verify` runs over its own scan.
pub(crate) fn verify_entries<S, K, V>(
    entries: impl IntoIterator<Item = Result<(K, V), StoreError>>,
    current_next: impl Fn() -> u64,
) -> Result<crate::VerifyReport, StoreError>
where
    S: serde::de::DeserializeOwned,
    K: AsRef<[u8]>,
    V: AsRef<[u8]>,
{
    let mut next_outbox = current_next();
    let mut report = crate::VerifyReport::default();
    for item in entries {
        let (key, raw) = item?;
        let (key, raw) = (key.as_ref(), raw.as_ref());
        if key.starts_with(CUSTOMER) {
            let (_, id) = parse_customer_key(key)?;
            crate::codec::decode::<S>(&id, raw)?;
            report.customers += 1;
        } else if key.starts_with(OFFSET) {
            parse_offset_key(key)?;
            parse_offset_value(key, raw)?;
            report.offsets += 1;
        } else if key.starts_with(OUTBOX) {
            let seq = parse_outbox_key(key)?;
            if seq >= next_outbox {
                // A commit may have landed since the walk started.
                next_outbox = current_next();
            }
            if seq >= next_outbox {
                return Err(malformed(
                    "outbox",
                    key,
                    "key not below the outbox sequence",
                ));
            }
            report.outbox_rows += 1;
        } else if key.starts_with(crate::outbox::PACKED) {
            report.outbox_rows +=
                crate::outbox::verify_pack(key, raw, &mut next_outbox, &current_next)?;
        } else if key.starts_with(META) {
            verify_meta(key, raw)?;
        } else {
            return Err(malformed("unknown", key, "key has no known prefix"));
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_keys_round_trip_and_sort_by_topic_then_partition() {
        let keys = [
            offset_key("a", 2),
            offset_key("a", 10),
            offset_key("a.b", 0),
            offset_key("b", 1),
        ];
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(sorted, keys);
        assert_eq!(parse_offset_key(&keys[1]).unwrap(), ("a".to_owned(), 10));
        assert!(parse_offset_key(b"o/a\x01\0\0\0\x01").is_err());
        assert!(parse_offset_key(b"o/\0\0\0\0\x01").is_err());
    }

    #[test]
    fn outbox_keys_sort_numerically() {
        assert!(outbox_key(255) < outbox_key(256));
        assert_eq!(parse_outbox_key(&outbox_key(u64::MAX)).unwrap(), u64::MAX);
        assert!(parse_outbox_key(b"x/123").is_err());
    }

    /// The walk every backend's `verify` runs: each prefix counted, an
    /// outbox row at the sequence first read accepted once a fresh read
    /// shows a commit landed, and refused when none did.
    #[test]
    fn verify_entries_counts_each_record_and_rereads_the_outbox_sequence() {
        type Entry = Result<(Vec<u8>, Vec<u8>), StoreError>;
        let entries = |outbox_seq: u64| -> Vec<Entry> {
            vec![
                Ok((
                    customer_key(Scope::UNSCOPED, "c1"),
                    crate::codec::encode("c1", &7u32).unwrap().to_vec(),
                )),
                Ok((offset_key("orders", 0), 5i64.to_be_bytes().to_vec())),
                Ok((outbox_key(outbox_seq).to_vec(), b"row".to_vec())),
                Ok((META_OUTBOX_NEXT.to_vec(), 1u64.to_be_bytes().to_vec())),
            ]
        };
        let report = verify_entries::<u32, _, _>(entries(0), || 1).unwrap();
        assert_eq!(
            (report.customers, report.offsets, report.outbox_rows),
            (1, 1, 1)
        );

        // Row 1 is at the sequence first read (1); the second read (2)
        // shows the commit that wrote it.
        let reads = std::cell::Cell::new(0);
        let landing = || {
            reads.set(reads.get() + 1);
            if reads.get() == 1 { 1 } else { 2 }
        };
        assert_eq!(
            verify_entries::<u32, _, _>(entries(1), landing)
                .unwrap()
                .outbox_rows,
            1
        );
        assert_eq!(reads.get(), 2);

        let err = verify_entries::<u32, _, _>(entries(1), || 1).unwrap_err();
        assert!(
            err.to_string()
                .contains("key not below the outbox sequence"),
            "{err}"
        );

        let mut unknown = entries(0);
        unknown.push(Ok((b"z/what".to_vec(), Vec::new())));
        let err = verify_entries::<u32, _, _>(unknown, || 1).unwrap_err();
        assert!(err.to_string().contains("key has no known prefix"), "{err}");

        let mut damaged = entries(0);
        damaged[0] = Ok((customer_key(Scope::UNSCOPED, "c1"), vec![0xff]));
        assert!(verify_entries::<u32, _, _>(damaged, || 1).is_err());
    }

    #[test]
    fn validation_rejects_what_kafka_never_produces() {
        assert!(matches!(
            validate_offset("", 0, 0),
            Err(StoreError::InvalidTopic { .. })
        ));
        assert!(matches!(
            validate_offset("a\0b", 0, 0),
            Err(StoreError::InvalidTopic { .. })
        ));
        assert!(matches!(
            validate_offset("t", -1, 0),
            Err(StoreError::NegativePartition { .. })
        ));
        assert!(matches!(
            validate_offset("t", 0, -1),
            Err(StoreError::NegativeOffset { .. })
        ));
        assert!(validate_offset("orders", 0, 0).is_ok());
    }
}
