//! The command line: clap derive definitions and their value parsers.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use tier_core::Timestamp;

/// Command-line client for tierd: query tiers, explain them, rank work by
/// priority, watch tier changes, and publish realistic sample events.
#[derive(Debug, Clone, Parser)]
#[command(name = "tierctl", version, about, propagate_version = true)]
pub struct Cli {
    /// tierd's gRPC address (`http://` is assumed when no scheme is given).
    #[arg(
        long,
        global = true,
        env = "TIERCTL_ADDR",
        default_value = "http://127.0.0.1:50051"
    )]
    pub addr: String,

    /// Output format for results: aligned text, JSON (one object per
    /// line for lists and streams, the whole answer as one object for
    /// lists that carry a total or a truncation flag; proto field names,
    /// defaults included), or CSV (a layout of its own for `customers`,
    /// `distribution`, `managers` and `complaints`; the JSON's fields as
    /// columns, a row per object, for every other command).
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,

    /// Deadline of each unary gRPC call, in seconds.
    #[arg(long, global = true, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,

    /// Bearer token sent with every gRPC call (`authorization: Bearer
    /// TOKEN`); the `override` and `policy apply` writes need an admin
    /// token. Never printed.
    #[arg(long, global = true, env = "TIERD_TOKEN", hide_env_values = true)]
    pub token: Option<Token>,

    /// CA certificate (PEM) to verify tierd's TLS certificate with; implies
    /// TLS (an `https://` address). Without it an `https://` address is
    /// verified against the system's trusted roots.
    #[arg(long, global = true, env = "TIERCTL_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<std::path::PathBuf>,

    /// Client certificate (PEM) for mutual TLS, with `--key`.
    #[arg(
        long,
        global = true,
        env = "TIERCTL_CERT",
        value_name = "FILE",
        requires = "key"
    )]
    pub cert: Option<std::path::PathBuf>,

    /// Private key (PEM) of `--cert`.
    #[arg(
        long,
        global = true,
        env = "TIERCTL_KEY",
        value_name = "FILE",
        requires = "cert"
    )]
    pub key: Option<std::path::PathBuf>,

    /// Server name to verify the certificate against, when it differs
    /// from the address's host (e.g. connecting by IP).
    #[arg(long, global = true, env = "TIERCTL_TLS_DOMAIN", value_name = "NAME")]
    pub tls_domain: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

/// A bearer token. Its `Debug` hides the value so it never ends up in a
/// log or an error message; [`Token::expose`] gives it to the one place
/// that sends it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// The token as given.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Token {
    fn from(s: String) -> Self {
        Token(s)
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// How results are printed, for a command that prints tables and JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned text for people.
    Table,
    /// Proto3 JSON for scripts.
    Json,
}

/// What `--output` accepts. A command that can also print CSV takes this
/// type; the others take [`Output`] and refuse `csv` (see
/// [`Command::supports_csv`]): to give a command CSV, handle
/// [`OutputFormat::Csv`] in it and list it there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned text for people.
    Table,
    /// Proto3 JSON for scripts.
    Json,
    /// Comma-separated values (RFC 4180) with a header line, for
    /// spreadsheets: money in major units without separators, shares in
    /// percent.
    Csv,
}

impl OutputFormat {
    /// The [`Output`] of a command without CSV; `None` for `csv`.
    pub fn table_or_json(self) -> Option<Output> {
        match self {
            OutputFormat::Table => Some(Output::Table),
            OutputFormat::Json => Some(Output::Json),
            OutputFormat::Csv => None,
        }
    }
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Show one customer's tier, score, priority and entitlements.
    Get(GetArgs),
    /// Show several customers' tiers, one line each, in request order.
    BatchGet(BatchGetArgs),
    /// Explain a customer's tier: indicators, points, weights, gap to the next tier.
    Explain(ExplainArgs),
    /// Order work items by their customers' tier priority.
    Rank(RankArgs),
    /// Stream tier changes, one line each, until Ctrl-C.
    Watch,
    /// Generate a realistic workload and publish it to Kafka.
    Simulate(SimulateArgs),
    /// Publish events given as proto3 JSON lines.
    Produce(ProduceArgs),
    /// Set, clear or list a customer's manual tier override (set and clear
    /// need an admin token).
    #[command(subcommand)]
    Override(OverrideCommand),
    /// Show, try out, apply and follow the scoring policy.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// List customers whose tier will drop if nothing happens, soonest
    /// first, with what would keep it.
    AtRisk(AtRiskArgs),
    /// List customers by id with tier, score, lifecycle, account manager
    /// and 12-month revenue and margin; every page unless `--one-page`.
    Customers(CustomersArgs),
    /// Customers, 12-month revenue and margin per tier with their shares
    /// (the Pareto check).
    Distribution,
    /// Customers and 12-month revenue per account manager and tier, and
    /// how evenly the top tier is spread over the managers.
    Managers,
    /// Open complaints in the order customer service works them, or the
    /// overdue ones, with the deadline each got from its tier.
    #[command(subcommand)]
    Complaints(ComplaintsCommand),
    /// A customer's tier changes, oldest first; with `--at`, the tier it
    /// held at an instant.
    History(HistoryArgs),
    /// Tier changes in a period, newest first: who moved up or down.
    Movers(MoversArgs),
    /// Record a qualitative assessment of a customer (an admin token).
    Assess(AssessArgs),
    /// A customer's assessment history, or the assessments about to expire.
    #[command(subcommand)]
    Assessments(AssessmentsCommand),
    /// Print a shell completion script, e.g.
    /// `tierctl completions bash > /etc/bash_completion.d/tierctl`,
    /// `tierctl completions zsh > "${fpath[1]}/_tierctl"`,
    /// `tierctl completions fish > ~/.config/fish/completions/tierctl.fish`.
    Completions(CompletionsArgs),
}

