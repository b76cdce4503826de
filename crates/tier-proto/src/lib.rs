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
