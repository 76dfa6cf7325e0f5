//! `compose/` cannot run here (no Docker engine), so it is checked the way
//! compose and Prometheus would read it: parsed, every service healthy or
//! one-shot, every Tessera setting a real one with the value the scripts
//! and defaults use, and Prometheus scraping all four roles.

use std::collections::BTreeMap;
use std::path::Path;

use serde_yaml::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn yaml(path: &str) -> Value {
    let text = std::fs::read_to_string(root().join(path)).unwrap();
    let mut value: Value =
        serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{path} is not valid YAML: {e}"));
    // compose resolves `<<: *anchor` merge keys; so must we
    value
        .apply_merge()
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    value
}

/// Every setting `tessera --help` documents: its variable and default.
fn settings() -> BTreeMap<String, Option<String>> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .arg("--help")
        .env_clear()
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    let mut out = BTreeMap::new();
    let mut last: Option<String> = None;
    for line in help.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("[env: ") {
            let name = rest
                .trim_end_matches(']')
                .split('=')
                .next()
                .unwrap()
                .to_owned();
            out.insert(name.clone(), None);
            last = Some(name);
        } else if let (Some(rest), Some(name)) = (line.strip_prefix("[default: "), &last) {
            out.insert(name.clone(), Some(rest.trim_end_matches(']').to_owned()));
        }
    }
    assert!(out.len() > 20, "settings parsed from --help: {out:?}");
    out
}

fn services(compose: &Value) -> &serde_yaml::Mapping {
    compose["services"].as_mapping().expect("a services map")
}

fn str_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

#[test]
fn the_compose_file_runs_every_part_with_health_checks() {
    let compose = yaml("compose/docker-compose.yml");
    let services = services(&compose);
    let names: Vec<String> = services.keys().map(str_of).collect();
    for wanted in [
        "postgres",
        "kafka",
        "mongo",
        "redis",
        "migrate",
        "write-api",
        "read-api",
        "relay",
        "projector",
        "prometheus",
    ] {
        assert!(names.iter().any(|n| n == wanted), "{wanted} in {names:?}");
    }
    for (name, service) in services {
        let name = str_of(name);
        let check = &service["healthcheck"];
        if name == "migrate" {
            // one-shot: the roles wait for it to complete instead
            assert_eq!(check["disable"], Value::Bool(true));
            assert_eq!(service["restart"], Value::String("no".into()));
            continue;
        }
        let test = check["test"].as_sequence();
        assert!(
            test.is_some_and(|t| t.len() >= 2),
            "{name} has a health check: {check:?}"
        );
    }
    // the roles run the tessera binary's commands and wait for what they need
    for (role, needs) in [
        ("write-api", vec!["migrate"]),
        ("relay", vec!["migrate", "kafka"]),
        ("projector", vec!["kafka", "mongo", "redis"]),
        ("read-api", vec!["mongo", "redis"]),
    ] {
        let s = &services[role];
        assert_eq!(s["command"][0], Value::String(role.into()));
        assert_eq!(s["image"], Value::String("tessera:local".into()));
        for need in needs {
            assert!(
                s["depends_on"][need]["condition"].is_string(),
                "{role} waits for {need}"
            );
        }
        let probe = s["healthcheck"]["test"].as_sequence().unwrap();
        assert!(
            probe.iter().any(|p| str_of(p).ends_with(":8080/readyz")),
            "{probe:?}"
        );
    }
    // Kafka in KRaft mode, MongoDB as a single-node replica set
    let kafka = &services["kafka"]["environment"];
    assert_eq!(
        kafka["KAFKA_PROCESS_ROLES"],
        Value::String("broker,controller".into())
    );
    let mongo = services["mongo"]["command"].as_sequence().unwrap();
    assert!(mongo.contains(&Value::String("--replSet".into())));
    let uri = str_of(&services["write-api"]["environment"]["TESSERA_MONGODB_URI"]);
    assert!(uri.contains("replicaSet=rs0"), "{uri}");
}