#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Clone, Args)]
pub struct AssessArgs {
    /// The customer id.
    pub customer_id: String,
    /// An assessment indicator of the policy (`policy show` lists them).
    #[arg(long)]
    pub indicator: String,
    /// A level of its scale.
    #[arg(long, allow_negative_numbers = true)]
    pub value: i64,
    /// Who assessed (recorded in the history).
    #[arg(long = "by")]
    pub assessed_by: String,
    /// Why (recorded in the history).
    #[arg(long, default_value = "")]
    pub note: String,
}

#[derive(Debug, Clone, Subcommand)]
pub enum AssessmentsCommand {
    /// Every assessment of a customer, oldest first.
    History(OverrideHistoryArgs),
    /// Assessments in force that expire within `--within` (re-assess in time).
    Due(AssessmentsDueArgs),
}

#[derive(Debug, Clone, Args)]
pub struct AssessmentsDueArgs {
    /// The horizon from now: `30d`, `2w`, `12h`.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "30d")]
    pub within: std::time::Duration,
    /// At most this many (1 to 10000).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub limit: u32,
}

impl Command {
    /// The commands that print `--output csv`, for the refusal message.
    pub const CSV_COMMANDS: &'static str =
        "`customers`, `distribution`, `managers` and `complaints`";

    /// Whether the command prints `--output csv` (see [`Self::CSV_COMMANDS`]).
    pub fn supports_csv(&self) -> bool {
        matches!(
            self,
            Command::Customers(_)
                | Command::Distribution
                | Command::Managers
                | Command::Complaints(_)
        )
    }
}

#[derive(Debug, Clone, Subcommand)]
pub enum ComplaintsCommand {
    /// Open complaints: the customer's tier priority first, then the
    /// oldest opening.
    Queue(ComplaintListArgs),
    /// Open complaints past their deadline: the customer's tier priority
    /// first, then the earliest deadline.
    Overdue(ComplaintListArgs),
}

/// The most entries the server's lists serve per request.
pub const MAX_LIST_LIMIT: u32 = 10_000;

/// The page size a list asks for: `--limit`, else the largest pages when
/// walking every page (`--all`: the fewest full scans), else the server's
/// default (0).
pub(crate) fn page_limit(limit: Option<u32>, all: bool) -> u32 {
    limit.unwrap_or(if all { MAX_LIST_LIMIT } else { 0 })
}

#[derive(Debug, Clone, Args)]
pub struct ComplaintListArgs {
    /// Most complaints to list (the server's default is 100); with
    /// `--all`, the page size.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub limit: Option<u32>,
    /// Every complaint, fetched page by page.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Clone, Args)]
pub struct HistoryArgs {
    /// The customer id.
    pub customer_id: String,
    /// Show only the tier held at this instant (the last change at or
    /// before it): RFC 3339 or YYYY-MM-DD (the start of that day in the
    /// policy's time zone).
    #[arg(long, value_name = "TIME", value_parser = parse_when)]
    pub at: Option<When>,
}

/// Which tier changes `movers` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DirectionArg {
    /// To a better tier of the policy in force.
    Up,
    /// To a worse tier of the policy in force.
    Down,
    /// Every change, first tiers included.
    Any,
}

#[derive(Debug, Clone, Args)]
pub struct MoversArgs {
    /// Changes at or after this instant: RFC 3339 or YYYY-MM-DD (the start
    /// of that day in the policy's time zone).
    #[arg(long, value_name = "TIME", value_parser = parse_when)]
    pub since: When,
    /// Changes before this instant (default: no end): RFC 3339 or
    /// YYYY-MM-DD (the start of that day: `--until 2026-12-01` ends with
    /// November).
    #[arg(long, value_name = "TIME", value_parser = parse_when)]
    pub until: Option<When>,
    /// Only upgrades, only downgrades, or every change (a customer's
    /// first tier, and a tier the policy no longer has, count as neither
    /// up nor down).
    #[arg(long, value_enum, default_value_t = DirectionArg::Any)]
    pub direction: DirectionArg,
    /// Most changes to list (the server's default is 100); with `--all`,
    /// the page size.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub limit: Option<u32>,
    /// Every change of the period, fetched page by page.
    #[arg(long)]
    pub all: bool,
}

