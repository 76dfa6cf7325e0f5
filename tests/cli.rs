//! The command line beyond the roles: `tessera doctor` against the real
//! servers and against ports where nothing listens, the TOML config file
//! and what wins over it, shell completions.

use crate::common;

use base64::Engine as _;
use common::{cli, cli_json, cli_ok};
use serde_json::Value;
use tessera_testkit::{free_port, KafkaTopic, MongoDatabase, PgDatabase};

fn check<'a>(report: &'a Value, dependency: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["dependency"] == dependency)
        .unwrap_or_else(|| panic!("no {dependency} check in {report:#}"))
}

fn printed(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test]
async fn doctor_checks_every_configured_server_and_names_missing_migrations() {
    let pg = PgDatabase::create().await;
    let kafka = KafkaTopic::create();
    let mongo = MongoDatabase::create();
    let mut env = vec![
        ("TESSERA_DATABASE_URL", pg.url().to_owned()),
        ("TESSERA_KAFKA_BROKERS", kafka.brokers.clone()),
        ("TESSERA_KAFKA_TOPIC", kafka.topic.clone()),
        ("TESSERA_MONGODB_URI", mongo.uri.clone()),
        ("TESSERA_MONGODB_DATABASE", mongo.name.clone()),
    ];
    let redis = std::env::var("TESSERA_TEST_REDIS_URL").ok();
    if let Some(url) = &redis {
        env.push(("TESSERA_REDIS_URL", url.clone()));
    }
    // a fresh database: reachable, but not migrated
    let out = cli(&env, &["doctor", "--json"]);
    assert!(!out.status.success(), "{}", printed(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    assert_eq!(report["ok"], false);
    let pg_check = check(&report, "postgresql");
    assert_eq!(pg_check["ok"], false, "{pg_check}");
    let problem = pg_check["problem"].as_str().unwrap();
    assert!(problem.contains("tessera migrate"), "{problem}");
    assert!(pg_check["version"].as_str().is_some_and(|v| !v.is_empty()));
    for dependency in ["kafka", "mongodb"] {
        assert_eq!(check(&report, dependency)["ok"], true, "{report:#}");
    }
    if redis.is_some() {
        let r = check(&report, "redis");
        assert_eq!(r["ok"], true, "{r}");
        assert!(r["version"].as_str().is_some(), "{r}");
    }
    // nothing secret is printed
    assert!(!String::from_utf8_lossy(&out.stdout).contains(pg.url()));

    cli_ok(&env, &["migrate"]);
    let report = cli_json(&env, &["doctor", "--json"]);
    assert_eq!(report["ok"], true, "{report:#}");
    let details = check(&report, "postgresql")["details"].to_string();
    let applied = details
        .split("migrations ")
        .nth(1)
        .and_then(|s| s.split(" applied").next())
        .unwrap_or_else(|| panic!("no migration count in {details}"));
    let (done, known) = applied.split_once('/').unwrap();
    assert_eq!(done, known, "{details}");
    assert!(details.contains("clock skew"), "{details}");
    // the table names each dependency and its state
    let table = cli_ok(&env, &["doctor"]);
    for line in ["postgresql", "kafka", "mongodb"] {
        assert!(
            table
                .lines()
                .any(|l| l.starts_with(line) && l.contains(" ok ")),
            "{line} not ok in:\n{table}"
        );
    }
}

#[test]
fn doctor_says_plainly_what_does_not_answer() {
    let (pg, kafka, redis) = (free_port(), free_port(), free_port());
    let env = [
        (
            "TESSERA_DATABASE_URL",
            format!("postgres://tessera:secret-pw@127.0.0.1:{pg}/tessera"),
        ),
        ("TESSERA_KAFKA_BROKERS", format!("127.0.0.1:{kafka}")),
        ("TESSERA_REDIS_URL", format!("redis://127.0.0.1:{redis}")),
    ];
    let started = std::time::Instant::now();
    let out = cli(&env, &["doctor"]);
    let text = printed(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    for sentence in [
        format!("postgresql: cannot connect to PostgreSQL at 127.0.0.1:{pg}/tessera"),
        format!("kafka: cannot reach the Kafka brokers at 127.0.0.1:{kafka}"),
        format!("redis: cannot reach Redis at redis://127.0.0.1:{redis}"),
    ] {
        assert!(text.contains(&sentence), "{sentence:?} not in:\n{text}");
    }
    assert!(text.contains("3 dependencies have a problem"), "{text}");
    assert!(!text.contains("secret-pw"), "{text}");
}

#[test]
fn doctor_checks_the_embedded_files_when_no_server_is_configured() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("TESSERA_DATA_DIR", dir.path().display().to_string())];
    let fresh = cli_json(&env, &["doctor", "--json"]);
    assert_eq!(fresh["ok"], true, "{fresh:#}");
    assert!(
        check(&fresh, "embedded")["details"]
            .to_string()
            .contains("no event store yet"),
        "{fresh:#}"
    );
    cli_ok(&env, &["migrate"]);
    let migrated = cli_json(&env, &["doctor", "--json"]);
    let embedded = check(&migrated, "embedded");
    assert_eq!(embedded["ok"], true, "{embedded}");
    assert!(
        embedded["version"]
            .as_str()
            .is_some_and(|v| v.starts_with("sqlite 3")),
        "{embedded}"
    );
    assert!(
        embedded["details"].to_string().contains("applied"),
        "{embedded}"
    );
}

/// The claims of a token `admin token --json` printed.
fn claims(token_json: &str) -> (Value, Value) {
    let answer: Value = serde_json::from_str(token_json).unwrap();
    let token = answer["access_token"].as_str().unwrap();
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    (serde_json::from_slice(&bytes).unwrap(), answer)
}

#[test]
fn a_config_file_gives_what_flags_and_the_environment_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tessera.toml");
    std::fs::write(
        &file,
        "# settings by flag name or by variable\n\
         jwt_issuer = \"from-file\"\n\
         TESSERA_JWT_AUDIENCE = \"audience-from-file\"\n\
         token-ttl-seconds = 77\n",
    )
    .unwrap();
    let file = file.display().to_string();
    let data = [("TESSERA_DATA_DIR", dir.path().display().to_string())];
    let token = ["admin", "token", "--user", "u1", "--json"];

    let by_flag: Vec<&str> = ["--config", file.as_str()]
        .into_iter()
        .chain(token)
        .collect();
    let (c, answer) = claims(&cli_ok(&data, &by_flag));
    assert_eq!(c["iss"], "from-file");
    assert_eq!(c["aud"], "audience-from-file");
    assert_eq!(answer["expires_in"], 77);

    // TESSERA_CONFIG names the file as well; the environment wins over it
    let mut env = data.to_vec();
    env.push(("TESSERA_CONFIG", file.clone()));
    env.push(("TESSERA_JWT_ISSUER", "from-env".to_owned()));
    let (c, _) = claims(&cli_ok(&env, &token));
    assert_eq!(c["iss"], "from-env");
    assert_eq!(c["aud"], "audience-from-file");

    // and a flag wins over both
    let with_flag: Vec<&str> = ["--jwt-issuer", "from-flag"]
        .into_iter()
        .chain(token)
        .collect();
    let (c, _) = claims(&cli_ok(&env, &with_flag));
    assert_eq!(c["iss"], "from-flag");

    // without the file, the defaults
    let (c, answer) = claims(&cli_ok(&data, &token));
    assert_eq!(c["iss"], "tessera");
    assert_eq!(answer["expires_in"], 3600);
}

#[test]
fn a_config_file_that_names_no_setting_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (text, says) in [
        (
            "htp_addr = \"127.0.0.1:1\"\n",
            "\"htp_addr\", which is no setting",
        ),
        (
            "http_addr = [1, 2]\n",
            "a setting is a string, number or boolean",
        ),
        ("http_addr = \n", "is not TOML"),
    ] {
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, text).unwrap();
        let out = cli(&[], &["--config", &file.display().to_string(), "doctor"]);
        assert!(!out.status.success(), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{text}: {err}");
    }
    let out = cli(&[], &["--config", "/nonexistent/tessera.toml", "doctor"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read the config file"));
}

#[test]
fn completions_cover_every_command() {
    for shell in ["bash", "zsh", "fish"] {
        let script = cli_ok(&[], &["completions", shell]);
        for word in ["serve", "doctor", "admin", "rebuild", "config"] {
            assert!(script.contains(word), "{shell} completions lack {word}");
        }
    }
    assert!(!cli(&[], &["completions", "cmd.exe"]).status.success());
}
