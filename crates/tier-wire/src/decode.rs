//! Kafka record -> validated domain [`Event`], or a named rejection.
//!
//! This is the edge where untrusted bytes become domain values. Everything
//! that passes [`Decoder::decode`] carries its money in the base currency
//! (invoices and payments also keep it exactly as billed and paid, in their
//! own currency) and was accepted by [`Event::validate`]; everything else
//! comes back as an [`InvalidEvent`] whose `reason` is one of the bounded
//! [`RejectReason`]s (the DLQ header and metric label) and whose `field`
//! names the offending field as a dotted path (`order_placed.amount`).
//! Details are short and readable by an operator; they never echo the whole
//! payload (every detail is cut to [`MAX_DETAIL_LEN`] bytes).
//!
//! # Wire formats and how they are told apart
//!
//! Detection looks at the first bytes only; it allocates nothing:
//!
//! | first byte                       | format                               |
//! |----------------------------------|--------------------------------------|
//! | `0x00`                           | [`WireFormat::ConfluentProtobuf`]    |
//! | `{`, or JSON whitespace then `{` | [`WireFormat::Json`]                 |
//! | anything else                    | [`WireFormat::Protobuf`]             |
//!
//! This is unambiguous for every payload that could decode to a valid
//! event:
//!
//! - `0x00` is a protobuf tag with field number 0, which is never valid, so
//!   no protobuf message starts with it (nor does JSON).
//! - `{` (`0x7B`) as a protobuf tag is field 15 with wire type 3 (the
//!   deprecated start-group); field 15 of `CustomerEvent` is a
//!   length-delimited message, so prost rejects it.
//! - The JSON whitespace bytes `\t` (field 1, fixed64), `\r` (field 1,
//!   fixed32) and space (field 4, varint) are wire-type mismatches for
//!   `CustomerEvent`. Only `\n` (`0x0A`: field 1 = `event_id`,
//!   length-delimited) starts real protobuf, e.g. an `event_id` of 123 bytes
//!   encodes as `0A 7B ...`, which reads as `"\n{"`. So when a payload that
//!   starts with `\n` fails to parse as JSON, it is tried as protobuf before
//!   being rejected (the JSON error is reported if both fail). The reverse
//!   mix-up cannot produce an event: a protobuf event that passes
//!   validation contains the tags `0x12` (`customer_id`) and `0x1A`
//!   (`occurred_at`), raw control characters that valid JSON never contains.
//!
//! ## Confluent framing
//!
//! `0x00`, the schema id (u32 big-endian, not looked up: no registry is
//! needed), the message-index path as zigzag varints (a count, then the
//! indexes; the single byte `0x00` is shorthand for `[0]`), then the
//! protobuf bytes. `CustomerEvent` is message index
//! [`CUSTOMER_EVENT_MESSAGE_INDEX`] (9) of `events.proto` (messages in file
//! order, enums not counted; messages added later, such as
//! `InvoiceCancelled`, are declared after `CustomerEvent` so the index
//! stays 9); `[9]` is accepted, and so is `[0]`, because many producers
//! register the subject with `CustomerEvent` as the only or first message.
//! Any other path is rejected as undecodable.
//!
//! ## JSON
//!
//! The canonical proto3 JSON mapping, through prost-reflect: camelCase or
//! original field names, RFC 3339 timestamps, int64 as string or number,
//! enums as name or number. Unknown field names are rejected (the proto3
//! JSON default): a misspelt `"amont"` must reach the DLQ rather than
//! silently decode as an order without an amount. Trailing bytes after the
//! object are rejected too.
//!
//! # Conversion rules ([`event_from_proto`])
//!
//! - `occurred_at` is required ([`RejectReason::MissingField`]).
//! - Timestamps must lie in the range proto3 defines (0001-01-01 to
//!   9999-12-31, nanos in `0..1e9`), else [`RejectReason::InvalidField`]
//!   (the conversion is [`crate::time::from_proto`]);
//!   all three formats therefore accept exactly the same instants, and every
//!   accepted event can be re-encoded as JSON. Sub-millisecond precision is
//!   truncated (the domain keeps milliseconds).
//! - An empty `oneof payload` is [`RejectReason::EmptyPayload`].
//! - `amount` is required on orders, returns, invoices, credit notes
//!   (`invoice_credited`) and payments ([`RejectReason::MissingField`]). `cost` on orders and returns is
//!   optional and stays `None` when absent: not every producer knows its
//!   cost of goods, and an unknown cost is not a zero cost (the order adds
//!   nothing to the margin figures rather than a 100% margin; a return
//!   without a cost takes it pro rata from its order). An explicit
//!   `amount_minor: 0` is a known cost of 0.
//! - Order, return and purchase-potential money is converted with
//!   [`CurrencyRules::to_base`] under the field's path (an empty currency
//!   code means the base currency). Invoice, credit note and payment money
//!   is read with
//!   [`CurrencyRules::amount`]: kept exactly in its own currency (`billed`,
//!   `paid`) with its base value beside it (`amount`). Either way a
//!   currency the policy has no rate for is [`RejectReason::UnknownCurrency`],
//!   a negative amount [`RejectReason::NegativeAmount`].
//! - `payment_received.payment_id`, `order_returned.return_id` and
//!   `invoice_credited.credit_note_id` are optional (empty: none); given, they are ids (not blank, at most the
//!   id length limit), else [`RejectReason::InvalidField`] on the field,
//!   from [`Event::validate`].
//! - A `severity` outside the enum is [`RejectReason::InvalidField`].
//! - `invoice_issued.due_at` is required.
//! - `profile_updated` is a partial update: an absent field (the strings
//!   are proto3 `optional`, so presence is on the wire; `purchase_potential`
//!   and `customer_since` are messages) is `None`, i.e. unchanged.
//!   `cleared_fields` names fields to reset, by their proto names
//!   (`purchase_potential`, ...); any other name is
//!   [`RejectReason::InvalidField`] on `profile_updated.cleared_fields`, and
//!   so (from [`Event::validate`]) is a field both set and cleared.
//! - `customer_assessed` carries `indicator`, `value` (a level of the
//!   scale), `assessed_by` (required) and `note` (at most
//!   [`tier_core::policy::MAX_NOTE_LEN`] bytes). A decoder built with the
//!   policy's assessment indicators ([`Decoder::for_policy`],
//!   [`Decoder::with_assessments`]) rejects an indicator the policy does not
//!   declare ([`RejectReason::InvalidField`] on
//!   `customer_assessed.indicator`) and a value off its scale (on
//!   `customer_assessed.value`), after [`Event::validate`].
//! - Ids must be valid UTF-8: prost refuses invalid UTF-8 in `string` fields,
//!   so such a record is [`RejectReason::Undecodable`] with the field named.
//!
//! Then [`Event::validate`] runs, and last the Kafka key is compared with
//! `customer_id`: a key that is absent or empty is allowed, a key that is not
//! UTF-8 is [`RejectReason::InvalidField`], a different key is
//! [`RejectReason::KeyMismatch`]; both name the field `key`.
//!
//! # Field names in rejections
//!
//! `payload` (the record value as a whole, or the empty oneof),
//! `confluent.schema_id`, `confluent.message_indexes`, `key`, and the
//! dotted proto field paths: `event_id`, `customer_id`, `occurred_at`,
//! `source`, `<kind>.<field>` such as `order_placed.amount`,
//! `invoice_issued.due_at`, `complaint_opened.severity`,
//! `profile_updated.cleared_fields`, and for binary decode errors inside
//! money or timestamps one level deeper (`order_placed.amount.currency`,
//! `occurred_at.nanos`). Undecodable protobuf names the field prost stopped
//! at; undecodable JSON names the member that fails on its own (an unknown
//! name blames the message that holds it, e.g. `order_placed`), else
//! `payload`. The set is bounded: every name is a `&'static str` from this
//! module or from `tier_core`.