/// A lifecycle stage, for filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LifecycleArg {
    /// Known but no order yet.
    Prospect,
    /// First order recently.
    New,
    Active,
    /// No order for a long time.
    Lapsed,
    /// Ordering again after a lapse.
    Reactivated,
}

#[derive(Debug, Clone, Args)]
pub struct CustomersArgs {
    /// Only customers holding this tier (a tier of the policy in force).
    #[arg(long)]
    pub tier: Option<String>,
    /// Only this account manager's customers.
    #[arg(long, conflicts_with = "unassigned")]
    pub account_manager: Option<String>,
    /// Only customers without an account manager.
    #[arg(long)]
    pub unassigned: bool,
    /// Only customers in this lifecycle stage.
    #[arg(long, value_enum)]
    pub lifecycle: Option<LifecycleArg>,
    /// Customers per request (the server's default is 100, at most 1000).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub page_size: Option<u32>,
    /// Continue a walk from this token (printed by `--one-page`); the
    /// filters must be the walk's.
    #[arg(long)]
    pub page_token: Option<String>,
    /// Fetch one page only; the token of the next is printed on stderr.
    #[arg(long)]
    pub one_page: bool,
}

#[derive(Debug, Clone, Subcommand)]
pub enum OverrideCommand {
    /// Pin, floor or cap a customer's tier (AdminService.SetOverride).
    Set(OverrideSetArgs),
    /// Remove a customer's override (AdminService.ClearOverride).
    Clear(OverrideClearArgs),
    /// A customer's override history, oldest first.
    History(OverrideHistoryArgs),
}

/// How an override bounds the computed tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OverrideModeArg {
    /// Exactly this tier.
    Pin,
    /// At least this tier: a better computed tier wins.
    Floor,
    /// At most this tier: a worse computed tier wins.
    Ceiling,
}

#[derive(Debug, Clone, Args)]
pub struct OverrideSetArgs {
    /// The customer id.
    pub customer_id: String,
    /// The tier to pin to, or the floor or ceiling.
    #[arg(long)]
    pub tier: String,
    /// How the tier bounds the computed one.
    #[arg(long, value_enum)]
    pub mode: OverrideModeArg,
    /// Why (recorded in the history).
    #[arg(long)]
    pub reason: String,
    /// Who decided (recorded in the history).
    #[arg(long)]
    pub author: String,
    /// When the override lapses: RFC 3339 or YYYY-MM-DD (the start of
    /// that day in the policy's time zone). Without `--expires` or
    /// `--for`, it holds until cleared.
    #[arg(long, value_name = "TIME", value_parser = parse_when)]
    pub expires: Option<When>,
    /// How long the override holds from now: `30d`, `12h`, `2w`, `90m`.
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration, conflicts_with = "expires")]
    pub duration: Option<std::time::Duration>,
}

#[derive(Debug, Clone, Args)]
pub struct OverrideClearArgs {
    /// The customer id.
    pub customer_id: String,
    /// Why (recorded in the history).
    #[arg(long)]
    pub reason: String,
    /// Who decided (recorded in the history).
    #[arg(long)]
    pub author: String,
}

#[derive(Debug, Clone, Args)]
pub struct OverrideHistoryArgs {
    /// The customer id.
    pub customer_id: String,
}

#[derive(Debug, Clone, Subcommand)]
pub enum PolicyCommand {
    /// The policy in force: version, hash, then its text.
    Show(PolicyShowArgs),
    /// What applying a policy file would do now: the tier migration
    /// matrix and a sample of the customers who would move. Changes
    /// nothing.
    DryRun(PolicyDryRunArgs),
    /// Make a policy file the policy (needs an admin token); customers
    /// are then rescored in the background.
    Apply(PolicyApplyArgs),
    /// The policy in force and the progress of its rescore.
    Status,
}

#[derive(Debug, Clone, Args)]
pub struct PolicyShowArgs {
    /// Print only the policy text, exactly as stored (whatever
    /// `--output`), e.g. to save it to a file.
    #[arg(long)]
    pub text_only: bool,
}

#[derive(Debug, Clone, Args)]
pub struct PolicyDryRunArgs {
    /// The policy file (TOML; `-` = stdin).
    pub file: PathBuf,
    /// Most movers to list (the server's default is 20).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub sample: Option<u32>,
}

#[derive(Debug, Clone, Args)]
pub struct PolicyApplyArgs {
    /// The policy file (TOML; `-` = stdin).
    pub file: PathBuf,
    /// Wait until every customer is rescored, printing progress.
    #[arg(long)]
    pub wait: bool,
    /// Seconds between progress checks with `--wait`.
    #[arg(long, default_value_t = 1.0, value_parser = parse_interval)]
    pub interval: f64,
}

