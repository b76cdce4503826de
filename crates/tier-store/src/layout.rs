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
pub const SCHEMA_VERSION: u32 = 3;

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

pub(crate) fn customer_key(id: &str) -> Vec<u8> {
    prefixed(CUSTOMER, id.as_bytes())
}

pub(crate) fn parse_customer_key(key: &[u8]) -> Result<String, StoreError> {
    let rest = key
        .strip_prefix(CUSTOMER)
        .ok_or_else(|| malformed("customers", key, "missing prefix"))?;
    std::str::from_utf8(rest)
        .map(str::to_owned)
        .map_err(|_| malformed("customers", key, "customer id is not UTF-8"))
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
    let mut key = [0u8; 10];
    key[..2].copy_from_slice(OUTBOX);
    key[2..].copy_from_slice(&seq.to_be_bytes());
    key
}

pub(crate) fn parse_outbox_key(key: &[u8]) -> Result<u64, StoreError> {
    key.strip_prefix(OUTBOX)
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