use std::sync::OnceLock;

use prost::Message as _;
use prost_reflect::{DynamicMessage, MessageDescriptor};
use tier_core::policy::{AssessmentRules, Policy};
use tier_core::{
    Amount, CurrencyRules, Event, EventKind, InvalidEvent, Money, ProfileField, ProfileUpdate,
    RejectReason, Severity, Timestamp, ValidationLimits,
};
use tier_proto::ev::{self, CustomerEvent, customer_event::Payload};

use crate::time;

/// Index of `CustomerEvent` among the messages of `events.proto`, in file
/// order (Money 0, OrderPlaced 1, ..., CustomerProfileUpdated 8,
/// CustomerEvent 9, then later additions such as InvoiceCancelled), as used
/// in Confluent message-index paths.
pub const CUSTOMER_EVENT_MESSAGE_INDEX: i32 = 9;

/// Fully qualified name of the envelope message.
pub const CUSTOMER_EVENT_FULL_NAME: &str = "tiering.events.v1.CustomerEvent";

/// Longest `detail` of a rejection, in bytes; longer ones are cut at a
/// character boundary and end with `...`.
pub const MAX_DETAIL_LEN: usize = 240;

/// Wire format detected for a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WireFormat {
    /// Binary protobuf of `CustomerEvent` (canonical).
    Protobuf,
    /// The proto3 JSON mapping of `CustomerEvent`.
    Json,
    /// Binary protobuf in Confluent Schema Registry framing.
    ConfluentProtobuf,
}

impl WireFormat {
    pub const ALL: [WireFormat; 3] = [
        WireFormat::Protobuf,
        WireFormat::Json,
        WireFormat::ConfluentProtobuf,
    ];

    /// Bounded label for metrics and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            WireFormat::Protobuf => "protobuf",
            WireFormat::Json => "json",
            WireFormat::ConfluentProtobuf => "confluent_protobuf",
        }
    }
}

impl std::fmt::Display for WireFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A record that decoded, converted and validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub event: Event,
    pub format: WireFormat,
}

/// Turns Kafka records into validated domain events. Cheap to clone; holds
/// no per-record state, so one instance serves every partition.
#[derive(Debug, Clone)]
pub struct Decoder {
    rules: CurrencyRules,
    limits: ValidationLimits,
    /// The policy's assessment indicators, when assessments are checked
    /// here (see [`Decoder::with_assessments`]).
    assessments: Option<AssessmentRules>,
}

impl Decoder {
    /// A decoder that does not check assessments against a policy (the
    /// fold then ignores an undeclared or off-scale one); see
    /// [`Self::with_assessments`] and [`Self::for_policy`].
    pub fn new(rules: CurrencyRules, limits: ValidationLimits) -> Self {
        Self {
            rules,
            limits,
            assessments: None,
        }
    }

    /// Check `customer_assessed` events against these assessment
    /// indicators: an undeclared indicator or a value off its scale is
    /// rejected ([`RejectReason::InvalidField`] on
    /// `customer_assessed.indicator` / `customer_assessed.value`).
    pub fn with_assessments(mut self, assessments: AssessmentRules) -> Self {
        self.assessments = Some(assessments);
        self
    }

