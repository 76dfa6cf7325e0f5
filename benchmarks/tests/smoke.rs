//! The whole benchmark suite at a tiny size, against the real PostgreSQL:
//! keeps `scripts/bench` working, and its correctness checks honest (each
//! measurement fails when the log or the folded views disagree with what
//! it counted).

use std::time::Duration;

use tessera_bench::suite::{run, SuiteConfig};
use tessera_bench::write::WriteConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_benchmark_runs_and_reports_a_ratio_against_its_baseline() {
    let config = SuiteConfig {
        write: WriteConfig {
            workers: 4,
            accounts_per_worker: 2,
            duration: Duration::from_millis(300),
        },
        rebuild_events: 1_000,
        catchup: tessera_bench::catchup::CatchupConfig {
            accounts: 20,
            charges_per_account: 5,
        },
        ..SuiteConfig::default()
    };
    let report = run(&config).await.expect("the suite runs");
    let titles: Vec<&str> = report.sections.iter().map(|s| s.title.as_str()).collect();
    assert_eq!(report.sections.len(), 8, "{titles:?}");
    for section in &report.sections {
        assert!(section.rows.len() >= 2, "{section:?}");
        assert!((section.rows[0].ratio - 1.0).abs() < f64::EPSILON);
        for row in &section.rows {
            assert!(row.per_second > 0.0, "{row:?}");
            let expected = row.per_second / section.rows[0].per_second;
            assert!((row.ratio - expected).abs() < 1e-9, "{row:?}");
        }
    }
    let grouped = &report.sections[3];
    assert!(grouped.title.contains("50-row"), "{}", grouped.title);
    assert!(
        grouped.rows.iter().any(|r| r.what.contains("group commit")),
        "the command bus beside the 50-row limit: {grouped:?}"
    );
    assert!(
        grouped
            .rows
            .iter()
            .any(|r| r.what.contains("200 commands in flight")),
        "and with the baseline's 4 × 50 rows in flight: {grouped:?}"
    );
    let distinct = &report.sections[4];
    assert!(
        distinct.title.contains("distinct rows"),
        "{}",
        distinct.title
    );
    assert_eq!(distinct.rows.len(), 3, "{distinct:?}");
    let rebuild = &report.sections[5];
    assert!(rebuild.title.contains("1,000 events"), "{}", rebuild.title);
    let catchup = &report.sections[7];
    assert!(catchup.title.contains("120 events"), "{}", catchup.title);
    assert_eq!(
        catchup.rows.len(),
        5,
        "raw, indexed, one event per batch and two projections"
    );
    let markdown = report.markdown();
    assert!(
        markdown.contains("baseline: plain `CqrsFramework::execute`"),
        "{markdown}"
    );
    assert!(markdown.contains(&report.machine.postgres), "{markdown}");
}
