//! One module per subcommand, plus what they share: the gRPC connection,
//! error rendering and output.

pub mod explain;
pub mod get;
pub mod kafka;
pub mod produce;
pub mod rank;
pub mod simulate;
pub mod watch;

use std::io::Write as _;
use std::time::Duration;

use anyhow::{Context as _, Result};
use prost_reflect::{DynamicMessage, SerializeOptions};
use tier_proto::api::tier_service_client::TierServiceClient;
use tonic::transport::{Channel, Endpoint};

use crate::cli::{Cli, Command, Output};
use crate::format::code_name;

/// Run one parsed command line.
pub async fn dispatch(cli: Cli) -> Result<()> {
    let rpc = RpcOptions {
        addr: normalize_addr(&cli.addr),
        output: cli.output,
        timeout: Duration::from_secs(cli.timeout),
    };
    match cli.command {
        Command::Get(args) => get::get(&rpc, &args).await,
        Command::BatchGet(args) => get::batch_get(&rpc, &args).await,
        Command::Explain(args) => explain::run(&rpc, &args).await,
        Command::Rank(args) => rank::run(&rpc, &args).await,
        Command::Watch => watch::run(&rpc).await,
        Command::Simulate(args) => {
            let summary = simulate::run(&args).await?;
            simulate::print_summary(&summary, cli.output)
        }
        Command::Produce(args) => {
            let summary = produce::run(&args).await?;
            produce::print_summary(&summary, cli.output)
        }
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
}

impl RpcOptions {
    /// Connect to tierd, failing with the address tried.
    pub async fn connect(&self) -> Result<TierServiceClient<Channel>> {
        let endpoint = Endpoint::from_shared(self.addr.clone())
            .with_context(|| format!("invalid tierd address {:?}", self.addr))?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true);
        let channel = endpoint
            .connect()
            .await
            .with_context(|| format!("cannot connect to tierd at {}", self.addr))?;
        Ok(TierServiceClient::new(channel))
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
        }
        .into()
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
/// address and the underlying cause.
#[derive(Debug)]
pub struct RpcError {
    pub status: tonic::Status,
    pub addr: String,
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
            addr: "http://127.0.0.1:1".into(),
            output: Output::Table,
            timeout: Duration::from_secs(1),
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
