//! One module per subcommand, plus what they share: the gRPC connection,
//! error rendering and output.

pub mod assessments;
pub mod at_risk;
pub mod complaints;
pub mod customers;
pub mod distribution;
pub mod explain;
pub mod get;
pub mod history;
pub mod kafka;
pub mod managers;
pub mod movers;
pub mod overrides;
pub mod policy;
pub mod produce;
pub mod rank;
pub mod simulate;
pub mod watch;

use std::io::Write as _;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use prost_reflect::{DynamicMessage, SerializeOptions};
use tier_core::time::BusinessCalendar;
use tier_proto::api::GetPolicyRequest;
use tier_proto::api::admin_service_client::AdminServiceClient;
use tier_proto::api::tier_service_client::TierServiceClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::cli::{
    AssessmentsCommand, Cli, Command, ComplaintsCommand, Output, OverrideCommand, PolicyCommand,
    Token, When,
};
use crate::format::code_name;

/// A `TierService` client that sends the bearer token.
pub type TierClient = TierServiceClient<InterceptedService<Channel, Auth>>;
/// An `AdminService` client that sends the bearer token.
pub type AdminClient = AdminServiceClient<InterceptedService<Channel, Auth>>;

/// Run one parsed command line.
pub async fn dispatch(cli: Cli) -> Result<()> {
    // Needs no server, and no flag of the others applies.
    if let Command::Completions(args) = &cli.command {
        return completions(args.shell);
    }
    let format = cli.output;
    let output = match format.table_or_json() {
        Some(output) => output,
        // Commands with CSV read `format` themselves.
        None if cli.command.supports_csv() => Output::Table,
        // The others print their JSON as CSV rows (see `csv_out`).
        None => {
            *crate::csv_out::ACTIVE
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) =
                Some(crate::csv_out::CsvFromJson::new());
            Output::Json
        }
    };
    let tls = tls_config(&cli)?;
    let addr = match &tls {
        // A CA or a client certificate means TLS: default to https.
        Some(_) if !cli.addr.contains("://") => format!("https://{}", cli.addr.trim()),
        _ => normalize_addr(&cli.addr),
    };
    let rpc = RpcOptions {
        addr,
        output,
        timeout: Duration::from_secs(cli.timeout),
        auth: Auth::new(cli.token.as_ref())?,
        tls,
    };
    match cli.command {
        Command::Get(args) => get::get(&rpc, &args).await,
        Command::BatchGet(args) => get::batch_get(&rpc, &args).await,
        Command::Explain(args) => explain::run(&rpc, &args).await,
        Command::Rank(args) => rank::run(&rpc, &args).await,
        Command::Watch => watch::run(&rpc).await,
        Command::Simulate(args) => {
            let summary = simulate::run(&args).await?;
            simulate::print_summary(&summary, output)
        }
        Command::Produce(args) => {
            let summary = produce::run(&args).await?;
            produce::print_summary(&summary, output)
        }
        Command::Override(OverrideCommand::Set(args)) => overrides::set(&rpc, &args).await,
        Command::Override(OverrideCommand::Clear(args)) => overrides::clear(&rpc, &args).await,
        Command::Override(OverrideCommand::History(args)) => overrides::history(&rpc, &args).await,
        Command::Policy(PolicyCommand::Show(args)) => policy::show(&rpc, &args).await,
        Command::Policy(PolicyCommand::DryRun(args)) => policy::dry_run(&rpc, &args).await,
        Command::Policy(PolicyCommand::Apply(args)) => policy::apply(&rpc, &args).await,
        Command::Policy(PolicyCommand::Status) => policy::status(&rpc).await,
        Command::AtRisk(args) => at_risk::run(&rpc, &args).await,
        Command::Customers(args) => customers::run(&rpc, format, &args).await,
        Command::Distribution => distribution::run(&rpc, format).await,
        Command::Managers => managers::run(&rpc, format).await,
        Command::Complaints(ComplaintsCommand::Queue(args)) => {
            complaints::run(&rpc, format, complaints::Which::Queue, &args).await
        }
        Command::Complaints(ComplaintsCommand::Overdue(args)) => {
            complaints::run(&rpc, format, complaints::Which::Overdue, &args).await
        }
        Command::History(args) => history::run(&rpc, &args).await,
        Command::Movers(args) => movers::run(&rpc, &args).await,
        Command::Assess(args) => assessments::assess(&rpc, &args).await,
        Command::Assessments(AssessmentsCommand::History(args)) => {
            assessments::history(&rpc, &args).await
        }
        Command::Assessments(AssessmentsCommand::Due(args)) => assessments::due(&rpc, &args).await,
        Command::Completions(args) => completions(args.shell),
    }
}

