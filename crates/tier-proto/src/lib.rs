//! Generated protobuf and gRPC code for tierd.
//!
//! Owns nothing but the wire types: `tiering.events.v1` (the input event
//! contract) and `tiering.v1` (the `TierService` API and `TierChanged`).
//! Conversions to domain types live at the edges that use them, not here.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::all,
    missing_debug_implementations
)]

/// The serialized `FileDescriptorSet` of every tierd proto, for gRPC
/// reflection and for decoding the proto3 JSON mapping.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/tiering_descriptor.bin"));

pub mod events {
    pub mod v1 {
        tonic::include_proto!("tiering.events.v1");
    }
}

pub mod tiering {
    pub mod v1 {
        tonic::include_proto!("tiering.v1");
    }
}

pub use events::v1 as ev;
pub use tiering::v1 as api;

/// The descriptor pool of every tierd message, built once.
pub fn descriptor_pool() -> &'static prost_reflect::DescriptorPool {
    static POOL: std::sync::OnceLock<prost_reflect::DescriptorPool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        // The bytes were produced by protox from our own protos at build
        // time; failing to decode them is a build defect, not input.
        #[allow(clippy::expect_used)]
        prost_reflect::DescriptorPool::decode(FILE_DESCRIPTOR_SET)
            .expect("embedded descriptor set is valid")
    })
}

/// The canonical upper-snake name of a gRPC status code (`NOT_FOUND`), for
/// metric labels and for people.
pub const fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}
