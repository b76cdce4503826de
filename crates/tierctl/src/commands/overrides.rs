//! `override set`, `override clear` and `override history`: manual tier
//! overrides. Set and clear go to `AdminService` (an admin token).

use anyhow::{Context as _, Result};
use tier_core::time::BusinessCalendar;
use tier_proto::api::{
    ClearOverrideRequest, GetOverrideHistoryRequest, OverrideHistory, OverrideHistoryEntry,
    OverrideMode, OverrideResponse, SetOverrideRequest,
};

use super::{RpcOptions, emit, proto_json_line};
use crate::cli::{
    Output, OverrideClearArgs, OverrideHistoryArgs, OverrideModeArg, OverrideSetArgs,
};
use crate::format::{Table, dash, key_values, override_mode_name, override_text, proto_time};

impl From<OverrideModeArg> for OverrideMode {
    fn from(m: OverrideModeArg) -> Self {
        match m {
            OverrideModeArg::Pin => OverrideMode::Pin,
            OverrideModeArg::Floor => OverrideMode::Floor,
            OverrideModeArg::Ceiling => OverrideMode::Ceiling,
        }
    }
}

/// The request `override set` sends: `--expires` as given (a date read
/// in `calendar`, the policy's zone), `--for` from the wall clock now,
/// neither for an override that holds until cleared.
pub fn set_request(
    args: &OverrideSetArgs,
    calendar: &BusinessCalendar,
) -> Result<SetOverrideRequest> {
    let expires_at = match (&args.expires, args.duration) {
        (Some(at), _) => Some(at.resolve(calendar)),
        (None, Some(d)) => {
            let at = std::time::SystemTime::now()
                .checked_add(d)
                .context("the --for duration is too long")?;
            Some(prost_types::Timestamp::from(at))
        }
        (None, None) => None,
    };
    Ok(SetOverrideRequest {
        customer_id: args.customer_id.clone(),
        tier: args.tier.clone(),
        mode: OverrideMode::from(args.mode).into(),
        reason: args.reason.clone(),
        author: args.author.clone(),
        expires_at,
    })
}

pub async fn set(rpc: &RpcOptions, args: &OverrideSetArgs) -> Result<()> {
    let calendar = rpc.calendar_for(&[args.expires]).await?;
    let request = set_request(args, &calendar)?;
    let mut client = rpc.connect_admin().await?;
    let response = client
        .set_override(rpc.request(request))
        .await
        .map_err(|s| rpc.rpc_error(s))?
        .into_inner();
    print_response(rpc, &args.customer_id, &response)
}

pub async fn clear(rpc: &RpcOptions, args: &OverrideClearArgs) -> Result<()> {
    let mut client = rpc.connect_admin().await?;
    let response = client
        .clear_override(rpc.request(ClearOverrideRequest {
            customer_id: args.customer_id.clone(),
            reason: args.reason.clone(),
            author: args.author.clone(),
        }))
        .await
        .map_err(|s| rpc.rpc_error(s))?
        .into_inner();
    print_response(rpc, &args.customer_id, &response)
}

fn print_response(rpc: &RpcOptions, customer_id: &str, r: &OverrideResponse) -> Result<()> {
    match rpc.output {
        Output::Json => emit(&proto_json_line(r, "tiering.v1.OverrideResponse")?),
        Output::Table => emit(&render_response(customer_id, r)),
    }
}

/// The customer's effective and computed tier after the command, the
/// override now in force, and the tier change the command caused.
pub fn render_response(customer_id: &str, r: &OverrideResponse) -> String {
    let tier = r.tier.as_ref();
    let customer = tier
        .map(|t| t.customer_id.clone())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| customer_id.to_owned());
    let effective = tier.map_or_else(|| "-".to_owned(), |t| dash(&t.tier));
    let computed = tier.map_or_else(|| "-".to_owned(), |t| dash(&t.computed_tier));
    let override_in_force = tier
        .and_then(|t| t.r#override.as_ref())
        .map_or_else(|| "none".to_owned(), override_text);
    let change = match &r.change {
        Some(c) => {
            let old = if c.old_tier.is_empty() {
                "(none)"
            } else {
                &c.old_tier
            };
            format!("{old} -> {}", c.new_tier)
        }
        None => "none (the effective tier did not move)".to_owned(),
    };
    let mut pairs = vec![
        ("customer", customer),
        ("effective tier", effective),
        ("computed tier", computed),
        ("override", override_in_force),
        ("change", change),
    ];
    if let Some(t) = tier {
        pairs.push(("policy", dash(&t.policy_version)));
    }
    key_values(&pairs)
}

pub async fn history(rpc: &RpcOptions, args: &OverrideHistoryArgs) -> Result<()> {
    let mut client = rpc.connect().await?;
    let history = client
        .get_override_history(rpc.request(GetOverrideHistoryRequest {
            customer_id: args.customer_id.clone(),
        }))
        .await
        .map_err(|s| rpc.rpc_error(s))?
        .into_inner();
    match rpc.output {
        Output::Json => {
            let mut text = String::new();
            for e in &history.entries {
                text.push_str(&proto_json_line(e, "tiering.v1.OverrideHistoryEntry")?);
            }
            emit(&text)
        }
        Output::Table => emit(&render_history(&args.customer_id, &history)),
    }
}