/// Adds `authorization: Bearer TOKEN` to every call when a token is set.
/// Its `Debug` never shows the token.
#[derive(Clone, Default)]
pub struct Auth {
    header: Option<MetadataValue<Ascii>>,
}

impl Auth {
    /// The header for `token`; a leading `Bearer ` and surrounding
    /// whitespace are dropped. Fails, without echoing the token, when it
    /// is empty or not a valid header value.
    pub fn new(token: Option<&Token>) -> Result<Self> {
        let Some(token) = token else {
            return Ok(Self::default());
        };
        let raw = token.expose().trim();
        let raw = match raw.split_once(char::is_whitespace) {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim_start(),
            _ if raw.eq_ignore_ascii_case("bearer") => "",
            _ => raw,
        };
        if raw.is_empty() {
            bail!("the token (--token or TIERD_TOKEN) is empty");
        }
        let visible = raw.bytes().all(|b| b.is_ascii_graphic());
        let value = MetadataValue::try_from(format!("Bearer {raw}"));
        let (true, Ok(mut value)) = (visible, value) else {
            bail!(
                "the token (--token or TIERD_TOKEN) is not a valid header value: only visible ASCII characters, no spaces, are allowed"
            );
        };
        value.set_sensitive(true);
        Ok(Self {
            header: Some(value),
        })
    }

    /// Whether a token is sent.
    pub fn has_token(&self) -> bool {
        self.header.is_some()
    }
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let token = if self.has_token() {
            "<redacted>"
        } else {
            "none"
        };
        f.debug_struct("Auth").field("token", &token).finish()
    }
}

impl tonic::service::Interceptor for Auth {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.header {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// What every gRPC command needs.
#[derive(Debug, Clone)]
pub struct RpcOptions {
    /// The address, with a scheme.
    pub addr: String,
    pub output: Output,
    /// Deadline of each unary call.
    pub timeout: Duration,
    /// The bearer token sent with every call, if any.
    pub auth: Auth,
    /// TLS settings; `None`: TLS only for an `https://` address, verified
    /// against the system's roots.
    pub tls: Option<ClientTlsConfig>,
}

impl RpcOptions {
    /// The channel to tierd, failing with the address tried.
    async fn channel(&self) -> Result<Channel> {
        let mut endpoint = Endpoint::from_shared(self.addr.clone())
            .with_context(|| format!("invalid tierd address {:?}", self.addr))?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true);
        let tls = match (&self.tls, self.addr.starts_with("https://")) {
            (Some(tls), _) => Some(tls.clone()),
            (None, true) => Some(ClientTlsConfig::new().with_native_roots()),
            (None, false) => None,
        };
        if let Some(tls) = tls {
            endpoint = endpoint
                .tls_config(tls)
                .with_context(|| format!("TLS settings for {}", self.addr))?;
        }
        endpoint
            .connect()
            .await
            .with_context(|| format!("cannot connect to tierd at {}", self.addr))
    }

    /// Connect to tierd's `TierService`.
    pub async fn connect(&self) -> Result<TierClient> {
        Ok(TierServiceClient::with_interceptor(
            self.channel().await?,
            self.auth.clone(),
        ))
    }

    /// Connect to tierd's `AdminService`.
    pub async fn connect_admin(&self) -> Result<AdminClient> {
        Ok(AdminServiceClient::with_interceptor(
            self.channel().await?,
            self.auth.clone(),
        ))
    }

    /// The business calendar of the policy in force on the server (its
    /// `time_zone`, UTC when it names none): where a date given on the
    /// command line begins, as tierd's own days and months do. Asked for
    /// only when a date was given (`GetPolicy`, a read call).
    pub async fn calendar_for(&self, whens: &[Option<When>]) -> Result<BusinessCalendar> {
        if !whens.iter().flatten().any(When::is_date) {
            return Ok(BusinessCalendar::utc());
        }
        let policy = self
            .connect()
            .await?
            .get_policy(self.request(GetPolicyRequest {}))
            .await
            .map_err(|s| self.rpc_error(s))?
            .into_inner();
        policy_calendar(&policy.text)
            .with_context(|| format!("reading the time zone of policy {}", policy.version))
    }

    /// A unary request with the configured deadline.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(message);
        req.set_timeout(self.timeout);
        req
    }

    /// Wrap a failed call's status for printing.
    pub fn rpc_error(&self, status: tonic::Status) -> anyhow::Error {
        RpcError {
            status,
            addr: self.addr.clone(),
            token_sent: self.auth.has_token(),
        }
        .into()
    }
}

