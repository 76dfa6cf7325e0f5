//! What operators look at: the Grafana dashboard and the Prometheus alert
//! rules in `compose/` name only series the processes export (checked on
//! the running production roles after the API contract ran through them),
//! and the rules are what Prometheus accepts and alert as their unit tests
//! say (`promtool`, from Debian's `prometheus` package, which `scripts/test`
//! installs and names in `TESSERA_TEST_PROMTOOL`).

use crate::common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use common::stack::{Stack, Topology};
use common::{accounts_and_guilds, board_and_commerce};
use serde_json::Value;

fn compose(path: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("compose")
        .join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every PromQL expression of the dashboard.
fn dashboard_expressions() -> Vec<String> {
    let dashboard: Value = serde_json::from_str(&compose("grafana/dashboards/tessera.json"))
        .expect("the dashboard is JSON");
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            out.push(target["expr"].as_str().expect("an expression").to_owned());
        }
    }
    out
}

/// Every expression of the alert rules.
fn rule_expressions() -> Vec<String> {
    let rules: serde_yaml::Value =
        serde_yaml::from_str(&compose("prometheus/rules.yml")).expect("the rules are YAML");
    let mut out = Vec::new();
    for group in rules["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            out.push(rule["expr"].as_str().expect("an expression").to_owned());
        }
    }
    out
}

/// The metric names an expression reads. Tessera's series all start with
/// `tessera_` and no label or function does; `up` is Prometheus's own.
fn metric_names(expr: &str) -> BTreeSet<String> {
    expr.match_indices("tessera_")
        .filter(|(i, _)| {
            // a name, not the tail of a longer word
            !expr[..*i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        })
        .map(|(i, _)| {
            expr[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

/// The series names in a Prometheus text exposition.
fn exported(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn the_dashboard_and_the_rules_cover_what_operators_asked_for() {
    let dashboard: BTreeSet<String> = dashboard_expressions()
        .iter()
        .flat_map(|e| metric_names(e))
        .collect();
    for wanted in [
        "tessera_commands_total",
        "tessera_command_duration_seconds_bucket",
        "tessera_events_appended_total",
        "tessera_relay_lag_events",
        "tessera_projector_lag_seconds",
        "tessera_dead_letters_total",
        "tessera_http_requests_total",
        "tessera_streams_open",
    ] {
        assert!(
            dashboard.contains(wanted),
            "the dashboard shows no {wanted}"
        );
    }
    let rules = rule_expressions().join("\n");
    for wanted in [
        "tessera_relay_lag_events",
        "tessera_projector_lag_seconds",
        "tessera_dead_letters_total",
        "tessera_http_requests_total",
        "up{job=\"tessera\"}",
    ] {
        assert!(rules.contains(wanted), "no alert reads {wanted}");
    }
    assert_eq!(
        metric_names("sum(rate(tessera_a_total{x=\"y\"}[5m])) / my_tessera_c"),
        BTreeSet::from(["tessera_a_total".to_owned()]),
    );
}

#[tokio::test]
async fn every_series_the_dashboard_and_the_rules_name_is_exported() {
    let stack = Stack::distributed(Topology::PIPELINE, &[]).await;
    accounts_and_guilds(&stack.client).await;
    board_and_commerce(&stack.client, &stack.admin).await;
    stack.wait_caught_up().await;
    let mut series = BTreeSet::new();
    for process in stack
        .writers
        .iter()
        .chain(&stack.readers)
        .chain(&stack.relays)
        .chain(&stack.projectors)
    {
        let text = reqwest::get(format!("{}/metrics", process.addr))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        series.extend(exported(&text));
    }
    let mut missing = Vec::new();
    for (what, exprs) in [
        ("dashboard", dashboard_expressions()),
        ("rules", rule_expressions()),
    ] {
        for expr in exprs {
            for name in metric_names(&expr) {
                if !series.contains(&name) {
                    missing.push(format!("{what}: {name} (in {expr})"));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "series no process exports:\n{}\nexported: {series:?}",
        missing.join("\n")
    );
}

fn promtool(args: &[&str]) -> std::process::Output {
    let promtool = std::env::var("TESSERA_TEST_PROMTOOL").expect(
        "TESSERA_TEST_PROMTOOL names promtool (Debian's prometheus package): run the suite with scripts/test",
    );
    Command::new(promtool)
        .args(args)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("compose/prometheus"))
        .output()
        .expect("promtool runs")
}

#[test]
fn promtool_accepts_the_rules_and_their_unit_tests_pass() {
    for args in [
        &["check", "rules", "rules.yml"][..],
        &["check", "config", "prometheus.yml"][..],
        &["test", "rules", "rules.test.yml"][..],
    ] {
        let out = promtool(args);
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
