//! The crate's one error type and the one place that maps errors to gRPC
//! status codes.

use tier_core::overrides::OverrideError;
use tier_engine::CommandError;
use tier_engine::command::{PolicyChangeRefused, SendError};
use tonic::{Code, Status};

use crate::auth::Refusal;

/// Everything the API can answer with instead of a result.
///
/// Messages are sentences meant for the caller: they name the offending
/// field (`customer_ids[3]`, `items[0].customer_id`) and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed; retrying it unchanged cannot succeed.
    #[error("invalid {field}: {reason}")]
    InvalidArgument {
        /// The request field, with its index for repeated fields.
        field: String,
        /// What is wrong with it.
        reason: String,
    },

    /// tierd has never seen an event of this customer.
    #[error("customer {customer_id:?} is unknown: no event of this customer has been processed")]
    NotFound {
        /// The id that was asked for.
        customer_id: String,
    },

    /// A health check named a service this server does not report on.
    #[error("service {service:?} is not registered for health checks")]
    UnknownService {
        /// The service name asked for.
        service: String,
    },

    /// A tier-change watcher fell behind the broadcast buffer and changes
    /// were dropped for it.
    #[error(
        "client too slow: {dropped} tier changes dropped; re-read with BatchGetTiers and watch again"
    )]
    ClientTooSlow {
        /// How many changes the watcher missed.
        dropped: u64,
    },

    /// The service cannot answer right now (shutting down, not ready);
    /// the caller may retry, possibly elsewhere.
    #[error("service unavailable: {0}")]
    Unavailable(String),

    /// The request is valid but the state does not allow it (e.g. clearing
    /// an override the customer does not have).
    #[error("{0}")]
    FailedPrecondition(String),

    /// No, a malformed or an unknown bearer token.
    #[error("{0}")]
    Unauthenticated(String),

    /// A valid caller without the right to this RPC.
    #[error("{0}")]
    PermissionDenied(String),

    /// The engine has too many commands waiting.
    #[error("{0}")]
    Busy(String),

    /// The reflection service could not be built from the embedded
    /// descriptor set (a build defect).
    #[error("cannot build the reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),

    /// The gRPC transport failed (listener, connection handling, a TLS
    /// certificate or key that does not parse).
    #[error("gRPC transport failed: {0}")]
    Transport(#[from] tonic::transport::Error),

    /// A TLS file could not be read.
    #[error("cannot read the TLS {what} {}: {source}", path.display())]
    TlsFile {
        /// `certificate`, `private key` or `client CA`.
        what: &'static str,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

impl ApiError {
    /// An [`ApiError::InvalidArgument`] for `field`.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ApiError::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The gRPC code this error is answered with. The only mapping from
    /// errors to codes in tierd's API.
    pub fn code(&self) -> Code {
        match self {
            ApiError::InvalidArgument { .. } => Code::InvalidArgument,
            ApiError::NotFound { .. } | ApiError::UnknownService { .. } => Code::NotFound,
            ApiError::ClientTooSlow { .. } | ApiError::Busy(_) => Code::ResourceExhausted,
            ApiError::FailedPrecondition(_) => Code::FailedPrecondition,
            ApiError::Unauthenticated(_) => Code::Unauthenticated,
            ApiError::PermissionDenied(_) => Code::PermissionDenied,
            ApiError::Unavailable(_) => Code::Unavailable,
            ApiError::Reflection(_) | ApiError::Transport(_) | ApiError::TlsFile { .. } => {
                Code::Internal
            }
        }
    }
}

impl From<CommandError> for ApiError {
    /// A refused command names the request field at fault.
    fn from(e: CommandError) -> Self {
        let field = match &e {
            CommandError::EmptyCustomerId => "customer_id",
            CommandError::Override(o) => match o {
                OverrideError::UnknownTier { .. } => "tier",
                OverrideError::ExpiresInThePast { .. } => "expires_at",
                OverrideError::Missing { field } => field,
                OverrideError::NothingToClear { .. } => {
                    return ApiError::FailedPrecondition(e.to_string());
                }
            },
            CommandError::Assessment { field, reason } => {
                return ApiError::invalid(*field, reason.clone());
            }
        };
        ApiError::invalid(field, e.to_string())
    }
}

impl From<PolicyChangeRefused> for ApiError {
    /// A policy text refused: the request's `policy_text`, naming the
    /// policy's field at fault.
    fn from(e: PolicyChangeRefused) -> Self {
        ApiError::invalid("policy_text", format!("field `{}`: {e}", e.field()))
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::MissingToken | Refusal::MalformedHeader(_) | Refusal::WrongToken => {
                ApiError::Unauthenticated(r.to_string())
            }
            Refusal::ReadTokenOnAdmin | Refusal::NotLoopback => {
                ApiError::PermissionDenied(r.to_string())
            }
        }
    }
}

impl From<SendError> for ApiError {
    fn from(e: SendError) -> Self {
        match e {
            SendError::Busy(_) => ApiError::Busy(e.to_string()),
            SendError::Stopped => ApiError::Unavailable(e.to_string()),
        }
    }
}

impl From<ApiError> for Status {
    fn from(err: ApiError) -> Self {
        Status::new(err.code(), err.to_string())
    }
}

pub(crate) use tier_proto::code_name as code_label;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_maps_to_its_code_and_keeps_the_message() {
        let cases = [
            (
                ApiError::invalid("customer_ids[1]", "must not be empty"),
                Code::InvalidArgument,
            ),
            (
                ApiError::NotFound {
                    customer_id: "c-1".into(),
                },
                Code::NotFound,
            ),
            (
                ApiError::ClientTooSlow { dropped: 7 },
                Code::ResourceExhausted,
            ),
            (
                ApiError::Unavailable("shutting down".into()),
                Code::Unavailable,
            ),
            (
                ApiError::from(CommandError::Override(OverrideError::UnknownTier {
                    tier: "Z".into(),
                    policy_version: "v".into(),
                })),
                Code::InvalidArgument,
            ),
            (
                ApiError::from(CommandError::Override(OverrideError::NothingToClear {
                    customer_id: "c".into(),
                })),
                Code::FailedPrecondition,
            ),
            (ApiError::from(SendError::Busy(8)), Code::ResourceExhausted),
            (ApiError::from(SendError::Stopped), Code::Unavailable),
        ];
        for (err, code) in cases {
            let msg = err.to_string();
            let status = Status::from(err);
            assert_eq!(status.code(), code);
            assert_eq!(status.message(), msg);
        }
        let s = Status::from(ApiError::invalid("customer_ids[1]", "must not be empty"));
        assert_eq!(s.message(), "invalid customer_ids[1]: must not be empty");
        let s = Status::from(ApiError::from(CommandError::Override(
            OverrideError::Missing { field: "reason" },
        )));
        assert_eq!(s.message(), "invalid reason: reason must not be empty");
        let s = Status::from(ApiError::ClientTooSlow { dropped: 7 });
        assert!(s.message().contains("7 tier changes dropped"));
    }
}
