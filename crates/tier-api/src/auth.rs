//! Bearer-token authorization of the gRPC API.
//!
//! Owns the auth tokens file (parsing and validation), the constant-time
//! token check, the per-RPC decision ([`Auth::decide`]) and the tower
//! [`AuthLayer`] that applies it in front of every service, before any
//! handler runs.
//!
//! The rules:
//! - `tiering.v1.AdminService/*` needs an admin token. With no tokens
//!   configured at all it is accepted from loopback peers only.
//! - `tiering.v1.TierService/*` needs a read or admin token when read
//!   tokens are configured, and is open otherwise.
//! - Any other `tiering.*` service is treated as admin (fail closed for
//!   services added later); everything else (`grpc.health.v1.Health`,
//!   `grpc.reflection.*`) is open.
//!
//! A refusal is a gRPC status (`UNAUTHENTICATED` or `PERMISSION_DENIED`)
//! answered without calling the service; its message says what is wrong
//! and never contains the token. Tokens are never logged or printed by
//! `Debug`; entries are named in logs by their optional `name`.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::error::ApiError;
use futures::future::{Either, Ready, ready};
use http::header::AUTHORIZATION;
use http::{HeaderMap, Request, Response};
use serde::Deserialize;
use tier_proto::api::admin_service_server::SERVICE_NAME as ADMIN_SERVICE;
use tier_proto::api::tier_service_server::SERVICE_NAME as TIER_SERVICE;
use toml::Spanned;
use tonic::{Code, Status};
use tower::{Layer, Service};

use crate::connection::ConnectionInfo;

/// Shortest token accepted in the tokens file, in characters.
pub const MIN_TOKEN_LEN: usize = 16;

/// The proto package whose services are never open by default.
const TIERING_PACKAGE_PREFIX: &str = "tiering.";

/// What a token grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Read RPCs (`tiering.v1.TierService`).
    Read,
    /// Admin RPCs (`tiering.v1.AdminService`) and read RPCs.
    Admin,
}

impl Scope {
    /// The scope's name in the tokens file.
    pub const fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an RPC needs, from its request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Health, reflection and anything else outside `tiering.*`.
    Open,
    /// `tiering.v1.TierService` methods.
    Read,
    /// `tiering.v1.AdminService` methods, and any other `tiering.*`
    /// service.
    Admin,
}

impl Access {
    /// Classify a gRPC request path (`/package.Service/Method`).
    pub fn of_path(path: &str) -> Access {
        let service = path
            .strip_prefix('/')
            .and_then(|p| p.split_once('/'))
            .map_or("", |(service, _method)| service);
        if service == TIER_SERVICE {
            Access::Read
        } else if service == ADMIN_SERVICE || service.starts_with(TIERING_PACKAGE_PREFIX) {
            Access::Admin
        } else {
            Access::Open
        }
    }
}

/// Why a request was let through; put in the request's extensions, where
/// a handler can read it (`request.extensions().get::<Grant>()`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// The RPC needs no token (health, reflection, or read RPCs with no
    /// read tokens configured).
    Open,
    /// An admin RPC from a loopback peer, no tokens being configured.
    Loopback,
    /// A configured token matched.
    Token {
        /// The matched token's scope.
        scope: Scope,
        /// The matched entry's `name`, if it has one.
        name: Option<Arc<str>>,
    },
}

/// Why a request was refused. Messages are for the caller: they say what
/// is wrong and never contain a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No `authorization` header.
    #[error("missing bearer token: send the header `authorization: Bearer <token>`")]
    MissingToken,
    /// The `authorization` header is not `Bearer <token>`.
    #[error("malformed authorization header: {0}; expected `Bearer <token>`")]
    MalformedHeader(&'static str),
    /// The bearer token matches no configured token.
    #[error("invalid bearer token: it matches no configured token")]
    WrongToken,
    /// A valid read token on an admin RPC.
    #[error("permission denied: this RPC needs an admin token; the token given has read scope")]
    ReadTokenOnAdmin,
    /// An admin RPC from a non-loopback peer with no tokens configured.
    #[error(
        "permission denied: no auth tokens are configured, so admin RPCs are accepted only from \
         loopback peers; configure --auth-tokens-file to call them remotely"
    )]
    NotLoopback,
}

