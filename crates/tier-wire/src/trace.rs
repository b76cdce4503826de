//! W3C trace context (`traceparent`) carried from what caused a tier change
//! to the `TierChanged` record that announces it.
//!
//! A producer may put a `traceparent` header on an input record (or gRPC
//! metadata on an admin request): `00-<32 hex trace id>-<16 hex parent
//! id>-<2 hex flags>`. tierd keeps the trace id and the flags, and stamps
//! the change it causes with a child context: the same trace, a parent id
//! of its own. That id is derived from the caller's parent id and the
//! change's `(customer_id, sequence)`, not drawn at random, so a record
//! published again after a crash carries the same header (exactly-once
//! consumers see one record, not two spans).
//!
//! A malformed header is ignored (never a dead letter: tracing must not
//! cost data), as the W3C spec asks of a receiver.
//!
//! Spans of work a caller traced (a gRPC request, an engine command) carry
//! its trace id as a `trace_id` field. When the daemon exports spans
//! (OpenTelemetry), it installs a [`RemoteParentHook`] with
//! [`set_remote_parent_hook`], and [`adopt`] makes such a span a child of
//! the caller's span in the caller's trace.

use std::fmt;
use std::sync::OnceLock;

/// Makes `span` a child of the caller's span `trace` (OpenTelemetry's
/// remote parent). Must run before the span is first entered.
pub type RemoteParentHook = fn(&tracing::Span, &TraceParent);

static REMOTE_PARENT: OnceLock<RemoteParentHook> = OnceLock::new();

/// Install the process's [`RemoteParentHook`]; `false` when one was
/// installed already (the first stays).
pub fn set_remote_parent_hook(hook: RemoteParentHook) -> bool {
    REMOTE_PARENT.set(hook).is_ok()
}

/// Give `span` the caller's trace as its remote parent, when a hook is
/// installed (spans are exported); otherwise nothing.
pub fn adopt(span: &tracing::Span, trace: &TraceParent) {
    if let Some(hook) = REMOTE_PARENT.get() {
        hook(span, trace);
    }
}

/// A parsed `traceparent` (version 00).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    trace_id: [u8; 16],
    parent_id: [u8; 8],
    flags: u8,
}

impl fmt::Debug for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceParent({self})")
    }
}

impl fmt::Display for TraceParent {
    /// The header value: `00-<trace id>-<parent id>-<flags>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("00-")?;
        hex(f, &self.trace_id)?;
        f.write_str("-")?;
        hex(f, &self.parent_id)?;
        write!(f, "-{:02x}", self.flags)
    }
}

fn hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    bytes.iter().try_for_each(|b| write!(f, "{b:02x}"))
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, slot) in out.iter_mut().enumerate() {
        let pair = s.get(2 * i..2 * i + 2)?;
        // Lowercase only, per the spec.
        if pair.bytes().any(|b| b.is_ascii_uppercase()) {
            return None;
        }
        *slot = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

impl TraceParent {
    /// The header name, on Kafka records and in gRPC metadata.
    pub const HEADER: &'static str = "traceparent";

    /// Parse a header value; `None` when it is not a valid version-00
    /// context (or a later version's, read as 00 per the spec, when its
    /// first four fields are well formed). All-zero ids are invalid.
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim();
        let mut parts = value.split('-');
        let version = unhex::<1>(parts.next()?)?[0];
        let trace_id = unhex::<16>(parts.next()?)?;
        let parent_id = unhex::<8>(parts.next()?)?;
        let flags = unhex::<1>(parts.next()?)?[0];
        let extra = parts.next();
        if version == 0xff || (version == 0 && extra.is_some()) {
            return None;
        }
        if trace_id == [0; 16] || parent_id == [0; 8] {
            return None;
        }
        Some(Self {
            trace_id,
            parent_id,
            flags,
        })
    }

    /// Parse header bytes (a Kafka header value).
    pub fn from_bytes(value: &[u8]) -> Option<Self> {
        std::str::from_utf8(value).ok().and_then(Self::parse)
    }

    /// The trace id as 32 hex digits (what log lines carry).
    pub fn trace_id(&self) -> String {
        self.trace_id.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The trace id's 16 bytes.
    pub fn trace_id_bytes(&self) -> [u8; 16] {
        self.trace_id
    }

    /// The caller's span id (the header's parent id), 8 bytes.
    pub fn parent_id_bytes(&self) -> [u8; 8] {
        self.parent_id
    }

    /// The trace flags (bit 0: sampled).
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// Whether the caller sampled the trace.
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }

    /// The context of the change `(customer_id, sequence)` this one caused:
    /// the same trace and flags, a parent id derived from this one's and
    /// the change's identity (FNV-1a, never zero).
    pub fn child(&self, customer_id: &str, sequence: u64) -> Self {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |bytes: &[u8]| {
            for b in bytes {
                h ^= u64::from(*b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
        };
        eat(&self.parent_id);
        eat(customer_id.as_bytes());
        eat(&[0xff]);
        eat(&sequence.to_be_bytes());
        let id = if h == 0 { 1 } else { h };
        Self {
            trace_id: self.trace_id,
            parent_id: id.to_be_bytes(),
            flags: self.flags,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_w3c_example_round_trips() {
        let t = TraceParent::parse(SAMPLE).unwrap();
        assert_eq!(t.to_string(), SAMPLE);
        assert_eq!(t.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(t.sampled());
        assert_eq!(TraceParent::from_bytes(SAMPLE.as_bytes()), Some(t));
        assert_eq!(TraceParent::parse(&format!(" {SAMPLE} ")), Some(t));
    }

    #[test]
    fn malformed_contexts_are_ignored() {
        for bad in [
            "",
            "00",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad:?}");
        }
        assert_eq!(TraceParent::from_bytes(&[0xff, 0xfe]), None);
        // A later version with more fields is read as 00.
        let v1 = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-more";
        let t = TraceParent::parse(v1).unwrap();
        assert!(!t.sampled());
        assert!(t.to_string().starts_with("00-4bf92f"));
    }

    #[test]
    fn a_child_keeps_the_trace_and_is_stable_per_change() {
        let t = TraceParent::parse(SAMPLE).unwrap();
        let a = t.child("c-1", 7);
        assert_eq!(a.trace_id(), t.trace_id());
        assert_eq!(a.sampled(), t.sampled());
        assert_ne!(a.to_string(), t.to_string());
        assert_eq!(a, t.child("c-1", 7), "same change, same id");
        assert_ne!(a, t.child("c-1", 8));
        assert_ne!(a, t.child("c-2", 7));
        assert_eq!(TraceParent::parse(&a.to_string()), Some(a));
    }
}