    /// A decoder for `policy`: its currency rules and its assessment
    /// indicators.
    pub fn for_policy(policy: &Policy, limits: ValidationLimits) -> Self {
        Self::new(policy.currency_rules().clone(), limits)
            .with_assessments(policy.assessments().clone())
    }

    /// The assessment indicators checked, when any are.
    pub fn assessments(&self) -> Option<&AssessmentRules> {
        self.assessments.as_ref()
    }

    pub fn rules(&self) -> &CurrencyRules {
        &self.rules
    }

    pub fn limits(&self) -> &ValidationLimits {
        &self.limits
    }

    /// Decode, convert and validate. `key` is the Kafka key (must equal the
    /// payload's `customer_id` when present; a missing or empty key is
    /// allowed). `now`: the instant the event is judged at (see
    /// [`Event::validate`]).
    pub fn decode(
        &self,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        now: Timestamp,
    ) -> Result<Decoded, InvalidEvent> {
        let (msg, format) = decode_wire(payload.unwrap_or_default())?;
        let event = event_from_proto(msg, &self.rules)?;
        event.validate(now, &self.limits).map_err(bounded)?;
        if let Some(assessments) = &self.assessments {
            event.check_assessment(assessments).map_err(bounded)?;
        }
        check_key(key, &event.customer_id)?;
        Ok(Decoded { event, format })
    }
}

/// Which format a payload is in (see the module docs), or `None` for an
/// empty payload. Looks at the first bytes only.
pub fn detect_format(payload: &[u8]) -> Option<WireFormat> {
    let first = *payload.first()?;
    Some(match first {
        0x00 => WireFormat::ConfluentProtobuf,
        b'{' => WireFormat::Json,
        b' ' | b'\t' | b'\n' | b'\r' => {
            match payload
                .iter()
                .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
            {
                Some(b'{') => WireFormat::Json,
                _ => WireFormat::Protobuf,
            }
        }
        _ => WireFormat::Protobuf,
    })
}

/// Detect the format and decode the wire message, without converting or
/// validating it (for tools that inspect dead-lettered records).
pub fn decode_wire(payload: &[u8]) -> Result<(CustomerEvent, WireFormat), InvalidEvent> {
    let Some(format) = detect_format(payload) else {
        return Err(InvalidEvent::new(
            RejectReason::Undecodable,
            "payload",
            "empty payload (tombstone or zero-length value)",
        ));
    };
    match format {
        WireFormat::Protobuf => decode_protobuf(payload).map(|m| (m, format)),
        WireFormat::ConfluentProtobuf => {
            let body = confluent_body(payload)?;
            decode_protobuf(body).map(|m| (m, format))
        }
        WireFormat::Json => match decode_json(payload) {
            Ok(m) => Ok((m, format)),
            // `\n` is also the protobuf tag of `event_id` (see module docs).
            Err(json_err) if payload.first() == Some(&b'\n') => CustomerEvent::decode(payload)
                .map(|m| (m, WireFormat::Protobuf))
                .map_err(|_| json_err),
            Err(json_err) => Err(json_err),
        },
    }
}

fn decode_protobuf(bytes: &[u8]) -> Result<CustomerEvent, InvalidEvent> {
    CustomerEvent::decode(bytes).map_err(|e| protobuf_error(&e))
}

fn protobuf_error(e: &prost::DecodeError) -> InvalidEvent {
    let text = e.to_string();
    let field = prost_error_field(&text).unwrap_or("payload");
    let detail = text
        .strip_prefix("failed to decode Protobuf message: ")
        .unwrap_or(&text);
    bounded(InvalidEvent::new(
        RejectReason::Undecodable,
        field,
        format!("not a valid protobuf CustomerEvent: {detail}"),
    ))
}

/// The body of a Confluent-framed record, after checking the message-index
/// path. `payload[0]` is the magic byte 0.
fn confluent_body(payload: &[u8]) -> Result<&[u8], InvalidEvent> {
    let truncated = |field: &'static str, what: &str| {
        InvalidEvent::new(
            RejectReason::Undecodable,
            field,
            format!(
                "Confluent frame truncated: {} bytes end inside the {what}",
                payload.len()
            ),
        )
    };
    let (Some(&[a, b, c, d]), Some(mut rest)) = (payload.get(1..5), payload.get(5..)) else {
        return Err(truncated("confluent.schema_id", "4-byte schema id"));
    };
    let schema_id = u32::from_be_bytes([a, b, c, d]);
    let bad_indexes = |detail: String| {
        InvalidEvent::new(
            RejectReason::Undecodable,
            "confluent.message_indexes",
            format!("Confluent frame (schema id {schema_id}): {detail}"),
        )
    };
    if rest.is_empty() {
        return Err(truncated("confluent.message_indexes", "message indexes"));
    }
    let count = read_zigzag_i32(&mut rest)
        .ok_or_else(|| bad_indexes("message-index count is not a valid varint".into()))?;
    let index = match count {
        // The single byte 0x00: shorthand for [0].
        0 => 0,
        1 => read_zigzag_i32(&mut rest)
            .ok_or_else(|| bad_indexes("message index is not a valid varint".into()))?,
        n if n < 0 => return Err(bad_indexes(format!("negative message-index count {n}"))),
        n => {
            return Err(bad_indexes(format!(
                "message-index path of length {n} selects a nested message; \
                 expected [{CUSTOMER_EVENT_MESSAGE_INDEX}] (CustomerEvent) or [0]"
            )));
        }
    };
    if index != 0 && index != CUSTOMER_EVENT_MESSAGE_INDEX {
        return Err(bad_indexes(format!(
            "message index [{index}] is not CustomerEvent; \
             expected [{CUSTOMER_EVENT_MESSAGE_INDEX}] or the shorthand [0]"
        )));
    }
    Ok(rest)
}