impl Refusal {
    /// The gRPC code the refusal is answered with.
    /// The gRPC code, from the one mapping in [`crate::error`].
    pub fn code(&self) -> Code {
        ApiError::from(self.clone()).code()
    }
}

impl From<Refusal> for Status {
    fn from(refusal: Refusal) -> Self {
        ApiError::from(refusal).into()
    }
}

/// A configured token's bytes; `Debug` never shows them.
#[derive(Clone)]
struct Secret(Box<[u8]>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, Clone)]
struct Entry {
    scope: Scope,
    token: Secret,
    name: Option<Arc<str>>,
}

/// The configured tokens. Cheap to clone; `Debug` shows counts and names,
/// never a token.
#[derive(Clone, Default)]
pub struct Auth {
    entries: Arc<[Entry]>,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self
            .entries
            .iter()
            .filter_map(|e| e.name.as_deref())
            .collect();
        f.debug_struct("Auth")
            .field("admin_tokens", &self.count(Scope::Admin))
            .field("read_tokens", &self.count(Scope::Read))
            .field("names", &names)
            .finish()
    }
}

impl Auth {
    /// No tokens: admin RPCs only from loopback peers, read RPCs open.
    pub fn none() -> Self {
        Self::default()
    }

    /// Tokens given in code, unvalidated (for tests and embedding). An
    /// empty list is [`Auth::none`].
    pub fn from_tokens(tokens: Vec<(Scope, String)>) -> Self {
        let entries = tokens
            .into_iter()
            .map(|(scope, token)| Entry {
                scope,
                token: Secret(token.into_bytes().into_boxed_slice()),
                name: None,
            })
            .collect();
        Self { entries }
    }