/// One row per entry, oldest first: at, action, tier, mode, author,
/// reason, expires. The override's own author and reason for a `set`, the
/// entry's for a `cleared`.
pub fn render_history(customer_id: &str, h: &OverrideHistory) -> String {
    if h.entries.is_empty() {
        let id = if h.customer_id.is_empty() {
            customer_id
        } else {
            &h.customer_id
        };
        return format!("no override history for {id}\n");
    }
    let mut table = Table::new([
        "at", "action", "tier", "mode", "author", "reason", "expires",
    ]);
    for e in &h.entries {
        table.row(history_row(e));
    }
    table.render()
}

fn history_row(e: &OverrideHistoryEntry) -> [String; 7] {
    let o = e.r#override.as_ref();
    let pick = |entry: &str, of_override: Option<&str>| {
        if entry.is_empty() {
            dash(of_override.unwrap_or_default())
        } else {
            entry.to_owned()
        }
    };
    [
        proto_time(e.at.as_ref()),
        dash(&e.action),
        o.map_or_else(|| "-".to_owned(), |o| dash(&o.tier)),
        o.map_or_else(|| "-".to_owned(), |o| override_mode_name(o.mode)),
        pick(&e.author, o.map(|o| o.author.as_str())),
        pick(&e.reason, o.map(|o| o.reason.as_str())),
        match o {
            Some(o) if o.expires_at.is_some() => proto_time(o.expires_at.as_ref()),
            Some(_) => "until cleared".to_owned(),
            None => "-".to_owned(),
        },
    ]
}

#[cfg(test)]
mod tests {
    use tier_proto::api::{CustomerTier, Override, TierChanged};

    use super::*;
    use crate::cli::When;

    fn ts(seconds: i64) -> Option<prost_types::Timestamp> {
        Some(prost_types::Timestamp { seconds, nanos: 0 })
    }

    #[test]
    fn response_shows_effective_and_computed_tier() {
        let r = OverrideResponse {
            tier: Some(CustomerTier {
                customer_id: "c-1".into(),
                tier: "A".into(),
                computed_tier: "B".into(),
                overridden: true,
                policy_version: "v7".into(),
                r#override: Some(Override {
                    tier: "A".into(),
                    mode: OverrideMode::Pin.into(),
                    reason: "key account".into(),
                    author: "alice".into(),
                    set_at: None,
                    expires_at: None,
                }),
                ..Default::default()
            }),
            change: Some(TierChanged {
                old_tier: "B".into(),
                new_tier: "A".into(),
                ..Default::default()
            }),
        };
        assert_eq!(
            render_response("c-1", &r),
            "customer        c-1\n\
             effective tier  A\n\
             computed tier   B\n\
             override        pin A until cleared, set by alice: key account\n\
             change          B -> A\n\
             policy          v7\n"
        );
        let cleared = OverrideResponse {
            tier: None,
            change: None,
        };
        let text = render_response("c-2", &cleared);
        assert!(text.starts_with("customer        c-2\n"), "{text}");
        assert!(text.contains("override        none\n"), "{text}");
        assert!(
            text.contains("change          none (the effective tier did not move)\n"),
            "{text}"
        );
    }

    #[test]
    fn history_rows() {
        let h = OverrideHistory {
            customer_id: "c-1".into(),
            entries: vec![
                OverrideHistoryEntry {
                    at: ts(1_767_225_600),
                    action: "set".into(),
                    r#override: Some(Override {
                        tier: "A".into(),
                        mode: OverrideMode::Floor.into(),
                        reason: "key account".into(),
                        author: "alice".into(),
                        set_at: ts(1_767_225_600),
                        expires_at: ts(1_801_353_600),
                    }),
                    reason: String::new(),
                    author: String::new(),
                },
                OverrideHistoryEntry {
                    at: ts(1_767_312_000),
                    action: "cleared".into(),
                    r#override: None,
                    reason: "renegotiated".into(),
                    author: "bob".into(),
                },
            ],
        };
        let text = render_history("c-1", &h);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "at                    action   tier  mode   author  reason        expires"
        );
        assert_eq!(
            lines[2],
            "2026-01-01T00:00:00Z  set      A     floor  alice   key account   2027-01-31T00:00:00Z"
        );
        assert_eq!(
            lines[3],
            "2026-01-02T00:00:00Z  cleared  -     -      bob     renegotiated  -"
        );
        assert_eq!(
            render_history("c-9", &OverrideHistory::default()),
            "no override history for c-9\n"
        );
    }

    #[test]
    fn expiry_from_expires_or_for() {
        let mut args = OverrideSetArgs {
            customer_id: "c".into(),
            tier: "A".into(),
            mode: OverrideModeArg::Ceiling,
            reason: "r".into(),
            author: "a".into(),
            expires: ts(1_801_353_600).map(When::Instant),
            duration: None,
        };
        let shanghai = BusinessCalendar::from_iana("Asia/Shanghai").unwrap();
        let r = set_request(&args, &shanghai).unwrap();
        assert_eq!(r.mode(), OverrideMode::Ceiling);
        assert_eq!(r.expires_at, ts(1_801_353_600));
        // A date: the start of that day in the policy's zone.
        args.expires = Some(When::Date(2027, 1, 31));
        let r = set_request(&args, &shanghai).unwrap();
        assert_eq!(r.expires_at, ts(1_801_353_600 - 8 * 3_600));
        args.expires = None;
        assert_eq!(set_request(&args, &shanghai).unwrap().expires_at, None);
        args.duration = Some(std::time::Duration::from_secs(86_400));
        let now = prost_types::Timestamp::from(std::time::SystemTime::now()).seconds;
        let at = set_request(&args, &shanghai)
            .unwrap()
            .expires_at
            .unwrap()
            .seconds;
        assert!((now + 86_400 - 5..=now + 86_400 + 5).contains(&at), "{at}");
    }
}