/// Read one zigzag varint of at most 32 bits (Confluent writes indexes with
/// Java's `ByteUtils.writeVarint`). `None` when truncated or too long.
fn read_zigzag_i32(buf: &mut &[u8]) -> Option<i32> {
    let mut raw: u32 = 0;
    for i in 0..5 {
        let (&byte, rest) = buf.split_first()?;
        *buf = rest;
        if i == 4 && byte > 0x0F {
            return None;
        }
        raw |= u32::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            // Zigzag: 0, -1, 1, -2, ... <- 0, 1, 2, 3, ...
            return Some(((raw >> 1) as i32) ^ -((raw & 1) as i32));
        }
    }
    None
}

/// Append one zigzag varint (the inverse of [`read_zigzag_i32`]).
fn write_zigzag_i32(out: &mut Vec<u8>, value: i32) {
    let mut raw = ((value << 1) ^ (value >> 31)) as u32;
    while raw >= 0x80 {
        out.push((raw as u8 & 0x7F) | 0x80);
        raw >>= 7;
    }
    out.push(raw as u8);
}

fn customer_event_descriptor() -> Option<MessageDescriptor> {
    static DESC: OnceLock<Option<MessageDescriptor>> = OnceLock::new();
    DESC.get_or_init(|| tier_proto::descriptor_pool().get_message_by_name(CUSTOMER_EVENT_FULL_NAME))
        .clone()
}

fn missing_descriptor() -> InvalidEvent {
    // A build defect (the embedded descriptor set lacks the message), not
    // bad input; still reported per record rather than panicking.
    InvalidEvent::new(
        RejectReason::Undecodable,
        "payload",
        format!("{CUSTOMER_EVENT_FULL_NAME} is missing from the embedded descriptor pool"),
    )
}

fn decode_json(payload: &[u8]) -> Result<CustomerEvent, InvalidEvent> {
    let desc = customer_event_descriptor().ok_or_else(missing_descriptor)?;
    let json_error = |e: serde_json::Error| {
        bounded(InvalidEvent::new(
            RejectReason::Undecodable,
            json_error_field(payload),
            format!("not a valid proto3 JSON CustomerEvent: {e}"),
        ))
    };
    let mut de = serde_json::Deserializer::from_slice(payload);
    let dynamic = DynamicMessage::deserialize(desc, &mut de).map_err(json_error)?;
    de.end().map_err(json_error)?;
    dynamic
        .transcode_to::<CustomerEvent>()
        .map_err(|e| protobuf_error(&e))
}

/// The field a rejected JSON payload fails at (cold path: runs only after
/// the fast parse failed). serde errors carry a line and column but no
/// field, so the payload is read again as a plain JSON tree and each member
/// is checked alone against its message, descending into the message
/// fields of `events.proto`. An unknown name blames the message holding it;
/// broken syntax, or an error no single member causes (two `oneof` members,
/// trailing bytes), blames `payload`.
fn json_error_field(payload: &[u8]) -> &'static str {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(payload) else {
        return "payload";
    };
    customer_event_descriptor()
        .and_then(|desc| json_field_at(&desc, &value, ""))
        .unwrap_or("payload")
}

fn json_field_at(
    desc: &MessageDescriptor,
    value: &serde_json::Value,
    prefix: &str,
) -> Option<&'static str> {
    for (key, member) in value.as_object()? {
        let Some(field) = desc
            .get_field_by_json_name(key)
            .or_else(|| desc.get_field_by_name(key))
        else {
            return known_field_path(prefix);
        };
        let path = if prefix.is_empty() {
            field.name().to_owned()
        } else {
            format!("{prefix}.{}", field.name())
        };
        let alone =
            serde_json::Value::Object(serde_json::Map::from_iter([(key.clone(), member.clone())]));
        if DynamicMessage::deserialize(desc.clone(), &alone).is_ok() {
            continue;
        }
        if let prost_reflect::Kind::Message(inner) = field.kind()
            && inner.package_name() == desc.package_name()
            && let Some(found) = json_field_at(&inner, member, &path)
        {
            return Some(found);
        }
        return known_field_path(&path);
    }
    None
}

fn check_key(key: Option<&[u8]>, customer_id: &str) -> Result<(), InvalidEvent> {
    let Some(key) = key.filter(|k| !k.is_empty()) else {
        return Ok(());
    };
    if key == customer_id.as_bytes() {
        return Ok(());
    }
    Err(bounded(match std::str::from_utf8(key) {
        Err(_) => InvalidEvent::new(
            RejectReason::InvalidField,
            "key",
            format!(
                "Kafka key is not valid UTF-8 ({} bytes), so it cannot be customer_id {customer_id:?}",
                key.len()
            ),
        ),
        Ok(k) => InvalidEvent::new(
            RejectReason::KeyMismatch,
            "key",
            format!(
                "Kafka key {:?} differs from customer_id {customer_id:?}",
                truncate(k, 80)
            ),
        ),
    }))
}

/// Proto -> domain conversion, naming the bad field. Does not run
/// [`Event::validate`] (that needs `now`); [`Decoder::decode`] does.
pub fn event_from_proto(msg: CustomerEvent, rules: &CurrencyRules) -> Result<Event, InvalidEvent> {
    convert(msg, rules).map_err(bounded)
}