#[derive(Debug, Clone, Args)]
pub struct AtRiskArgs {
    /// Only customers now in this tier.
    #[arg(long)]
    pub tier: Option<String>,
    /// Most customers to list (the server's default is 100).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub limit: Option<u32>,
}

/// A time given on the command line: an instant, or a date, which means
/// the start of that business day in the time zone of the policy in force
/// on the server (where tierd's days begin: "November" under
/// `Asia/Shanghai` starts at 2026-10-31T16:00:00Z).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    Instant(prost_types::Timestamp),
    /// Year, month, day.
    Date(i64, u32, u32),
}

impl When {
    pub fn is_date(&self) -> bool {
        matches!(self, Self::Date(..))
    }

    /// The instant: a date's first instant in `calendar`.
    pub fn resolve(&self, calendar: &tier_core::time::BusinessCalendar) -> prost_types::Timestamp {
        match *self {
            Self::Instant(t) => t,
            Self::Date(y, m, d) => {
                // parse_when keeps dates to 1970-9999: the day fits.
                let day = i32::try_from(tier_core::time::date(y, m, d).day()).unwrap_or(i32::MAX);
                let start = calendar.day_start(tier_core::time::Day(day));
                crate::format::to_proto_time(start.millis())
            }
        }
    }
}

/// Parse an instant: RFC 3339 (`2027-01-31T00:00:00Z`) or a date
/// (`2027-01-31`, the start of that day where the server's policy says).
pub fn parse_when(s: &str) -> Result<When, String> {
    match parse_time_or_date(s, "an RFC 3339 time or YYYY-MM-DD")? {
        Parsed::Instant(t) => Ok(When::Instant(crate::format::to_proto_time(t.millis()))),
        Parsed::Date(t) => {
            let (y, m, d) = t.ymd();
            Ok(When::Date(y, m, d))
        }
    }
}

/// Parse a positive duration: a whole number and a unit, `s`, `m`, `h`,
/// `d` or `w` (`30d`, `12h`).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let err = || format!("expected a duration such as 30d, 12h, 2w or 90m, got {s:?}");
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().map_err(|_| err())?;
    let secs_per = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(err()),
    };
    if n == 0 {
        return Err(format!("the duration must be positive, got {s:?}"));
    }
    n.checked_mul(secs_per)
        .map(std::time::Duration::from_secs)
        .ok_or_else(|| format!("duration {s:?} is too long"))
}

/// Parse a polling interval in seconds, 0.1 to 3600.
fn parse_interval(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if (0.1..=3600.0).contains(&v) => Ok(v),
        _ => Err(format!("expected seconds between 0.1 and 3600, got {s:?}")),
    }
}

#[derive(Debug, Clone, Args)]
pub struct GetArgs {
    /// The customer id.
    pub customer_id: String,
}

#[derive(Debug, Clone, Args)]
#[command(arg_required_else_help = true)]
pub struct BatchGetArgs {
    /// Customer ids.
    pub customer_ids: Vec<String>,
    /// Read more ids from a file, one per line (`-` = stdin; blank lines
    /// and lines starting with `#` are skipped). Appended after the
    /// positional ids.
    #[arg(long, short = 'f')]
    pub file: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct ExplainArgs {
    /// The customer id.
    pub customer_id: String,
    /// Currency of money values when tierd does not name one (an older
    /// server). The currency tierd reports (the policy's base currency)
    /// always wins: values cannot be converted, only labelled.
    #[arg(long)]
    pub currency: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct RankArgs {
    /// Work items as `CUSTOMER_ID:ITEM_ID` (split at the first `:`).
    #[arg(required = true, value_parser = parse_work_item)]
    pub items: Vec<WorkItemArg>,
}

/// One `CUSTOMER_ID:ITEM_ID` argument of `rank`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkItemArg {
    pub customer_id: String,
    pub item_id: String,
}

/// Parse `CUSTOMER_ID:ITEM_ID`; both parts must be non-empty.
pub fn parse_work_item(s: &str) -> Result<WorkItemArg, String> {
    match s.split_once(':') {
        Some((c, i)) if !c.is_empty() && !i.is_empty() => Ok(WorkItemArg {
            customer_id: c.to_owned(),
            item_id: i.to_owned(),
        }),
        _ => Err(format!("expected CUSTOMER_ID:ITEM_ID, got {s:?}")),
    }
}

/// Wire format of published events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EventFormat {
    /// Binary protobuf `CustomerEvent` (canonical).
    Protobuf,
    /// The proto3 JSON mapping.
    Json,
    /// Binary protobuf in Confluent Schema Registry framing.
    Confluent,
}

