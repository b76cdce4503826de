//! README's configuration reference against the real command line: every
//! flag `tierd --help` knows is in the table, every flag in the table
//! exists, each reads the environment variable the README promises
//! (`TIERD_<FLAG>`), and the defaults the table states are the defaults
//! tierd runs with. The table cannot drift from the binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use clap::{CommandFactory as _, Parser as _};

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap()
}

/// The rows of the table under `## Configuration`: (flags, default).
fn table() -> Vec<(Vec<String>, String)> {
    let text = readme();
    let section = text
        .split("\n## Configuration\n")
        .nth(1)
        .expect("README has a Configuration section");
    let section = section.split("\n## ").next().unwrap();
    section
        .lines()
        .filter(|l| l.starts_with("| `--"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let flags = cells[1]
                .split(',')
                .map(|f| {
                    f.trim()
                        .trim_matches('`')
                        .split_whitespace()
                        .next()
                        .unwrap()
                        .trim_start_matches("--")
                        .to_owned()
                })
                .collect();
            (flags, cells[2].to_owned())
        })
        .collect()
}

#[test]
fn every_flag_is_documented_and_every_documented_flag_exists() {
    let cmd = tierd::Cli::command();
    let real: BTreeSet<String> = cmd
        .get_arguments()
        .filter_map(|a| a.get_long().map(str::to_owned))
        .filter(|l| l != "help" && l != "version")
        .collect();
    let documented: BTreeSet<String> = table().into_iter().flat_map(|(f, _)| f).collect();
    let undocumented: Vec<&String> = real.difference(&documented).collect();
    let unknown: Vec<&String> = documented.difference(&real).collect();
    assert!(
        undocumented.is_empty(),
        "flags missing from README's table: {undocumented:?}"
    );
    assert!(
        unknown.is_empty(),
        "README documents unknown flags: {unknown:?}"
    );

    // Every flag reads TIERD_<FLAG> (dashes as underscores), as promised.
    for arg in cmd.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if long == "help" || long == "version" {
            continue;
        }
        let want = format!("TIERD_{}", long.to_uppercase().replace('-', "_"));
        let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
        assert_eq!(env.as_deref(), Some(want.as_str()), "--{long}");
    }
}

#[test]
fn the_stated_defaults_are_the_real_ones() {
    let config = tierd::Cli::try_parse_from(["tierd"])
        .unwrap()
        .resolve()
        .unwrap();
    let value = serde_json::to_value(&config).unwrap();
    let field = |flag: &str| value.get(flag.replace('-', "_")).cloned();
    let mut checked = 0;
    for (flags, default) in table() {
        // Rows stating literal defaults: `x` or `x`, `y` for two flags.
        let literals: Vec<&str> = default.split('`').skip(1).step_by(2).collect();
        if literals.len() != flags.len()
            || default.starts_with("none")
            || default.starts_with("built-in")
        {
            continue;
        }
        for (flag, literal) in flags.iter().zip(literals) {
            let Some(real) = field(flag) else { continue };
            let real = match real {
                serde_json::Value::String(s) => s,
                serde_json::Value::Array(items) => items
                    .iter()
                    .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                    .collect::<Vec<_>>()
                    .join(","),
                other => other.to_string(),
            };
            assert_eq!(
                real, literal,
                "README states --{flag} defaults to {literal}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} defaults compared");
}