    /// Read and validate the tokens file at `path` (see [`Auth::parse`]).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, AuthError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| AuthError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parse and validate tokens-file `text`; `path` only names the file
    /// in errors. The format:
    ///
    /// ```toml
    /// [[token]]
    /// scope = "admin"       # or "read"
    /// token = "..."         # at least 16 printable ASCII characters, no spaces
    /// name = "ops-oncall"   # optional, names the entry in logs
    /// ```
    ///
    /// At least one entry; every token distinct.
    pub fn parse(text: &str, path: &Path) -> Result<Self, AuthError> {
        let file: TokenFile = toml::from_str(text).map_err(|source| AuthError::Toml {
            path: path.to_owned(),
            source: Box::new(source),
        })?;
        if file.token.is_empty() {
            return Err(AuthError::NoTokens {
                path: path.to_owned(),
            });
        }
        let line_of = |offset: usize| text.get(..offset).map_or(0, |s| s.matches('\n').count()) + 1;
        let mut entries: Vec<Entry> = Vec::with_capacity(file.token.len());
        for (index, raw) in file.token.iter().enumerate() {
            let entry_line = line_of(raw.span().start);
            let at = |line: usize, field: &'static str, problem: String| AuthError::Entry {
                path: path.to_owned(),
                line,
                index,
                field,
                problem,
            };
            let raw = raw.get_ref();
            let scope = raw
                .scope
                .as_ref()
                .ok_or_else(|| at(entry_line, "scope", "missing".into()))?;
            let scope = match scope.get_ref().as_str() {
                "admin" => Scope::Admin,
                "read" => Scope::Read,
                other => {
                    return Err(at(
                        line_of(scope.span().start),
                        "scope",
                        format!("unknown scope {other:?}, expected \"admin\" or \"read\""),
                    ));
                }
            };
            let token = raw
                .token
                .as_ref()
                .ok_or_else(|| at(entry_line, "token", "missing".into()))?;
            let token_line = line_of(token.span().start);
            let value = token.get_ref();
            if !value.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(at(
                    token_line,
                    "token",
                    "must be printable ASCII without spaces (it is sent in an HTTP header)".into(),
                ));
            }
            if value.len() < MIN_TOKEN_LEN {
                return Err(at(
                    token_line,
                    "token",
                    format!(
                        "too short: {} characters, at least {MIN_TOKEN_LEN} required",
                        value.len()
                    ),
                ));
            }
            if let Some(first) = entries.iter().position(|e| *e.token.0 == *value.as_bytes()) {
                return Err(at(
                    token_line,
                    "token",
                    format!("duplicate: the same token as entry #{first}"),
                ));
            }
            let name = match &raw.name {
                Some(name) if name.get_ref().trim().is_empty() => {
                    return Err(at(
                        line_of(name.span().start),
                        "name",
                        "must not be empty (omit it instead)".into(),
                    ));
                }
                Some(name) => Some(Arc::from(name.get_ref().as_str())),
                None => None,
            };
            entries.push(Entry {
                scope,
                token: Secret(value.as_bytes().into()),
                name,
            });
        }
        Ok(Self {
            entries: entries.into(),
        })
    }

    /// Whether any token is configured.
    pub fn is_configured(&self) -> bool {
        !self.entries.is_empty()
    }

    /// How many tokens of `scope` are configured.
    pub fn count(&self, scope: Scope) -> usize {
        self.entries.iter().filter(|e| e.scope == scope).count()
    }

    /// One sentence on the auth mode, for the start-up log.
    pub fn describe(&self) -> String {
        if !self.is_configured() {
            return "no auth tokens configured: admin RPCs are accepted only from loopback peers, \
                    read RPCs from anyone; set --auth-tokens-file to require bearer tokens"
                .to_owned();
        }
        let (admin, read) = (self.count(Scope::Admin), self.count(Scope::Read));
        let admin_rule = if admin > 0 {
            "admin RPCs need an admin token"
        } else {
            "admin RPCs are refused (no admin token configured)"
        };
        let read_rule = if read > 0 {
            "read RPCs need a read or admin token"
        } else {
            "read RPCs are open (no read token configured)"
        };
        format!("bearer tokens: {admin} admin, {read} read; {admin_rule}; {read_rule}")
    }

    /// Log the auth mode once: a warning with no tokens configured, info
    /// otherwise (with the entries' names, never the tokens).
    pub fn log_mode(&self) {
        if self.is_configured() {
            let names: Vec<String> = self
                .entries
                .iter()
                .enumerate()
                .map(|(i, e)| match &e.name {
                    Some(name) => format!("{name} ({})", e.scope),
                    None => format!("#{i} ({})", e.scope),
                })
                .collect();
            tracing::info!(tokens = ?names, "gRPC auth: {}", self.describe());
        } else {
            tracing::warn!("gRPC auth: {}", self.describe());
        }
    }

    /// Decide a request for an RPC needing `access`, with its headers and
    /// peer address (`None`: unknown, never treated as loopback).
    pub fn decide(
        &self,
        access: Access,
        headers: &HeaderMap,
        peer: Option<SocketAddr>,
    ) -> Result<Grant, Refusal> {
        match access {
            Access::Open => Ok(Grant::Open),
            Access::Read if self.count(Scope::Read) == 0 => Ok(Grant::Open),
            Access::Admin if !self.is_configured() => {
                if peer.is_some_and(|p| p.ip().to_canonical().is_loopback()) {
                    Ok(Grant::Loopback)
                } else {
                    Err(Refusal::NotLoopback)
                }
            }
            Access::Read | Access::Admin => {
                let token = bearer_token(headers)?;
                let (scope, name) = self.lookup(token).ok_or(Refusal::WrongToken)?;
                if access == Access::Admin && scope != Scope::Admin {
                    return Err(Refusal::ReadTokenOnAdmin);
                }
                Ok(Grant::Token { scope, name })
            }
        }
    }

    /// Decide an HTTP request: classify its path, read its peer from its
    /// connect info ([`ConnectionInfo::peer_of`]).
    pub fn check<B>(&self, request: &Request<B>) -> Result<Grant, Refusal> {
        let access = Access::of_path(request.uri().path());
        let peer = ConnectionInfo::peer_of(request);
        self.decide(access, request.headers(), peer)
    }

    /// The scope and name of the entry whose token is `presented`. Every
    /// configured token is compared in full, whatever matches, so the
    /// time taken does not depend on which token (if any) matched nor on
    /// how much of it did. Tokens are distinct, so at most one matches.
    fn lookup(&self, presented: &[u8]) -> Option<(Scope, Option<Arc<str>>)> {
        let mut found = None;
        for entry in self.entries.iter() {
            if constant_time_eq(presented, &entry.token.0) {
                found = Some((entry.scope, entry.name.clone()));
            }
        }
        found
    }
}