/// Where to connect to Kafka.
#[derive(Debug, Clone, Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers, `HOST:PORT[,HOST:PORT...]`.
    #[arg(long, short = 'b', env = "TIERCTL_BROKERS")]
    pub brokers: String,
    /// Extra librdkafka producer properties, `KEY=VALUE` (repeatable; they
    /// override tierctl's defaults), e.g. `-X security.protocol=SASL_SSL`.
    #[arg(short = 'X', long = "kafka-config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub config: Vec<(String, String)>,
    /// Most deliveries awaited at once; sends wait when this many are
    /// unacknowledged.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_in_flight: u64,
}

impl KafkaArgs {
    /// Defaults for `brokers`: no extra config, a window of 10,000.
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            config: Vec::new(),
            max_in_flight: 10_000,
        }
    }
}

/// Parse `KEY=VALUE`.
pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// Topic per event type.
#[derive(Debug, Clone, Args)]
pub struct TopicArgs {
    /// Topic for order placed / cancelled / returned.
    #[arg(long, default_value = "orders")]
    pub orders_topic: String,
    /// Topic for invoices (issued, cancelled and credited) and payments.
    #[arg(long, default_value = "payments")]
    pub payments_topic: String,
    /// Topic for complaints opened / resolved.
    #[arg(long, default_value = "complaints")]
    pub complaints_topic: String,
    /// Topic for customer profile updates.
    #[arg(long, default_value = "customers")]
    pub customers_topic: String,
}

impl Default for TopicArgs {
    fn default() -> Self {
        Self {
            orders_topic: "orders".into(),
            payments_topic: "payments".into(),
            complaints_topic: "complaints".into(),
            customers_topic: "customers".into(),
        }
    }
}

impl TopicArgs {
    /// All four topics, in a fixed order.
    pub fn all(&self) -> [&str; 4] {
        [
            &self.orders_topic,
            &self.payments_topic,
            &self.complaints_topic,
            &self.customers_topic,
        ]
    }
}

/// End of the simulated period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndTime {
    /// The wall clock when the command starts.
    Now,
    At(Timestamp),
}

impl EndTime {
    /// Resolve against the wall clock.
    pub fn resolve(self) -> Timestamp {
        match self {
            EndTime::At(t) => t,
            EndTime::Now => {
                let ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
                Timestamp(ms)
            }
        }
    }
}

/// Parse `now`, an RFC 3339 instant (`2026-11-01T00:00:00Z`,
/// `2026-11-01T08:00:00+08:00`) or a date (`2026-11-01`, midnight UTC).
pub fn parse_end(s: &str) -> Result<EndTime, String> {
    if s.trim().eq_ignore_ascii_case("now") {
        return Ok(EndTime::Now);
    }
    parse_time(s, "\"now\", an RFC 3339 time or YYYY-MM-DD").map(EndTime::At)
}

/// Parse an RFC 3339 instant or a date (midnight UTC) after 1970;
/// `expected` describes the accepted forms in the error.
fn parse_time(s: &str, expected: &str) -> Result<Timestamp, String> {
    parse_time_or_date(s, expected).map(|p| match p {
        Parsed::Instant(t) | Parsed::Date(t) => t,
    })
}

/// What [`parse_time_or_date`] read.
enum Parsed {
    Instant(Timestamp),
    /// A date, as its midnight UTC.
    Date(Timestamp),
}

fn parse_time_or_date(s: &str, expected: &str) -> Result<Parsed, String> {
    let s = s.trim();
    let err = || format!("expected {expected}, got {s:?}");
    // A time of day makes it an instant (prost's parser also takes a bare
    // date, as its UTC midnight: a date is read here instead).
    if s.contains(['T', 't', ' '])
        && let Ok(ts) = s.parse::<prost_types::Timestamp>()
    {
        let ms = crate::format::proto_millis(&ts);
        return if ms > 0 {
            Ok(Parsed::Instant(Timestamp(ms)))
        } else {
            Err(format!("{s:?} is not after 1970-01-01"))
        };
    }
    let mut parts = s.splitn(3, '-');
    let (Some(y), Some(m), Some(d)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(err());
    };
    let (Ok(y), Ok(m), Ok(d)) = (y.parse::<i64>(), m.parse::<u32>(), d.parse::<u32>()) else {
        return Err(err());
    };
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(err());
    }
    let t = tier_core::time::date(y, m, d);
    // Reject dates that roll over (2026-02-31).
    if t.ymd() != (y, m, d) {
        return Err(err());
    }
    Ok(Parsed::Date(t))
}