/// The calendar of a policy's top-level `time_zone` (UTC when absent).
/// Only that key is read: a policy of a newer tierd, with settings this
/// tierctl does not know, still gives its zone.
pub fn policy_calendar(text: &str) -> Result<BusinessCalendar> {
    let table: toml::Table = text.parse().context("the policy is not TOML")?;
    match table.get("time_zone") {
        None => Ok(BusinessCalendar::utc()),
        Some(toml::Value::String(zone)) => Ok(BusinessCalendar::from_iana(zone)?),
        Some(other) => bail!("time_zone is not a string: {other}"),
    }
}

/// `host:port` -> `http://host:port`; anything with a scheme unchanged.
pub fn normalize_addr(addr: &str) -> String {
    let addr = addr.trim();
    if addr.contains("://") {
        addr.to_owned()
    } else {
        format!("http://{addr}")
    }
}

/// A gRPC call that returned a non-OK status. Displays as
/// `NOT_FOUND: customer "c-1" is unknown`; transport-level failures add the
/// address and the underlying cause, `UNAUTHENTICATED` without a token
/// says how to send one.
#[derive(Debug)]
pub struct RpcError {
    pub status: tonic::Status,
    pub addr: String,
    /// Whether the call carried a bearer token.
    pub token_sent: bool,
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {}",
            code_name(self.status.code()),
            self.status.message()
        )?;
        let mut previous = self.status.message().to_owned();
        let mut source = std::error::Error::source(&self.status);
        while let Some(s) = source {
            let text = s.to_string();
            if text != previous {
                write!(f, ": {text}")?;
            }
            previous = text;
            source = s.source();
        }
        if matches!(
            self.status.code(),
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Unknown
        ) {
            write!(f, " (tierd at {})", self.addr)?;
        }
        if self.status.code() == tonic::Code::Unauthenticated && !self.token_sent {
            write!(f, " (no token sent: pass --token or set TIERD_TOKEN)")?;
        }
        Ok(())
    }
}

impl std::error::Error for RpcError {}

/// The text after `error: ` for any error of a command: a gRPC status as
/// `CODE: message`, everything else as its chain of causes joined by `: `
/// (a cause repeated verbatim by its wrapper, as hyper's connect errors
/// are, is shown once).
pub fn render_error(e: &anyhow::Error) -> String {
    if let Some(rpc) = e.chain().find_map(|c| c.downcast_ref::<RpcError>()) {
        return rpc.to_string();
    }
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

/// Write text to stdout (broken pipes surface as errors, which `main`
/// treats as a quiet stop).
pub fn emit(text: &str) -> Result<()> {
    let csv = crate::csv_out::ACTIVE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .as_mut()
        .map(|c| c.convert(text));
    let text = csv.as_deref().unwrap_or(text);
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// The proto3 JSON of an API message: proto field names, default values
/// included, so scripts see every field.
pub fn proto_json<M: prost::Message>(msg: &M, full_name: &str) -> Result<serde_json::Value> {
    let desc = tier_proto::descriptor_pool()
        .get_message_by_name(full_name)
        .with_context(|| format!("{full_name} is missing from the descriptor pool"))?;
    let mut dynamic = DynamicMessage::new(desc);
    dynamic
        .transcode_from(msg)
        .with_context(|| format!("cannot transcode {full_name}"))?;
    let options = SerializeOptions::new()
        .skip_default_fields(false)
        .use_proto_field_name(true);
    let value = dynamic
        .serialize_with_options(serde_json::value::Serializer, &options)
        .with_context(|| format!("cannot write {full_name} as JSON"))?;
    Ok(value)
}

/// [`proto_json`] as one line of text, with a newline.
pub fn proto_json_line<M: prost::Message>(msg: &M, full_name: &str) -> Result<String> {
    let mut line = serde_json::to_string(&proto_json(msg, full_name)?)?;
    line.push('\n');
    Ok(line)
}

/// The TLS settings the flags ask for; `None` when none is given.
fn tls_config(cli: &Cli) -> Result<Option<ClientTlsConfig>> {
    if cli.ca_cert.is_none() && cli.cert.is_none() && cli.tls_domain.is_none() {
        return Ok(None);
    }
    let read = |path: &std::path::Path, what: &str| {
        std::fs::read(path).with_context(|| format!("reading the {what} {}", path.display()))
    };
    let mut tls = match &cli.ca_cert {
        Some(ca) => ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(
            ca,
            "CA certificate (--ca-cert)",
        )?)),
        None => ClientTlsConfig::new().with_native_roots(),
    };
    if let (Some(cert), Some(key)) = (&cli.cert, &cli.key) {
        tls = tls.identity(Identity::from_pem(
            read(cert, "client certificate (--cert)")?,
            read(key, "client key (--key)")?,
        ));
    }
    if let Some(domain) = &cli.tls_domain {
        tls = tls.domain_name(domain.clone());
    }
    Ok(Some(tls))
}

