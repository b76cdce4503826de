//! `movers`: tier changes in a period, newest first (`ListTierMovers`),
//! all of them or only upgrades or downgrades (as the policy in force
//! orders its tiers).

use anyhow::{Result, bail};
use tier_core::time::BusinessCalendar;
use tier_proto::api::{ListTierMoversRequest, ListTierMoversResponse, MoveDirection};

use super::{RpcOptions, emit, proto_json_line};
use crate::cli::{DirectionArg, MoversArgs, Output};
use crate::format::{Table, cause_name, fixed, proto_millis, proto_time, tier_move};

impl From<DirectionArg> for MoveDirection {
    fn from(d: DirectionArg) -> Self {
        match d {
            DirectionArg::Up => MoveDirection::Up,
            DirectionArg::Down => MoveDirection::Down,
            DirectionArg::Any => MoveDirection::Any,
        }
    }
}

/// The request `movers` sends, dates read in `calendar` (the policy's
/// zone); refused when `--until` is before `--since`.
pub fn request(args: &MoversArgs, calendar: &BusinessCalendar) -> Result<ListTierMoversRequest> {
    let since = args.since.resolve(calendar);
    let until = args.until.map(|u| u.resolve(calendar));
    if let Some(until) = &until
        && proto_millis(until) < proto_millis(&since)
    {
        bail!(
            "--until ({}) is before --since ({})",
            proto_time(Some(until)),
            proto_time(Some(&since))
        );
    }
    Ok(ListTierMoversRequest {
        since: Some(since),
        until,
        direction: MoveDirection::from(args.direction).into(),
        limit: crate::cli::page_limit(args.limit, args.all),
        page_token: String::new(),
    })
}

pub async fn run(rpc: &RpcOptions, args: &MoversArgs) -> Result<()> {
    let calendar = rpc.calendar_for(&[Some(args.since), args.until]).await?;
    let mut request = request(args, &calendar)?;
    let mut client = rpc.connect().await?;
    let mut movers = ListTierMoversResponse::default();
    // One page, or with --all every page (keyset pages: each change once).
    loop {
        let page = client
            .list_tier_movers(rpc.request(request.clone()))
            .await
            .map_err(|s| rpc.rpc_error(s))?
            .into_inner();
        movers.movers.extend(page.movers);
        movers.total = page.total;
        movers.next_page_token = page.next_page_token;
        if !args.all || movers.next_page_token.is_empty() {
            break;
        }
        request.page_token.clone_from(&movers.next_page_token);
    }

    match rpc.output {
        Output::Json => emit(&proto_json_line(
            &movers,
            "tiering.v1.ListTierMoversResponse",
        )?),
        Output::Table => emit(&render(&movers, args.direction)),
    }
}

/// What the list holds, plural.
fn noun(direction: DirectionArg) -> &'static str {
    match direction {
        DirectionArg::Up => "upgrades",
        DirectionArg::Down => "downgrades",
        DirectionArg::Any => "tier changes",
    }
}

/// One row per change, newest first: customer, at, from -> to, cause,
/// score; then a line with the total when the list was cut.
pub fn render(r: &ListTierMoversResponse, direction: DirectionArg) -> String {
    let total = usize::try_from(r.total).unwrap_or(usize::MAX);
    if r.movers.is_empty() {
        return format!("no {} in the period\n", noun(direction));
    }
    let mut table = Table::new(["customer", "at", "change", "cause", "score"]).right(&[4]);
    for m in &r.movers {
        let Some(s) = &m.step else {
            table.row([m.customer_id.clone(), "-".to_owned()]);
            continue;
        };
        table.row([
            m.customer_id.clone(),
            proto_time(s.at.as_ref()),
            tier_move(&s.from_tier, &s.to_tier),
            cause_name(s.cause),
            fixed(s.score, 2),
        ]);
    }
    let mut out = table.render();
    if total > r.movers.len() {
        out.push_str(&format!(
            "showing {} of {total} {} (--all lists every one)\n",
            r.movers.len(),
            noun(direction)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::When;
    use tier_proto::api::{ChangeCause, TierMover, TierStep};

    fn ts(seconds: i64) -> prost_types::Timestamp {
        prost_types::Timestamp { seconds, nanos: 0 }
    }

    #[test]
    fn table_and_request() {
        let mover = |id: &str, from: &str, to: &str| TierMover {
            customer_id: id.into(),
            step: Some(TierStep {
                at: Some(ts(1_767_225_600)),
                from_tier: from.into(),
                to_tier: to.into(),
                score: 41.5,
                cause: ChangeCause::Event as i32,
                overridden: false,
                sequence: 4,
            }),
        };
        let r = ListTierMoversResponse {
            movers: vec![mover("c-1", "A", "B"), mover("c-22", "", "D")],
            total: 3,
            next_page_token: "m1.next".into(),
        };
        assert_eq!(
            render(&r, DirectionArg::Any),
            "customer  at                    change       cause  score\n\
             --------  --------------------  -----------  -----  -----\n\
             c-1       2026-01-01T00:00:00Z  A -> B       event  41.50\n\
             c-22      2026-01-01T00:00:00Z  (none) -> D  event  41.50\n\
             showing 2 of 3 tier changes (--all lists every one)\n"
        );
        assert_eq!(
            render(&ListTierMoversResponse::default(), DirectionArg::Up),
            "no upgrades in the period\n"
        );

        let shanghai = BusinessCalendar::from_iana("Asia/Shanghai").unwrap();
        let mut args = MoversArgs {
            since: When::Instant(ts(1_767_225_600)),
            until: None,
            direction: DirectionArg::Down,
            limit: Some(5),
            all: false,
        };
        let req = request(&args, &shanghai).unwrap();
        assert_eq!(req.direction(), MoveDirection::Down);
        assert_eq!(
            (req.since, req.until, req.limit),
            (Some(ts(1_767_225_600)), None, 5)
        );
        args.until = Some(When::Instant(ts(1_767_225_599)));
        assert_eq!(
            request(&args, &shanghai).unwrap_err().to_string(),
            "--until (2025-12-31T23:59:59Z) is before --since (2026-01-01T00:00:00Z)"
        );
        // Dates: the starts of those days in the policy's zone.
        args.since = When::Date(2026, 1, 1);
        args.until = Some(When::Date(2026, 2, 1));
        let req = request(&args, &shanghai).unwrap();
        assert_eq!(
            (req.since, req.until),
            (
                Some(ts(1_767_225_600 - 8 * 3_600)),
                Some(ts(1_769_904_000 - 8 * 3_600))
            )
        );
    }
}
