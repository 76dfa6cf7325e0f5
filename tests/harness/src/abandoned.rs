//! Servers whose test was killed before its drop guards ran (an interrupted
//! run, a timeout): each server's folder names the test process that owns
//! it, and the next test to start a server of the same kind stops and
//! removes what a dead process left.
//!
//! Servers the harness spawns itself die with their test anyway
//! ([`owned_command`](crate::owned_command)); `pg_ctl` runs PostgreSQL in
//! the background, so a cluster outlives its test. One left behind may
//! still be SIGSTOPped by a fault test, holding its port, its memory and
//! two hundred connection slots.

use std::path::{Path, PathBuf};

use crate::{postmaster_pid, tempfile_dir, PgCluster};

/// The file in a server's folder that names the test process owning it.
const OWNER_FILE: &str = "owner.pid";

pub(crate) fn claim(dir: &Path) {
    std::fs::write(dir.join(OWNER_FILE), std::process::id().to_string())
        .expect("writes the owner file");
}

/// Folders `{prefix}_*` in the temp folder whose test process is gone.
fn of_dead_owners(prefix: &str) -> Vec<PathBuf> {
    owned_by(prefix, |pid| !Path::new(&format!("/proc/{pid}")).exists())
}

/// Folders `{prefix}_*` in the temp folder whose owner passes `owner`. A
/// folder without an owner file is being made, or is not ours: left out.
fn owned_by(prefix: &str, owner: impl Fn(u32) -> bool) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return Vec::new();
    };
    let prefix = format!("{prefix}_");
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .filter(|dir| {
            std::fs::read_to_string(dir.join(OWNER_FILE))
                .ok()
                .and_then(|pid| pid.trim().parse().ok())
                .is_some_and(&owner)
        })
        .collect()
}

/// Stops the PostgreSQL clusters of dead tests (resumed first, if paused)
/// and removes their folders.
pub(crate) fn stop_clusters(pg_bin: &str) {
    for dir in of_dead_owners("tessera_pg") {
        // only a postmaster of this folder is signalled: the pid file of a
        // cluster that crashed may name a process that reused its pid
        let running = postmaster_of(&dir);
        // renamed first, so that one test stops it when several look at once;
        // the new name still matches, should this cleanup be cut short
        let Some(dir) = take(&dir) else {
            continue;
        };
        if running {
            drop(PgCluster {
                port: 0,
                dir: dir.clone(),
                bin: pg_bin.to_owned(),
                _tmp: Some(tempfile_dir::TempDir(dir)),
            });
        } else {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Whether the pid file in `dir` names a live postmaster of `dir`.
fn postmaster_of(dir: &Path) -> bool {
    let data = dir.join("data");
    postmaster_pid(dir)
        .and_then(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).ok())
        .is_some_and(|cmdline| {
            String::from_utf8_lossy(&cmdline).contains(data.to_string_lossy().as_ref())
        })
}

/// Moves an abandoned folder out of the others' way; `None` when another
/// test took it first.
fn take(dir: &Path) -> Option<PathBuf> {
    let taken = std::env::temp_dir().join(crate::unique("tessera_pg_stopping"));
    std::fs::rename(dir, &taken).ok().map(|()| taken)
}

/// Removes the folders of dead tests' servers that died with them.
pub(crate) fn remove_folders(prefix: &str) {
    for dir in of_dead_owners(prefix) {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    use std::time::Duration;

    use super::*;
    use crate::{listening, wait_until, DocServer};

    /// Set for the child half only, so that it never runs on its own.
    const CHILD: &str = "TESSERA_TEST_ABANDONED_CHILD";

    /// The child half of [`servers_of_a_killed_test_are_stopped`]: starts
    /// a paused cluster and a document server, says their ports, and waits
    /// to be killed.
    #[tokio::test]
    #[ignore = "run by servers_of_a_killed_test_are_stopped"]
    async fn child_holding_servers() {
        if std::env::var_os(CHILD).is_none() {
            return;
        }
        let cluster = PgCluster::start();
        cluster.pause();
        let docs = DocServer::start().await;
        println!("ports {} {}", cluster.port, docs.port);
        tokio::time::sleep(Duration::from_secs(120)).await;
    }

    #[tokio::test]
    async fn servers_of_a_killed_test_are_stopped() {
        // owned: a failing assertion below must not leave it running
        let mut child = crate::owned_command(std::env::current_exe().unwrap())
            .args(["--exact", "abandoned::tests::child_holding_servers"])
            .args(["--ignored", "--nocapture"])
            .env(CHILD, "1")
            .stdout(Stdio::piped())
            .spawn()
            .expect("the test binary runs again");
        let out = child.stdout.take().unwrap();
        let ports = tokio::task::spawn_blocking(move || {
            BufReader::new(out)
                .lines()
                .map_while(Result::ok)
                // libtest running one test at a time (one CPU, or a CPU
                // quota under one) prints the test's name on the same line
                .find_map(|l| l.split_once("ports ").map(|(_, p)| p.to_owned()))
        })
        .await
        .unwrap()
        .expect("the child test started its servers");
        let [pg, docs]: [u16; 2] = ports
            .split(' ')
            .map(|p| p.parse().unwrap())
            .collect::<Vec<_>>()
            .try_into()
            .unwrap();
        let child_pid = child.id();
        let folders = owned_by("tessera", |pid| pid == child_pid);
        assert_eq!(folders.len(), 2, "a cluster and a document server");

        child.kill().unwrap(); // SIGKILL: no drop guard runs
        child.wait().unwrap();
        // the paused cluster outlives its test (checked at once: another
        // test starting a cluster now would stop it)...
        assert!(listening(pg).await, "the abandoned cluster still listens");
        assert!(folders.iter().all(|f| f.exists()));
        // ...the document server dies with it...
        wait_until(
            Duration::from_secs(10),
            "the document server stops",
            || async move { !listening(docs).await },
        )
        .await;
        // ...and the next test to start servers stops and removes the rest
        let _cluster = PgCluster::start();
        assert!(!listening(pg).await, "the abandoned cluster is stopped");
        let _docs = DocServer::start().await;
        for folder in &folders {
            assert!(!folder.exists(), "{} is removed", folder.display());
        }
    }
}
