//! # tier-api: tierd's gRPC query API
//!
//! Owns the `tiering.v1.TierService` handlers ([`TierServiceImpl`]), the
//! in-memory [`ReadModel`] they answer from, `grpc.health.v1` health
//! ([`health_pair`]), gRPC reflection, bearer-token authorization
//! ([`auth`], whose refusals map to `UNAUTHENTICATED`/`PERMISSION_DENIED`
//! there), the server assembly ([`serve`]), the API's metrics
//! ([`metrics`]), and the one mapping from errors to gRPC status codes
//! (`impl From<ApiError> for tonic::Status`).
//!
//! Must not: talk to Kafka, write to sled or any other store, or compute
//! tiers of its own. The ingest pipeline publishes each committed
//! customer state after each durable batch commit
//! ([`ReadModel::publish`], which builds its compact [`View`] and
//! [`Book`]) and sends `TierChanged` on a broadcast channel; this crate
//! only reads those. Scoring and explanations come from
//! `tier_core::policy::Policy`. The managers' lists and reports
//! ([`reports`]) read the model's ordered id index and running totals.

pub mod admin;
pub mod assessments;
pub mod auth;
pub mod complaints;
pub mod connection;
pub mod convert;
pub mod error;
pub mod gradings;
pub mod health;
pub mod history;
pub mod metrics;
pub mod name;
pub(crate) mod page;
pub mod read_model;
pub mod reports;
pub mod server;
pub mod service;
pub mod shed;
pub mod tls;

pub use admin::AdminServiceImpl;
pub use auth::{Auth, AuthError, AuthLayer, Scope};
pub use error::ApiError;
pub use health::{HEALTH_SERVICES, HealthHandle, HealthService, LIVENESS_SERVICE, health_pair};
pub use name::Name;
pub use read_model::{Book, CustomerView, Entry, Prepared, ReadModel, View};
pub use server::{ApiServer, DEFAULT_GRACE_PERIOD, Limits, serve};
pub use service::{MAX_BATCH_IDS, MAX_RANK_ITEMS, TierChangeStream, TierServiceImpl};
pub use shed::ShedLayer;
pub use tls::{ApiTls, TlsFiles};