#[derive(Debug, Clone, Args)]
pub struct SimulateArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Number of customers.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    pub customers: u64,
    /// Number of orders (invoices, payments, returns and complaints follow
    /// from them).
    #[arg(long, default_value_t = 20_000)]
    pub orders: u64,
    /// Seed of the generator: same seed and end, same events.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Wire format of the records.
    #[arg(long, value_enum, default_value_t = EventFormat::Protobuf)]
    pub format: EventFormat,
    /// Length of the simulated period in days, ending at `--end`.
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..))]
    pub days: u32,
    /// End of the simulated period: `now`, RFC 3339 or YYYY-MM-DD. No event
    /// lies after it.
    #[arg(long, default_value = "now", value_parser = parse_end)]
    pub end: EndTime,
    /// Zipf exponent of customer activity (0 = uniform).
    #[arg(long, default_value_t = 1.0)]
    pub zipf: f64,
    /// Prefix of the generated customer ids.
    #[arg(long, default_value = "cust-")]
    pub id_prefix: String,
    /// ISO 4217 code written on every amount (the policy's base currency):
    /// the currency of order figures, and the currency invoices are billed
    /// and paid in.
    #[arg(long, default_value = "CNY")]
    pub currency: String,
    /// Schema id written in the Confluent framing (`--format confluent`).
    #[arg(long, default_value_t = 1)]
    pub schema_id: u32,
    #[command(flatten)]
    pub topics: TopicArgs,
    /// Never show the progress bar (it is hidden anyway when stderr is not
    /// a terminal).
    #[arg(long)]
    pub no_progress: bool,
}