/// Compare `presented` with `secret` without an early exit: the time
/// depends only on `secret`'s length, which is fixed per configured token.
fn constant_time_eq(presented: &[u8], secret: &[u8]) -> bool {
    let mut diff = u8::from(presented.len() != secret.len());
    for (i, s) in secret.iter().enumerate() {
        diff |= presented.get(i).copied().unwrap_or(0) ^ s;
    }
    std::hint::black_box(diff) == 0
}

/// The token of the request's `authorization: Bearer <token>` header.
fn bearer_token(headers: &HeaderMap) -> Result<&[u8], Refusal> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values.next().ok_or(Refusal::MissingToken)?;
    if values.next().is_some() {
        return Err(Refusal::MalformedHeader(
            "more than one authorization header",
        ));
    }
    let value = value.as_bytes();
    let (scheme, rest) = match value.iter().position(|&b| b == b' ') {
        Some(space) => (&value[..space], &value[space + 1..]),
        None => (value, &value[value.len()..]),
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Err(Refusal::MalformedHeader("the scheme is not Bearer"));
    }
    let token = rest.trim_ascii();
    if token.is_empty() {
        return Err(Refusal::MalformedHeader("no token after Bearer"));
    }
    if !token.iter().all(u8::is_ascii_graphic) {
        return Err(Refusal::MalformedHeader(
            "the token contains spaces or non-ASCII characters",
        ));
    }
    Ok(token)
}

/// The tokens file could not be used. Messages name the file, and for an
/// entry its line, index and field; never a token.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The file could not be read.
    #[error("cannot read auth tokens file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML, has an unknown key, or a value of the
    /// wrong type.
    #[error("auth tokens file {}: {source}", path.display())]
    Toml {
        /// The file.
        path: PathBuf,
        /// The parser's error, with line and column.
        source: Box<toml::de::Error>,
    },
    /// An entry is invalid.
    #[error(
        "auth tokens file {}, line {line}, [[token]] entry #{index}, field `{field}`: {problem}",
        path.display()
    )]
    Entry {
        /// The file.
        path: PathBuf,
        /// 1-based line of the field (of the entry, for a missing field).
        line: usize,
        /// 0-based index of the entry among the `[[token]]` entries.
        index: usize,
        /// The field: `scope`, `token` or `name`.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// The file has no `[[token]]` entry.
    #[error(
        "auth tokens file {} has no [[token]] entry; add one, or omit --auth-tokens-file to run \
         without tokens",
        path.display()
    )]
    NoTokens {
        /// The file.
        path: PathBuf,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFile {
    #[serde(default)]
    token: Vec<Spanned<RawEntry>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    scope: Option<Spanned<String>>,
    token: Option<Spanned<String>>,
    name: Option<Spanned<String>>,
}

/// Applies an [`Auth`] to every request before the services see it.
#[derive(Debug, Clone)]
pub struct AuthLayer {
    auth: Auth,
}

impl AuthLayer {
    /// A layer enforcing `auth`.
    pub fn new(auth: Auth) -> Self {
        Self { auth }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            auth: self.auth.clone(),
        }
    }
}

/// The service [`AuthLayer`] wraps around `S`: a refused request is
/// answered with its gRPC status (no body) without calling `S`; an
/// accepted one reaches `S` with its [`Grant`] in the extensions.
#[derive(Debug, Clone)]
pub struct AuthService<S> {
    inner: S,
    auth: Auth,
}