fn convert(msg: CustomerEvent, rules: &CurrencyRules) -> Result<Event, InvalidEvent> {
    let occurred_at = match &msg.occurred_at {
        Some(ts) => time::from_proto("occurred_at", ts)?,
        None => {
            return Err(InvalidEvent::new(
                RejectReason::MissingField,
                "occurred_at",
                "occurred_at is required",
            ));
        }
    };
    let Some(payload) = msg.payload else {
        return Err(InvalidEvent::new(
            RejectReason::EmptyPayload,
            "payload",
            "the event has no payload (none of order_placed, order_cancelled, order_returned, \
             invoice_issued, invoice_cancelled, invoice_credited, payment_received, complaint_opened, \
             complaint_resolved, profile_updated, customer_assessed is set)",
        ));
    };
    let kind = match payload {
        Payload::OrderPlaced(p) => EventKind::OrderPlaced {
            amount: required_money("order_placed.amount", p.amount.as_ref(), rules)?,
            cost: optional_money("order_placed.cost", p.cost.as_ref(), rules)?,
            order_id: p.order_id,
        },
        Payload::OrderCancelled(p) => EventKind::OrderCancelled {
            order_id: p.order_id,
        },
        Payload::OrderReturned(p) => EventKind::OrderReturned {
            amount: required_money("order_returned.amount", p.amount.as_ref(), rules)?,
            cost: optional_money("order_returned.cost", p.cost.as_ref(), rules)?,
            order_id: p.order_id,
            return_id: p.return_id,
        },
        Payload::InvoiceIssued(p) => {
            let (billed, amount) =
                required_amount("invoice_issued.amount", p.amount.as_ref(), rules)?;
            EventKind::InvoiceIssued {
                amount,
                billed,
                due_at: match &p.due_at {
                    Some(ts) => time::from_proto("invoice_issued.due_at", ts)?,
                    None => {
                        return Err(InvalidEvent::new(
                            RejectReason::MissingField,
                            "invoice_issued.due_at",
                            "invoice_issued.due_at is required",
                        ));
                    }
                },
                invoice_id: p.invoice_id,
                order_id: p.order_id,
            }
        }
        Payload::InvoiceCancelled(p) => EventKind::InvoiceCancelled {
            invoice_id: p.invoice_id,
        },
        Payload::InvoiceCredited(p) => {
            let (credited, amount) =
                required_amount("invoice_credited.amount", p.amount.as_ref(), rules)?;
            EventKind::InvoiceCredited {
                amount,
                credited,
                invoice_id: p.invoice_id,
                credit_note_id: p.credit_note_id,
            }
        }
        Payload::PaymentReceived(p) => {
            let (paid, amount) =
                required_amount("payment_received.amount", p.amount.as_ref(), rules)?;
            EventKind::PaymentReceived {
                amount,
                paid,
                invoice_id: p.invoice_id,
                payment_id: p.payment_id,
            }
        }
        Payload::ComplaintOpened(p) => EventKind::ComplaintOpened {
            severity: severity_from_proto(p.severity)?,
            complaint_id: p.complaint_id,
            category: p.category,
        },
        Payload::ComplaintResolved(p) => EventKind::ComplaintResolved {
            complaint_id: p.complaint_id,
        },
        Payload::ProfileUpdated(p) => EventKind::ProfileUpdated(profile_from_proto(p, rules)?),
        Payload::CustomerAssessed(p) => EventKind::CustomerAssessed {
            indicator: p.indicator,
            value: i64::from(p.value),
            assessed_by: p.assessed_by,
            note: p.note,
        },
    };
    Ok(Event {
        event_id: msg.event_id,
        customer_id: msg.customer_id,
        occurred_at,
        source: msg.source,
        kind,
    })
}