#[test]
fn compose_and_the_scripts_only_use_real_settings_with_the_same_values() {
    let settings = settings();
    let compose = yaml("compose/docker-compose.yml");
    let services = services(&compose);
    let env = services["write-api"]["environment"].as_mapping().unwrap();
    // the address inside a container must listen beyond loopback; the rest
    // of what has a default keeps it, so compose and the scripts (which
    // rely on the defaults) run with the same topic, partitions and database
    let differs_on_purpose = ["TESSERA_HTTP_ADDR"];
    for (k, v) in env {
        let (k, v) = (str_of(k), str_of(v));
        let Some(default) = settings.get(&k) else {
            panic!("{k} in compose is not a tessera setting");
        };
        if let Some(default) = default {
            if !differs_on_purpose.contains(&k.as_str()) {
                assert_eq!(&v, default, "{k} in compose differs from the default");
            }
        }
    }
    for role in ["write-api", "read-api", "relay", "projector", "migrate"] {
        assert_eq!(
            services[role]["environment"].as_mapping(),
            Some(env),
            "{role} shares the one settings block"
        );
    }
    // the scripts set only real settings too
    let not_settings = [
        "TESSERA_ROOT",
        "TESSERA_CACHE_DIR",
        "TESSERA_SERVICES_DIR",
        "TESSERA_MACHINE",
        "TESSERA_BUILD_CACHE_GB",
    ];
    for entry in std::fs::read_dir(root().join("scripts")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        for (i, _) in text.match_indices("TESSERA_") {
            let name: String = text[i..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            if name.starts_with("TESSERA_TEST_") || not_settings.contains(&name.as_str()) {
                continue;
            }
            assert!(
                settings.contains_key(&name),
                "{} uses {name}, which tessera --help does not list",
                path.display()
            );
        }
    }
}

#[test]
fn prometheus_scrapes_metrics_of_all_four_roles() {
    let compose = yaml("compose/docker-compose.yml");
    let services = services(&compose);
    let prometheus = &services["prometheus"];
    let mounts: Vec<String> = prometheus["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(str_of)
        .collect();
    assert!(
        mounts
            .iter()
            .any(|m| m.starts_with("./prometheus/prometheus.yml:")),
        "{mounts:?}"
    );
    let config = yaml("compose/prometheus/prometheus.yml");
    let jobs = config["scrape_configs"].as_sequence().unwrap();
    let port = str_of(&services["write-api"]["environment"]["TESSERA_HTTP_ADDR"])
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();
    let mut targets = Vec::new();
    for job in jobs {
        assert_eq!(job["metrics_path"], Value::String("/metrics".into()));
        for sc in job["static_configs"].as_sequence().unwrap() {
            targets.extend(sc["targets"].as_sequence().unwrap().iter().map(str_of));
        }
    }
    targets.sort();
    let mut wanted: Vec<String> = ["projector", "read-api", "relay", "write-api"]
        .iter()
        .map(|r| format!("{r}:{port}"))
        .collect();
    wanted.sort();
    assert_eq!(targets, wanted);
    for target in &targets {
        let service = target.split(':').next().unwrap();
        assert!(
            services.contains_key(service),
            "{service} is a compose service"
        );
    }
}

#[test]
fn grafana_shows_the_dashboard_and_prometheus_loads_the_alerts() {
    let compose = yaml("compose/docker-compose.yml");
    let services = services(&compose);
    let mounts = |service: &str| -> Vec<String> {
        services[service]["volumes"]
            .as_sequence()
            .unwrap_or_else(|| panic!("{service} mounts nothing"))
            .iter()
            .map(str_of)
            .collect()
    };
    // every mounted file or folder exists beside the compose file
    for service in ["prometheus", "grafana"] {
        for mount in mounts(service) {
            let Some(local) = mount.split(':').next().filter(|m| m.starts_with("./")) else {
                continue;
            };
            assert!(
                root().join("compose").join(local).exists(),
                "{service} mounts {local}, which compose/ lacks"
            );
        }
    }
    let prometheus = mounts("prometheus");
    let config = yaml("compose/prometheus/prometheus.yml");
    for rules in config["rule_files"].as_sequence().expect("rule files") {
        let rules = str_of(rules);
        assert!(
            prometheus
                .iter()
                .any(|m| m.ends_with(&format!("/etc/prometheus/{rules}:ro"))),
            "{rules} is not mounted beside prometheus.yml: {prometheus:?}"
        );
    }
    let grafana = mounts("grafana");
    assert!(grafana
        .iter()
        .any(|m| m.starts_with("./grafana/provisioning:/etc/grafana/provisioning")));
    let provider = yaml("compose/grafana/provisioning/dashboards/tessera.yml");
    let folder = str_of(&provider["providers"][0]["options"]["path"]);
    assert!(
        grafana
            .iter()
            .any(|m| m.starts_with(&format!("./grafana/dashboards:{folder}"))),
        "the dashboards are mounted where the provider reads them: {grafana:?}"
    );
    // the dashboard reads the provisioned data source
    let datasource = yaml("compose/grafana/provisioning/datasources/prometheus.yml");
    let uid = str_of(&datasource["datasources"][0]["uid"]);
    let url = str_of(&datasource["datasources"][0]["url"]);
    assert!(url.contains("prometheus:9090"), "{url}");
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("compose/grafana/dashboards/tessera.json")).unwrap(),
    )
    .expect("the dashboard is JSON");
    for panel in dashboard["panels"].as_array().unwrap() {
        if panel["type"] != "row" {
            assert_eq!(
                panel["datasource"]["uid"],
                uid.as_str(),
                "{}",
                panel["title"]
            );
        }
    }
}