impl<S, B, ResBody> Service<Request<B>> for AuthService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<Result<Response<ResBody>, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        match self.auth.check(&request) {
            Ok(grant) => {
                if let Grant::Token { scope, name } = &grant {
                    tracing::debug!(path = request.uri().path(), %scope, name = name.as_deref(), "gRPC request authorized");
                }
                request.extensions_mut().insert(grant);
                Either::Left(self.inner.call(request))
            }
            Err(refusal) => {
                tracing::debug!(
                    path = request.uri().path(),
                    peer = ?ConnectionInfo::peer_of(&request),
                    %refusal,
                    "gRPC request refused"
                );
                Either::Right(ready(Ok(Status::from(refusal).into_http())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADMIN: &str = "admin-token-0123456789";
    const READ: &str = "read-token-0123456789";

    fn parse(text: &str) -> Result<Auth, AuthError> {
        Auth::parse(text, Path::new("/etc/tierd/tokens.toml"))
    }

    fn headers(value: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(v) = value {
            h.insert(AUTHORIZATION, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn parses_entries_with_scopes_and_names() {
        let auth = parse(&format!(
            "[[token]]\nscope = \"admin\"\ntoken = \"{ADMIN}\"\nname = \"ops-oncall\"\n\n\
             [[token]]\nscope = \"read\"\ntoken = \"{READ}\"\n"
        ))
        .unwrap();
        assert_eq!(auth.count(Scope::Admin), 1);
        assert_eq!(auth.count(Scope::Read), 1);
        let grant = auth
            .decide(
                Access::Admin,
                &headers(Some(&format!("Bearer {ADMIN}"))),
                None,
            )
            .unwrap();
        assert_eq!(
            grant,
            Grant::Token {
                scope: Scope::Admin,
                name: Some(Arc::from("ops-oncall"))
            }
        );
    }

    #[test]
    fn entry_errors_name_file_line_entry_and_field_never_the_token() {
        let cases = [
            (
                "[[token]]\nscope = \"root\"\ntoken = \"0123456789abcdefgh\"\n".to_owned(),
                "line 2, [[token]] entry #0, field `scope`: unknown scope \"root\"",
            ),
            (
                format!(
                    "[[token]]\nscope = \"admin\"\ntoken = \"{ADMIN}\"\n\n[[token]]\nscope = \"read\"\ntoken = \"short-secret\"\n"
                ),
                "line 7, [[token]] entry #1, field `token`: too short: 12 characters",
            ),
            (
                format!(
                    "[[token]]\nscope = \"admin\"\ntoken = \"{ADMIN}\"\n[[token]]\nscope = \"read\"\ntoken = \"{ADMIN}\"\n"
                ),
                "line 6, [[token]] entry #1, field `token`: duplicate: the same token as entry #0",
            ),
            (
                format!("# tokens\n\n[[token]]\ntoken = \"{ADMIN}\"\n"),
                "line 3, [[token]] entry #0, field `scope`: missing",
            ),
            (
                "[[token]]\nscope = \"read\"\n".to_owned(),
                "line 1, [[token]] entry #0, field `token`: missing",
            ),
            (
                "[[token]]\nscope = \"read\"\ntoken = \"has spaces in the token\"\n".to_owned(),
                "line 3, [[token]] entry #0, field `token`: must be printable ASCII",
            ),
            (
                format!("[[token]]\nscope = \"read\"\ntoken = \"{READ}\"\nname = \" \"\n"),
                "line 4, [[token]] entry #0, field `name`: must not be empty",
            ),
        ];
        for (text, want) in cases {
            let err = parse(&text).unwrap_err().to_string();
            assert!(err.contains("/etc/tierd/tokens.toml"), "{err}");
            assert!(err.contains(want), "{err}\n  wanted: {want}");
            for secret in [ADMIN, "short-secret", "has spaces"] {
                assert!(!err.contains(secret), "error echoes a token: {err}");
            }
        }
    }

    #[test]
    fn toml_errors_name_the_file_and_the_line() {
        let err = parse("[[token]]\nscope = \"read\"\ntokn = \"0123456789abcdefgh\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("/etc/tierd/tokens.toml"), "{err}");
        assert!(err.contains("tokn"), "{err}");
        assert!(err.contains("line 3"), "{err}");

        let err = parse("[[token]]\nscope = read\n").unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn a_file_without_entries_is_an_error() {
        let err = parse("# nothing yet\n").unwrap_err();
        assert!(matches!(err, AuthError::NoTokens { .. }), "{err}");
        assert!(err.to_string().contains("--auth-tokens-file"), "{err}");
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let err = Auth::from_file("/nonexistent/tierd-tokens.toml").unwrap_err();
        assert!(matches!(err, AuthError::Read { .. }), "{err}");
        assert!(
            err.to_string().contains("/nonexistent/tierd-tokens.toml"),
            "{err}"
        );
    }

    #[test]
    fn debug_and_describe_never_show_a_token() {
        let auth = parse(&format!(
            "[[token]]\nscope = \"admin\"\ntoken = \"{ADMIN}\"\nname = \"ops-oncall\"\n\
             [[token]]\nscope = \"read\"\ntoken = \"{READ}\"\n"
        ))
        .unwrap();
        let debug = format!("{auth:?} {:?}", AuthLayer::new(auth.clone()));
        let describe = auth.describe();
        for shown in [&debug, &describe] {
            assert!(!shown.contains(ADMIN) && !shown.contains(READ), "{shown}");
        }
        assert!(debug.contains("ops-oncall"), "{debug}");
        assert!(describe.contains("1 admin, 1 read"), "{describe}");
        let auth = Auth::from_tokens(vec![(Scope::Read, READ.to_owned())]);
        assert!(!format!("{auth:?}").contains(READ));
    }

    #[test]
    fn paths_are_classified_by_service() {
        assert_eq!(
            Access::of_path("/tiering.v1.AdminService/SetOverride"),
            Access::Admin
        );
        assert_eq!(
            Access::of_path("/tiering.v1.TierService/GetTier"),
            Access::Read
        );
        assert_eq!(
            Access::of_path("/tiering.v2.SomethingNew/Method"),
            Access::Admin
        );
        assert_eq!(
            Access::of_path("/grpc.health.v1.Health/Check"),
            Access::Open
        );
        assert_eq!(
            Access::of_path("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"),
            Access::Open
        );
        assert_eq!(Access::of_path("/tiering.v1.TierService"), Access::Open);
    }

    #[test]
    fn bearer_header_parsing() {
        let ok = |v: &str| bearer_token(&headers(Some(v))).map(<[u8]>::to_vec);
        assert_eq!(ok("Bearer abc").unwrap(), b"abc");
        assert_eq!(ok("bearer  abc ").unwrap(), b"abc");
        assert_eq!(bearer_token(&headers(None)), Err(Refusal::MissingToken));
        for bad in [
            "Basic xyz",
            "Bearer",
            "Bearer ",
            "Bearerabc",
            "Bearer a b",
            "abc",
        ] {
            assert!(
                matches!(ok(bad), Err(Refusal::MalformedHeader(_))),
                "{bad:?}: {:?}",
                ok(bad)
            );
        }
        let mut two = headers(Some("Bearer a"));
        two.append(AUTHORIZATION, "Bearer b".parse().unwrap());
        assert!(matches!(
            bearer_token(&two),
            Err(Refusal::MalformedHeader(_))
        ));
    }

    #[test]
    fn constant_time_eq_compares_whole_tokens() {
        assert!(constant_time_eq(b"0123456789abcdef", b"0123456789abcdef"));
        assert!(!constant_time_eq(b"0123456789abcdeX", b"0123456789abcdef"));
        assert!(!constant_time_eq(b"0123456789abcde", b"0123456789abcdef"));
        assert!(!constant_time_eq(b"0123456789abcdef0", b"0123456789abcdef"));
        assert!(!constant_time_eq(b"", b"0123456789abcdef"));
        assert!(!constant_time_eq(b"\0\0", b""));
    }
}