impl SimulateArgs {
    /// The command's defaults, publishing to `brokers`.
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            kafka: KafkaArgs::new(brokers),
            customers: 2000,
            orders: 20_000,
            seed: 42,
            format: EventFormat::Protobuf,
            days: 365,
            end: EndTime::Now,
            zipf: 1.0,
            id_prefix: "cust-".into(),
            currency: "CNY".into(),
            schema_id: 1,
            topics: TopicArgs::default(),
            no_progress: false,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Publish every event to this topic; without it, each event goes to
    /// its type's topic (see the `--*-topic` options).
    #[arg(long, short = 't')]
    pub topic: Option<String>,
    /// Wire format of the records.
    #[arg(long, value_enum, default_value_t = EventFormat::Protobuf)]
    pub format: EventFormat,
    /// File of `CustomerEvent`s in proto3 JSON, one per line (`-` = stdin;
    /// blank lines and lines starting with `#` are skipped).
    #[arg(long, value_name = "FILE")]
    pub json_file: PathBuf,
    /// Schema id written in the Confluent framing (`--format confluent`).
    #[arg(long, default_value_t = 1)]
    pub schema_id: u32,
    #[command(flatten)]
    pub topics: TopicArgs,
    /// Never show the progress bar (it is hidden anyway when stderr is not
    /// a terminal).
    #[arg(long)]
    pub no_progress: bool,
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("tierctl").chain(args.iter().copied()))
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }

    #[test]
    fn global_options_and_get() {
        let cli = parse(&["get", "cust-1"]).unwrap();
        assert_eq!(cli.addr, "http://127.0.0.1:50051");
        assert_eq!(cli.output, OutputFormat::Table);
        assert!(
            matches!(cli.command, Command::Get(GetArgs { ref customer_id }) if customer_id == "cust-1")
        );

        let cli = parse(&["get", "c", "--addr", "http://tierd:9000", "-o", "json"]).unwrap();
        assert_eq!(cli.addr, "http://tierd:9000");
        assert_eq!(cli.output, OutputFormat::Json);
        assert!(parse(&["get"]).is_err());
        assert!(parse(&["get", "c", "--output", "yaml"]).is_err());
    }

    #[test]
    fn batch_get_and_rank() {
        let cli = parse(&["batch-get", "a", "b", "c"]).unwrap();
        let Command::BatchGet(args) = cli.command else {
            panic!("not batch-get");
        };
        assert_eq!(args.customer_ids, ["a", "b", "c"]);
        assert!(args.file.is_none());
        let cli = parse(&["batch-get", "--file", "ids.txt"]).unwrap();
        let Command::BatchGet(args) = cli.command else {
            panic!("not batch-get");
        };
        assert_eq!(args.file.as_deref(), Some(std::path::Path::new("ids.txt")));

        let cli = parse(&["rank", "c1:o1", "c2:o:2"]).unwrap();
        let Command::Rank(args) = cli.command else {
            panic!("not rank");
        };
        assert_eq!(
            args.items,
            [
                WorkItemArg {
                    customer_id: "c1".into(),
                    item_id: "o1".into()
                },
                WorkItemArg {
                    customer_id: "c2".into(),
                    item_id: "o:2".into()
                },
            ]
        );
        assert!(parse(&["rank"]).is_err());
        assert!(parse(&["rank", "c1"]).is_err());
        assert!(parse(&["rank", ":o1"]).is_err());
    }

    #[test]
    fn simulate_defaults_and_options() {
        let cli = parse(&["simulate", "--brokers", "localhost:9092"]).unwrap();
        let Command::Simulate(args) = cli.command else {
            panic!("not simulate");
        };
        assert_eq!(args.kafka.brokers, "localhost:9092");
        assert_eq!((args.customers, args.orders, args.seed), (2000, 20_000, 42));
        assert_eq!(args.days, 365);
        assert_eq!(args.format, EventFormat::Protobuf);
        assert_eq!(args.end, EndTime::Now);
        assert_eq!(args.kafka.max_in_flight, 10_000);
        assert_eq!(
            args.topics.all(),
            ["orders", "payments", "complaints", "customers"]
        );

        let cli = parse(&[
            "simulate",
            "-b",
            "k:1",
            "--customers",
            "10",
            "--orders",
            "50",
            "--seed",
            "7",
            "--format",
            "confluent",
            "--days",
            "30",
            "--end",
            "2026-11-01T00:00:00Z",
            "--orders-topic",
            "o2",
            "-X",
            "acks=all",
        ])
        .unwrap();
        let Command::Simulate(args) = cli.command else {
            panic!("not simulate");
        };
        assert_eq!(
            (args.customers, args.orders, args.seed, args.days),
            (10, 50, 7, 30)
        );
        assert_eq!(args.format, EventFormat::Confluent);
        assert_eq!(args.end, EndTime::At(tier_core::time::date(2026, 11, 1)));
        assert_eq!(args.topics.orders_topic, "o2");
        assert_eq!(args.kafka.config, [("acks".to_owned(), "all".to_owned())]);

        assert!(parse(&["simulate", "-b", "k:1", "--customers", "0"]).is_err());
        assert!(parse(&["simulate", "-b", "k:1", "--format", "avro"]).is_err());
        assert!(parse(&["simulate", "-b", "k:1", "--end", "yesterday"]).is_err());
    }

    #[test]
    fn produce_arguments() {
        let cli = parse(&[
            "produce",
            "--brokers",
            "k:1",
            "--topic",
            "orders",
            "--format",
            "json",
            "--json-file",
            "ev.jsonl",
        ])
        .unwrap();
        let Command::Produce(args) = cli.command else {
            panic!("not produce");
        };
        assert_eq!(args.topic.as_deref(), Some("orders"));
        assert_eq!(args.format, EventFormat::Json);
        assert!(parse(&["produce", "--brokers", "k:1"]).is_err());
    }

    #[test]
    fn end_times() {
        use tier_core::time::date;
        assert_eq!(parse_end("now"), Ok(EndTime::Now));
        assert_eq!(parse_end("NOW"), Ok(EndTime::Now));
        assert_eq!(parse_end("2026-11-01"), Ok(EndTime::At(date(2026, 11, 1))));
        assert_eq!(
            parse_end("2026-11-01T08:00:00+08:00"),
            Ok(EndTime::At(date(2026, 11, 1)))
        );
        assert_eq!(
            parse_end("2026-11-01T00:00:01.5Z"),
            Ok(EndTime::At(Timestamp(date(2026, 11, 1).millis() + 1500)))
        );
        assert!(parse_end("2026-02-31").is_err());
        assert!(parse_end("2026-13-01").is_err());
        assert!(parse_end("1960-01-01T00:00:00Z").is_err());
        assert!(parse_end("soon").is_err());
    }

    #[test]
    fn admin_commands_and_token() {
        let cli = parse(&[
            "--token", "t0k", "override", "set", "c-1", "--tier", "A", "--mode", "ceiling",
            "--reason", "r", "--author", "a", "--for", "2w",
        ])
        .unwrap();
        assert_eq!(cli.token.as_ref().map(Token::expose), Some("t0k"));
        assert!(!format!("{cli:?}").contains("t0k"));
        let Command::Override(OverrideCommand::Set(args)) = cli.command else {
            panic!("not override set");
        };
        assert_eq!(args.mode, OverrideModeArg::Ceiling);
        assert_eq!(
            args.duration,
            Some(std::time::Duration::from_secs(14 * 86_400))
        );
        assert_eq!(args.expires, None);

        let set = [
            "override", "set", "c", "--tier", "A", "--reason", "r", "--author", "a",
        ];
        let with = |extra: &[&'static str]| {
            let mut v = set.to_vec();
            v.extend_from_slice(extra);
            parse(&v)
        };
        assert!(with(&[]).is_err(), "--mode is required");
        assert!(with(&["--mode", "pin", "--for", "1d", "--expires", "2027-01-01"]).is_err());
        let Command::Override(OverrideCommand::Set(args)) =
            with(&["--mode", "pin", "--expires", "2027-01-31"])
                .unwrap()
                .command
        else {
            panic!("not override set");
        };
        assert_eq!(args.expires, Some(When::Date(2027, 1, 31)));

        let cli = parse(&["policy", "apply", "p.toml", "--wait"]).unwrap();
        let Command::Policy(PolicyCommand::Apply(args)) = cli.command else {
            panic!("not policy apply");
        };
        assert!(args.wait);
        assert!((args.interval - 1.0).abs() < f64::EPSILON);
        assert!(parse(&["policy", "apply", "p.toml", "--interval", "0"]).is_err());
        assert!(parse(&["policy", "dry-run", "p.toml", "--sample", "1001"]).is_err());
        assert!(parse(&["policy", "show", "--text-only"]).is_ok());
        assert!(parse(&["policy", "status"]).is_ok());
        let cli = parse(&["at-risk", "--tier", "B", "--limit", "10000"]).unwrap();
        let Command::AtRisk(args) = cli.command else {
            panic!("not at-risk");
        };
        assert_eq!(
            (args.tier.as_deref(), args.limit),
            (Some("B"), Some(10_000))
        );
        assert!(parse(&["at-risk", "--limit", "10001"]).is_err());
    }

    #[test]
    fn durations_and_instants() {
        let secs = |s: &str| parse_duration(s).map(|d| d.as_secs());
        assert_eq!(secs("30d"), Ok(30 * 86_400));
        assert_eq!(secs("12h"), Ok(12 * 3_600));
        assert_eq!(secs("90m"), Ok(5_400));
        assert_eq!(secs("45s"), Ok(45));
        assert_eq!(secs("2w"), Ok(14 * 86_400));
        for bad in [
            "",
            "30",
            "d",
            "0d",
            "1.5d",
            "-1d",
            "3y",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        assert!(parse_duration("99999999999999999w").is_err());
        assert_eq!(
            parse_when("2027-01-31T08:00:00+08:00"),
            Ok(When::Instant(prost_types::Timestamp {
                seconds: 1_801_353_600,
                nanos: 0
            }))
        );
        assert!(parse_when("now").is_err());
        assert!(parse_when("2027-02-30").is_err());
        // A date is the start of that day where the policy's days begin.
        let date = parse_when("2027-01-31").unwrap();
        assert_eq!(date, When::Date(2027, 1, 31));
        let utc = tier_core::time::BusinessCalendar::utc();
        let shanghai = tier_core::time::BusinessCalendar::from_iana("Asia/Shanghai").unwrap();
        assert_eq!(date.resolve(&utc).seconds, 1_801_353_600);
        assert_eq!(date.resolve(&shanghai).seconds, 1_801_353_600 - 8 * 3_600);
        let instant = parse_when("2027-01-31T00:00:00Z").unwrap();
        assert_eq!(instant.resolve(&shanghai).seconds, 1_801_353_600);
    }

    #[test]
    fn complaints_history_and_movers() {
        let cli = parse(&["complaints", "queue", "--limit", "10000", "-o", "csv"]).unwrap();
        assert!(cli.command.supports_csv());
        let Command::Complaints(ComplaintsCommand::Queue(args)) = cli.command else {
            panic!("not complaints queue");
        };
        assert_eq!(args.limit, Some(10_000));
        assert!(parse(&["complaints", "overdue", "--limit", "0"]).is_err());
        assert!(parse(&["complaints", "overdue", "--limit", "10001"]).is_err());
        assert!(parse(&["complaints"]).is_err());

        let cli = parse(&["history", "c-1", "--at", "2027-01-31"]).unwrap();
        assert!(!cli.command.supports_csv());
        let Command::History(args) = cli.command else {
            panic!("not history");
        };
        assert_eq!(args.customer_id, "c-1");
        assert_eq!(args.at, Some(When::Date(2027, 1, 31)));
        assert!(parse(&["history"]).is_err());
        let e = parse(&["history", "c-1", "--at", "yesterday"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("expected an RFC 3339 time or YYYY-MM-DD, got \"yesterday\""),
            "{e}"
        );

        let cli = parse(&["movers", "--since", "2027-01-01"]).unwrap();
        let Command::Movers(args) = cli.command else {
            panic!("not movers");
        };
        assert_eq!(
            (args.direction, args.until, args.limit),
            (DirectionArg::Any, None, None)
        );
        let cli = parse(&[
            "movers",
            "--since",
            "2027-01-01",
            "--until",
            "2027-02-01T00:00:00Z",
            "--direction",
            "down",
            "--limit",
            "5",
        ])
        .unwrap();
        let Command::Movers(args) = cli.command else {
            panic!("not movers");
        };
        assert_eq!(args.direction, DirectionArg::Down);
        assert!(args.until.is_some());
        assert!(parse(&["movers"]).is_err(), "--since is required");
        assert!(parse(&["movers", "--since", "2027-01-01", "--direction", "sideways"]).is_err());
    }

    #[test]
    fn key_values_and_work_items() {
        assert_eq!(
            parse_key_value("linger.ms=10"),
            Ok(("linger.ms".into(), "10".into()))
        );
        assert_eq!(parse_key_value("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert!(parse_key_value("novalue").is_err());
        assert!(parse_key_value("=x").is_err());
        assert!(parse_work_item("c:").is_err());
    }
}
