//! Every `tierctl` command line README shows (in code blocks and inline
//! code, also as `cargo run -p tierctl -- ...`) parses with the real
//! command line: a renamed flag or subcommand fails here, not in a user's
//! terminal.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use clap::Parser as _;
use tierctl::cli::Cli;

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap()
}

/// Split a command line like a POSIX shell would for these examples:
/// whitespace separates, single and double quotes group.
fn split(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                any = true;
            }
            (None, c) if c.is_whitespace() => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            (None, c) => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The tierctl invocations of README: lines of fenced blocks and inline
/// code spans that run tierctl, without trailing `# comments`.
fn invocations(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut fenced = false;
    // Prose between fences, lines joined: an inline span may wrap.
    let mut prose = String::new();
    let spans = |prose: &mut String, lines: &mut Vec<String>| {
        lines.extend(prose.split('`').skip(1).step_by(2).map(str::to_owned));
        prose.clear();
    };
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            spans(&mut prose, &mut lines);
            fenced = !fenced;
            continue;
        }
        if fenced {
            lines.push(line.trim().to_owned());
        } else {
            prose.push_str(line);
            prose.push(' ');
        }
    }
    spans(&mut prose, &mut lines);
    lines
        .into_iter()
        .filter_map(|l| {
            let l = match l.find(" #") {
                Some(i) => l[..i].trim().to_owned(),
                None => l,
            };
            let rest = l
                .strip_prefix("tierctl ")
                .map(str::to_owned)
                .or_else(|| l.split_once("-p tierctl -- ").map(|(_, r)| r.to_owned()))?;
            Some(format!("tierctl {rest}"))
        })
        .collect()
}

#[test]
fn every_tierctl_command_in_the_readme_parses() {
    let all = invocations(&readme());
    assert!(
        all.len() >= 20,
        "found only {} tierctl lines: {all:?}",
        all.len()
    );
    let mut failures = Vec::new();
    for line in &all {
        if let Err(e) = Cli::try_parse_from(split(line)) {
            failures.push(format!(
                "{line}\n    {}",
                e.to_string().lines().next().unwrap_or("")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "README shows tierctl commands that do not parse:\n{}",
        failures.join("\n")
    );
}

#[test]
fn the_splitter_and_the_finder_work() {
    assert_eq!(
        split(r#"tierctl override set c-1 --reason "strategic account" --author 'li wei'"#),
        [
            "tierctl",
            "override",
            "set",
            "c-1",
            "--reason",
            "strategic account",
            "--author",
            "li wei"
        ]
    );
    let found = invocations(
        "```sh\ntierctl distribution        # the Pareto check\ncargo run --release -p tierctl -- watch\n```\nsee `tierctl at-risk` and `tierd`",
    );
    assert_eq!(
        found,
        ["tierctl distribution", "tierctl watch", "tierctl at-risk"]
    );
    // A broken line is caught.
    assert!(Cli::try_parse_from(split("tierctl override sett c-1")).is_err());
}
