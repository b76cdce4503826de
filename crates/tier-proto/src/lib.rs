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

/// The codec of tierd's gRPC services and clients: prost's, except that a
/// message that does not decode is its sender's error, `INVALID_ARGUMENT`,
/// with prost's account of it (which names the message and field, e.g.
/// `GetTierRequest.customer_id: invalid string value: data is not UTF-8
/// encoded`). Prost's codec calls it `INTERNAL`, which reads as a fault of
/// the server on every dashboard and alert.
pub mod codec {
    use std::marker::PhantomData;

    use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
    use tonic::{Code, Status};
    use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

    #[derive(Debug, Clone)]
    pub struct SenderCodec<T, U>(PhantomData<(T, U)>);

    impl<T, U> Default for SenderCodec<T, U> {
        fn default() -> Self {
            Self(PhantomData)
        }
    }

    impl<T, U> Codec for SenderCodec<T, U>
    where
        T: prost::Message + Send + 'static,
        U: prost::Message + Default + Send + 'static,
    {
        type Encode = T;
        type Decode = U;
        type Encoder = ProstEncoder<T>;
        type Decoder = SenderDecoder<U>;

        fn encoder(&mut self) -> Self::Encoder {
            ProstCodec::<T, U>::default().encoder()
        }

        fn decoder(&mut self) -> Self::Decoder {
            SenderDecoder(ProstCodec::<T, U>::default().decoder())
        }
    }

    #[derive(Debug, Clone)]
    pub struct SenderDecoder<U>(ProstDecoder<U>);

    impl<U: prost::Message + Default> Decoder for SenderDecoder<U> {
        type Item = U;
        type Error = Status;

        fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
            self.0.decode(buf).map_err(|s| {
                if s.code() == Code::Internal {
                    Status::invalid_argument(s.message())
                } else {
                    s
                }
            })
        }

        fn buffer_settings(&self) -> BufferSettings {
            self.0.buffer_settings()
        }
    }
}

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