/// `tierctl completions SHELL`: the completion script on stdout.
fn completions(shell: clap_complete::Shell) -> Result<()> {
    use clap::CommandFactory as _;
    let mut cmd = Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(shell, &mut cmd, "tierctl", &mut out);
    std::io::Write::flush(&mut out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_get_a_scheme() {
        assert_eq!(normalize_addr("127.0.0.1:50051"), "http://127.0.0.1:50051");
        assert_eq!(normalize_addr(" http://a:1 "), "http://a:1");
        assert_eq!(normalize_addr("https://a:1"), "https://a:1");
    }

    #[test]
    fn statuses_render_as_code_and_message() {
        let opts = RpcOptions {
            tls: None,
            addr: "http://127.0.0.1:1".into(),
            output: Output::Table,
            timeout: Duration::from_secs(1),
            auth: Auth::default(),
        };
        let e = opts.rpc_error(tonic::Status::not_found("customer c-1 is unknown"));
        assert_eq!(render_error(&e), "NOT_FOUND: customer c-1 is unknown");
        let e = e.context("while asking");
        assert_eq!(render_error(&e), "NOT_FOUND: customer c-1 is unknown");
        let e = opts.rpc_error(tonic::Status::unavailable("connection refused"));
        assert_eq!(
            render_error(&e),
            "UNAVAILABLE: connection refused (tierd at http://127.0.0.1:1)"
        );
        let plain = anyhow::anyhow!("refused").context("cannot connect to tierd at http://x:1");
        assert_eq!(
            render_error(&plain),
            "cannot connect to tierd at http://x:1: refused"
        );
        let repeated = anyhow::anyhow!("refused")
            .context("tcp connect error")
            .context("tcp connect error")
            .context("cannot connect");
        assert_eq!(
            render_error(&repeated),
            "cannot connect: tcp connect error: refused"
        );

        let e = opts.rpc_error(tonic::Status::unauthenticated("missing bearer token"));
        assert_eq!(
            render_error(&e),
            "UNAUTHENTICATED: missing bearer token (no token sent: pass --token or set TIERD_TOKEN)"
        );
        let with_token = RpcOptions {
            auth: Auth::new(Some(&Token::from("s3cret".to_owned()))).unwrap(),
            ..opts
        };
        let e = with_token.rpc_error(tonic::Status::unauthenticated("unknown token"));
        assert_eq!(render_error(&e), "UNAUTHENTICATED: unknown token");
        let e = with_token.rpc_error(tonic::Status::permission_denied("not an admin token"));
        assert_eq!(render_error(&e), "PERMISSION_DENIED: not an admin token");
    }

    #[test]
    fn tokens_become_a_hidden_bearer_header() {
        let token = |s: &str| Token::from(s.to_owned());
        let header = |auth: &Auth| auth.header.as_ref().map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(header(&Auth::new(None).unwrap()), None);
        for given in ["s3cret", " s3cret\n", "Bearer s3cret", "bearer  s3cret"] {
            let auth = Auth::new(Some(&token(given))).unwrap();
            assert_eq!(header(&auth).as_deref(), Some("Bearer s3cret"), "{given:?}");
            assert!(auth.header.as_ref().unwrap().is_sensitive());
            assert!(!format!("{auth:?}").contains("s3cret"));
        }
        assert!(!format!("{:?}", token("s3cret")).contains("s3cret"));
        for bad in ["", "  ", "Bearer ", "s3cr\u{e9}t", "s3cr\nt", "s3 cret"] {
            let e = Auth::new(Some(&token(bad))).unwrap_err().to_string();
            assert!(
                e.starts_with("the token (--token or TIERD_TOKEN) is"),
                "{e}"
            );
            assert!(!e.contains("s3cr"), "{e}");
        }
    }

    #[test]
    fn api_messages_as_json() {
        let tier = tier_proto::api::CustomerTier {
            customer_id: "c-1".into(),
            tier: "GOLD".into(),
            score: 81.5,
            ..Default::default()
        };
        let v = proto_json(&tier, "tiering.v1.CustomerTier").unwrap();
        assert_eq!(v["customer_id"], "c-1");
        assert_eq!(v["tier"], "GOLD");
        assert_eq!(v["score"], 81.5);
        assert_eq!(v["overridden"], false);
        assert!(proto_json(&tier, "tiering.v1.Nope").is_err());
    }
}