fn profile_from_proto(
    p: ev::CustomerProfileUpdated,
    rules: &CurrencyRules,
) -> Result<ProfileUpdate, InvalidEvent> {
    let cleared = p
        .cleared_fields
        .iter()
        .map(|name| {
            ProfileField::parse(name).ok_or_else(|| {
                InvalidEvent::new(
                    RejectReason::InvalidField,
                    "profile_updated.cleared_fields",
                    format!(
                        "profile_updated.cleared_fields names {:?}, which is not one of {}",
                        truncate(name, 40),
                        ProfileField::ALL.map(ProfileField::as_str).join(", ")
                    ),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ProfileUpdate {
        purchase_potential: optional_money(
            "profile_updated.purchase_potential",
            p.purchase_potential.as_ref(),
            rules,
        )?,
        customer_since: p
            .customer_since
            .as_ref()
            .map(|ts| time::from_proto("profile_updated.customer_since", ts))
            .transpose()?,
        name: p.name,
        industry: p.industry,
        region: p.region,
        account_manager: p.account_manager,
        cleared,
    })
}

fn required_money(
    field: &'static str,
    money: Option<&ev::Money>,
    rules: &CurrencyRules,
) -> Result<Money, InvalidEvent> {
    optional_money(field, money, rules)?.ok_or_else(|| missing(field))
}

fn optional_money(
    field: &'static str,
    money: Option<&ev::Money>,
    rules: &CurrencyRules,
) -> Result<Option<Money>, InvalidEvent> {
    money
        .map(|m| rules.to_base(field, m.amount_minor, &m.currency))
        .transpose()
}

/// Invoice or payment money: exactly as on the wire, in its own currency,
/// and its base-currency value.
fn required_amount(
    field: &'static str,
    money: Option<&ev::Money>,
    rules: &CurrencyRules,
) -> Result<(Amount, Money), InvalidEvent> {
    let m = money.ok_or_else(|| missing(field))?;
    rules.amount(field, m.amount_minor, &m.currency)
}

fn missing(field: &'static str) -> InvalidEvent {
    InvalidEvent::new(
        RejectReason::MissingField,
        field,
        format!("{field} is required"),
    )
}

fn severity_from_proto(value: i32) -> Result<Severity, InvalidEvent> {
    match ev::Severity::try_from(value) {
        Ok(ev::Severity::Unspecified) => Ok(Severity::Unspecified),
        Ok(ev::Severity::Low) => Ok(Severity::Low),
        Ok(ev::Severity::Medium) => Ok(Severity::Medium),
        Ok(ev::Severity::High) => Ok(Severity::High),
        Ok(ev::Severity::Critical) => Ok(Severity::Critical),
        Err(_) => Err(InvalidEvent::new(
            RejectReason::InvalidField,
            "complaint_opened.severity",
            format!("complaint_opened.severity {value} is not a Severity (0..=4)"),
        )),
    }
}

const fn severity_to_proto(s: Severity) -> ev::Severity {
    match s {
        Severity::Unspecified => ev::Severity::Unspecified,
        Severity::Low => ev::Severity::Low,
        Severity::Medium => ev::Severity::Medium,
        Severity::High => ev::Severity::High,
        Severity::Critical => ev::Severity::Critical,
    }
}

/// Domain -> proto, for producers (`tierctl simulate`, tests).
///
/// Base-currency money (order and return amounts and costs, the purchase
/// potential) is written in `currency`, unconverted: pass the base
/// currency code, or `""`. Invoices and payments are written exactly as
/// billed and paid (`billed`, `paid`: their own currency and minor units);
/// their base `amount` is not written, the decoder derives it from the
/// policy's rates. An absent cost stays absent. So for every event whose
/// invoice and payment `amount`s are the base values of `billed` and
/// `paid` under the decoder's rules (as every decoded event's are),
/// [`event_from_proto`] is the exact inverse.
pub fn event_to_proto(ev: &Event, currency: &str) -> CustomerEvent {
    let money = |m: Money| ev::Money {
        amount_minor: m.minor(),
        currency: currency.to_owned(),
    };
    let own = |a: &Amount| ev::Money {
        amount_minor: a.minor,
        currency: a.currency.as_str().to_owned(),
    };
    let payload = match &ev.kind {
        EventKind::OrderPlaced {
            order_id,
            amount,
            cost,
        } => Payload::OrderPlaced(ev::OrderPlaced {
            order_id: order_id.clone(),
            amount: Some(money(*amount)),
            cost: cost.map(money),
        }),
        EventKind::OrderCancelled { order_id } => Payload::OrderCancelled(ev::OrderCancelled {
            order_id: order_id.clone(),
        }),
        EventKind::OrderReturned {
            order_id,
            amount,
            cost,
            return_id,
        } => Payload::OrderReturned(ev::OrderReturned {
            order_id: order_id.clone(),
            amount: Some(money(*amount)),
            cost: cost.map(money),
            return_id: return_id.clone(),
        }),
        EventKind::InvoiceIssued {
            invoice_id,
            order_id,
            amount: _,
            billed,
            due_at,
        } => Payload::InvoiceIssued(ev::InvoiceIssued {
            invoice_id: invoice_id.clone(),
            order_id: order_id.clone(),
            amount: Some(own(billed)),
            due_at: Some(time::to_proto(*due_at)),
        }),
        EventKind::InvoiceCancelled { invoice_id } => {
            Payload::InvoiceCancelled(ev::InvoiceCancelled {
                invoice_id: invoice_id.clone(),
            })
        }
        EventKind::InvoiceCredited {
            invoice_id,
            amount: _,
            credited,
            credit_note_id,
        } => Payload::InvoiceCredited(ev::InvoiceCredited {
            invoice_id: invoice_id.clone(),
            amount: Some(own(credited)),
            credit_note_id: credit_note_id.clone(),
        }),
        EventKind::PaymentReceived {
            invoice_id,
            amount: _,
            paid,
            payment_id,
        } => Payload::PaymentReceived(ev::PaymentReceived {
            invoice_id: invoice_id.clone(),
            amount: Some(own(paid)),
            payment_id: payment_id.clone(),
        }),
        EventKind::ComplaintOpened {
            complaint_id,
            severity,
            category,
        } => Payload::ComplaintOpened(ev::ComplaintOpened {
            complaint_id: complaint_id.clone(),
            severity: severity_to_proto(*severity) as i32,
            category: category.clone(),
        }),
        EventKind::ComplaintResolved { complaint_id } => {
            Payload::ComplaintResolved(ev::ComplaintResolved {
                complaint_id: complaint_id.clone(),
            })
        }
        EventKind::ProfileUpdated(p) => Payload::ProfileUpdated(ev::CustomerProfileUpdated {
            name: p.name.clone(),
            industry: p.industry.clone(),
            region: p.region.clone(),
            purchase_potential: p.purchase_potential.map(money),
            account_manager: p.account_manager.clone(),
            customer_since: p.customer_since.map(time::to_proto),
            cleared_fields: p.cleared.iter().map(|f| f.as_str().to_owned()).collect(),
        }),
        EventKind::CustomerAssessed {
            indicator,
            value,
            assessed_by,
            note,
        } => Payload::CustomerAssessed(ev::CustomerAssessed {
            indicator: indicator.clone(),
            // Values are levels within 0..=1000 (the policy's scale limit).
            value: i32::try_from(*value).unwrap_or(if *value < 0 { i32::MIN } else { i32::MAX }),
            assessed_by: assessed_by.clone(),
            note: note.clone(),
        }),
    };
    CustomerEvent {
        event_id: ev.event_id.clone(),
        customer_id: ev.customer_id.clone(),
        occurred_at: Some(time::to_proto(ev.occurred_at)),
        source: ev.source.clone(),
        payload: Some(payload),
    }
}

/// Binary protobuf (the canonical encoding).
pub fn encode_protobuf(msg: &CustomerEvent) -> Vec<u8> {
    msg.encode_to_vec()
}

/// Why [`try_encode_json`] failed.
#[derive(Debug, thiserror::Error)]
pub enum EncodeJsonError {
    #[error("{CUSTOMER_EVENT_FULL_NAME} is missing from the embedded descriptor pool")]
    MissingDescriptor,
    #[error("cannot transcode to a dynamic message: {0}")]
    Transcode(#[from] prost::DecodeError),
    /// E.g. a timestamp outside 0001..9999, which proto3 JSON cannot write.
    #[error("not representable in proto3 JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// The canonical proto3 JSON mapping (camelCase names, RFC 3339
/// timestamps, int64 as strings, default values omitted), through
/// prost-reflect's serde support.
pub fn try_encode_json(msg: &CustomerEvent) -> Result<Vec<u8>, EncodeJsonError> {
    let desc = customer_event_descriptor().ok_or(EncodeJsonError::MissingDescriptor)?;
    let mut dynamic = DynamicMessage::new(desc);
    dynamic.transcode_from(msg)?;
    Ok(serde_json::to_vec(&dynamic)?)
}

/// [`try_encode_json`] for messages known to be representable, which
/// includes `event_to_proto` of every event [`Decoder::decode`] accepted.
/// A message proto3 JSON cannot represent (a timestamp outside years
/// 1..=9999; out-of-range nanos are normalised) yields an empty vector, which
/// every consumer rejects as an empty payload, instead of a panic or a
/// silently altered event; call [`try_encode_json`] to learn why.
pub fn encode_json(msg: &CustomerEvent) -> Vec<u8> {
    try_encode_json(msg).unwrap_or_default()
}

/// Binary protobuf in Confluent Schema Registry framing: magic byte 0, the
/// schema id (big-endian), the message-index path `[9]` (CustomerEvent's
/// index in `events.proto`, written in full rather than as the `[0]`
/// shorthand, which would name `Money`), then the message.
pub fn encode_confluent(msg: &CustomerEvent, schema_id: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + msg.encoded_len());
    out.push(0x00);
    out.extend_from_slice(&schema_id.to_be_bytes());
    write_zigzag_i32(&mut out, 1);
    write_zigzag_i32(&mut out, CUSTOMER_EVENT_MESSAGE_INDEX);
    msg.encode_raw(&mut out);
    out
}

/// Cut a rejection's detail to [`MAX_DETAIL_LEN`] bytes.
fn bounded(mut e: InvalidEvent) -> InvalidEvent {
    if e.detail.len() > MAX_DETAIL_LEN {
        let cut = truncate(&e.detail, MAX_DETAIL_LEN - 3).len();
        e.detail.truncate(cut);
        e.detail.push_str("...");
    }
    e
}

/// The longest prefix of `s` of at most `max` bytes ending at a char boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Every `field` a rejection from this module can name: the record-level
/// names and every dotted proto field path (a bounded set, so it may be
/// used as a label).
pub const FIELD_PATHS: &[&str] = &[
    "key",
    "confluent.schema_id",
    "confluent.message_indexes",
    "event_id",
    "customer_id",
    "occurred_at",
    "occurred_at.seconds",
    "occurred_at.nanos",
    "source",
    "payload",
    "order_placed",
    "order_placed.order_id",
    "order_placed.amount",
    "order_placed.amount.amount_minor",
    "order_placed.amount.currency",
    "order_placed.cost",
    "order_placed.cost.amount_minor",
    "order_placed.cost.currency",
    "order_cancelled",
    "order_cancelled.order_id",
    "order_returned",
    "order_returned.order_id",
    "order_returned.amount",
    "order_returned.amount.amount_minor",
    "order_returned.amount.currency",
    "order_returned.cost",
    "order_returned.cost.amount_minor",
    "order_returned.cost.currency",
    "order_returned.return_id",
    "invoice_issued",
    "invoice_issued.invoice_id",
    "invoice_issued.order_id",
    "invoice_issued.amount",
    "invoice_issued.amount.amount_minor",
    "invoice_issued.amount.currency",
    "invoice_issued.due_at",
    "invoice_issued.due_at.seconds",
    "invoice_issued.due_at.nanos",
    "invoice_cancelled",
    "invoice_cancelled.invoice_id",
    "invoice_credited",
    "invoice_credited.invoice_id",
    "invoice_credited.amount",
    "invoice_credited.amount.amount_minor",
    "invoice_credited.amount.currency",
    "invoice_credited.credit_note_id",
    "payment_received",
    "payment_received.invoice_id",
    "payment_received.amount",
    "payment_received.amount.amount_minor",
    "payment_received.amount.currency",
    "payment_received.payment_id",
    "complaint_opened",
    "complaint_opened.complaint_id",
    "complaint_opened.severity",
    "complaint_opened.category",
    "complaint_resolved",
    "complaint_resolved.complaint_id",
    "profile_updated",
    "profile_updated.name",
    "profile_updated.industry",
    "profile_updated.region",
    "profile_updated.purchase_potential",
    "profile_updated.purchase_potential.amount_minor",
    "profile_updated.purchase_potential.currency",
    "profile_updated.account_manager",
    "profile_updated.customer_since",
    "profile_updated.customer_since.seconds",
    "profile_updated.customer_since.nanos",
    "profile_updated.cleared_fields",
    "customer_assessed",
    "customer_assessed.indicator",
    "customer_assessed.value",
    "customer_assessed.assessed_by",
    "customer_assessed.note",
];

/// The oneof variant name of a payload message type, as prost names it.
fn variant_of(message: &str) -> Option<&'static str> {
    Some(match message {
        "OrderPlaced" => "order_placed",
        "OrderCancelled" => "order_cancelled",
        "OrderReturned" => "order_returned",
        "InvoiceIssued" => "invoice_issued",
        "InvoiceCancelled" => "invoice_cancelled",
        "InvoiceCredited" => "invoice_credited",
        "PaymentReceived" => "payment_received",
        "ComplaintOpened" => "complaint_opened",
        "ComplaintResolved" => "complaint_resolved",
        "CustomerProfileUpdated" => "profile_updated",
        "CustomerAssessed" => "customer_assessed",
        _ => return None,
    })
}

/// Best-effort dotted path of the field a prost decode error points at.
///
/// prost keeps its location stack private but prints it, innermost first,
/// as `failed to decode Protobuf message: Money.currency: OrderPlaced.amount:
/// CustomerEvent.payload: <description>`. Reading it back only picks a
/// label: when the text does not parse, the caller falls back to `payload`.
fn prost_error_field(text: &str) -> Option<&'static str> {
    let mut rest = text.strip_prefix("failed to decode Protobuf message: ")?;
    let mut stack: Vec<(&str, &str)> = Vec::new();
    while let Some((segment, tail)) = rest.split_once(": ") {
        let Some((message, field)) = segment.split_once('.') else {
            break;
        };
        let ident =
            |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !ident(message) || !ident(field) {
            break;
        }
        stack.push((message, field));
        rest = tail;
    }
    // Outermost first; the oneof field `payload` takes the name of the
    // variant whose message type sits one level further in.
    let mut path = String::new();
    let outer_to_inner: Vec<_> = stack.iter().rev().collect();
    for (i, (message, field)) in outer_to_inner.iter().enumerate() {
        let name = match (*message, *field) {
            ("CustomerEvent", "payload") => outer_to_inner
                .get(i + 1)
                .and_then(|(inner, _)| variant_of(inner))
                .unwrap_or("payload"),
            (_, f) => f,
        };
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(name);
    }
    known_field_path(&path)
}

fn known_field_path(path: &str) -> Option<&'static str> {
    FIELD_PATHS.iter().copied().find(|p| *p == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_event_index_matches_the_descriptor() {
        let desc = customer_event_descriptor().unwrap();
        let pos = desc
            .parent_file()
            .messages()
            .position(|m| m.full_name() == CUSTOMER_EVENT_FULL_NAME)
            .unwrap();
        assert_eq!(pos, CUSTOMER_EVENT_MESSAGE_INDEX as usize);
    }

    #[test]
    fn zigzag_round_trips() {
        for v in [0, 1, -1, 9, 63, 64, -65, 1 << 20, i32::MAX, i32::MIN] {
            let mut buf = Vec::new();
            write_zigzag_i32(&mut buf, v);
            let mut s = buf.as_slice();
            assert_eq!(read_zigzag_i32(&mut s), Some(v));
            assert!(s.is_empty());
        }
        assert_eq!(read_zigzag_i32(&mut &[0x80u8, 0x80][..]), None);
        assert_eq!(
            read_zigzag_i32(&mut &[0xFFu8, 0xFF, 0xFF, 0xFF, 0x7F][..]),
            None
        );
        // Confluent's shorthand byte and [9].
        assert_eq!(read_zigzag_i32(&mut &[0x00u8][..]), Some(0));
        assert_eq!(read_zigzag_i32(&mut &[0x12u8][..]), Some(9));
    }

    #[test]
    fn prost_error_paths() {
        assert_eq!(
            prost_error_field(
                "failed to decode Protobuf message: Money.currency: OrderPlaced.amount: \
                 CustomerEvent.payload: invalid string value: data is not UTF-8 encoded"
            ),
            Some("order_placed.amount.currency")
        );
        assert_eq!(
            prost_error_field(
                "failed to decode Protobuf message: CustomerEvent.event_id: invalid wire type"
            ),
            Some("event_id")
        );
        assert_eq!(
            prost_error_field("failed to decode Protobuf message: buffer underflow"),
            None
        );
        assert_eq!(prost_error_field("other"), None);
    }

    #[test]
    fn details_are_bounded_at_char_boundaries() {
        let e = bounded(InvalidEvent::new(
            RejectReason::InvalidField,
            "x",
            "é".repeat(500),
        ));
        assert!(e.detail.len() <= MAX_DETAIL_LEN);
        assert!(e.detail.ends_with("..."));
    }

    #[test]
    fn detection() {
        assert_eq!(detect_format(b""), None);
        assert_eq!(
            detect_format(b"\0\0\0\0\x01\0"),
            Some(WireFormat::ConfluentProtobuf)
        );
        assert_eq!(detect_format(b"{}"), Some(WireFormat::Json));
        assert_eq!(detect_format(b" \r\n\t{"), Some(WireFormat::Json));
        assert_eq!(detect_format(b"\n\x03abc"), Some(WireFormat::Protobuf));
        assert_eq!(detect_format(b"  "), Some(WireFormat::Protobuf));
    }
}
