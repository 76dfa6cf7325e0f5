//! Test harness. Each test gets its own PostgreSQL database, MongoDB
//! database, Kafka topic and ports, on the real servers `scripts/services up`
//! starts (its env file names them), so tests run in parallel.
//!
//! A missing server fails the test with a message saying how to start it:
//! a test that cannot reach its server must not pass.

use std::future::Future;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sqlx::{Connection, PgConnection, PgPool};

mod abandoned;

fn required(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set: run the tests with scripts/test, or `source $(scripts/services up)` first"
        )
    })
}

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// Waits until `check` holds, polling every 20 ms; panics with `what` after
/// `timeout`.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A deadline for loops that wait on a condition with mutable state:
/// `loop { if done { break } deadline.tick().await }`.
pub struct Deadline {
    at: tokio::time::Instant,
    timeout: Duration,
    what: String,
}

impl Deadline {
    pub fn new(timeout: Duration, what: impl Into<String>) -> Self {
        Self {
            at: tokio::time::Instant::now() + timeout,
            timeout,
            what: what.into(),
        }
    }

    /// Sleeps a little; panics once the deadline has passed.
    pub async fn tick(&self) {
        assert!(
            tokio::time::Instant::now() < self.at,
            "timed out after {:?} waiting until {}",
            self.timeout,
            self.what
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A free TCP port on loopback (nobody listens on it right now).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on loopback")
}

/// Runs a clean-up to its end from a `Drop`: that runs outside any runtime
/// it could block on, so the clean-up gets a thread and a runtime of its own.
/// A clean-up that cannot run is skipped: the test has its answer already.
fn clean_up(work: impl Future<Output = ()> + Send + 'static) {
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        if let Ok(rt) = rt {
            rt.block_on(work);
        }
    })
    .join();
}

/// A PostgreSQL database of its own, dropped at the end of the test.
pub struct PgDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl PgDatabase {
    pub async fn create() -> Self {
        let admin_url = required("TESSERA_TEST_PG_URL");
        let name = unique("tessera_test");
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .expect("cannot reach PostgreSQL at TESSERA_TEST_PG_URL");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("cannot create a test database");
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url.as_str(), |(b, _)| b);
        let url = format!("{base}/{name}");
        Self {
            admin_url,
            name,
            url,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub async fn pool(&self, max_connections: u32) -> PgPool {
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(max_connections)
            .connect(&self.url)
            .await
            .expect("cannot connect to the test database")
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        clean_up(async move {
            if let Ok(mut c) = PgConnection::connect(&admin_url).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut c)
                    .await;
            }
        });
    }
}

/// A MongoDB database of its own, dropped at the end of the test.
pub struct MongoDatabase {
    pub uri: String,
    pub name: String,
}

impl MongoDatabase {
    pub fn create() -> Self {
        Self {
            uri: required("TESSERA_TEST_MONGODB_URI"),
            name: unique("tessera_test"),
        }
    }
}

impl Drop for MongoDatabase {
    fn drop(&mut self) {
        let uri = self.uri.clone();
        let name = self.name.clone();
        clean_up(async move {
            if let Ok(client) = mongodb::Client::with_uri_str(&uri).await {
                let _ = client.database(&name).drop().await;
            }
        });
    }
}

/// The shared Kafka-compatible broker and a topic of this test's own.
pub struct KafkaTopic {
    pub brokers: String,
    pub topic: String,
}

impl KafkaTopic {
    pub fn create() -> Self {
        Self {
            brokers: required("TESSERA_TEST_KAFKA_BROKERS"),
            topic: unique("tessera_test"),
        }
    }

    /// A consumer group name of this test's own.
    pub fn group(&self, name: &str) -> String {
        format!("{}.{name}", self.topic)
    }
}

/// A broker of the test's own (to stop and start it), on `port`.
pub struct Broker {
    pub port: u16,
    process: Process,
}

impl Broker {
    /// A port to start a broker on later (nothing listens there yet).
    pub fn reserve() -> Self {
        Self {
            port: free_port(),
            process: Process(None),
        }
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub async fn start(&mut self) {
        let bin = required("TESSERA_TEST_TANSU_BIN");
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let mut command = owned_command(bin);
        command
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"]);
        let within = Duration::from_secs(20);
        (self.process)
            .start(command, "tansu", self.port, within, "the broker listens")
            .await;
    }

    /// SIGSTOP: the broker keeps its sockets open and answers nothing.
    pub fn pause(&self) {
        self.process.signal("-STOP");
    }

    /// SIGCONT after [`pause`](Self::pause).
    pub fn resume(&self) {
        self.process.signal("-CONT");
    }

    pub fn stop(&mut self) {
        self.process.stop();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A server process of a test's own, once started.
struct Process(Option<Child>);

impl Process {
    /// Starts `command` with its output dropped and waits up to `within`
    /// until it listens on `port`. The child is kept before the wait, so
    /// that a server which never listens is still stopped with its owner.
    async fn start(
        &mut self,
        mut command: Command,
        name: &str,
        port: u16,
        within: Duration,
        what: &str,
    ) {
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        self.0 = Some(child);
        wait_until(within, what, || listening(port)).await;
    }

    fn signal(&self, signal: &str) {
        let pids: Vec<u32> = self.0.iter().map(Child::id).collect();
        signal_all(signal, &pids);
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The argument list of an env var map, for display in failures.
pub fn describe(env: &[(&str, String)]) -> String {
    env.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// JSON helper for tests.
pub fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).expect("valid JSON")
}

/// A command for a server the test owns: the kernel kills it when the
/// test dies, even by SIGKILL (an interrupted or timed-out run), which drop
/// guards cannot do. `setpriv` (util-linux, on every Debian; without it the
/// command runs as is) sets the parent-death signal and execs the program,
/// so the child keeps its pid. The signal follows the *thread* that spawns
/// the child: spawn from the test's own thread or a runtime worker, not
/// from `spawn_blocking` or a thread of its own, which may end first.
pub fn owned_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    const SETPRIV: &str = "/usr/bin/setpriv";
    if std::path::Path::new(SETPRIV).exists() {
        let mut command = Command::new(SETPRIV);
        command.args(["--pdeathsig", "KILL", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// Sends `signal` (`-STOP`, `-CONT`, `-KILL`, ...) to `pids`.
fn signal_all(signal_name: &str, pids: &[u32]) {
    assert!(
        signal(signal_name, pids),
        "kill {signal_name} {pids:?} failed"
    );
}

/// [`signal_all`] that may fail: whether every pid got it.
fn signal(signal: &str, pids: &[u32]) -> bool {
    pids.is_empty()
        || Command::new("kill")
            .arg(signal)
            .args(pids.iter().map(u32::to_string))
            .status()
            .is_ok_and(|s| s.success())
}

/// Whether a server listens on `port` (a paused one still does: the
/// kernel accepts for it).
async fn listening(port: u16) -> bool {
    tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_ok()
}

/// The postmaster named in the pid file of the cluster in `dir`.
fn postmaster_pid(dir: &std::path::Path) -> Option<u32> {
    std::fs::read_to_string(dir.join("data/postmaster.pid"))
        .ok()
        .and_then(|s| s.lines().next().and_then(|l| l.trim().parse().ok()))
}

/// The children of `pid` (read from /proc).
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so split after ')'
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.push(child);
        }
    }
    out
}

/// A PostgreSQL cluster of the test's own (to restart and pause it), in a
/// temporary folder, on a free port. Needs the server binaries
/// (`TESSERA_TEST_PG_BIN`, which `scripts/services up` exports).
pub struct PgCluster {
    pub port: u16,
    dir: std::path::PathBuf,
    bin: String,
    _tmp: Option<tempfile_dir::TempDir>,
}

mod tempfile_dir {
    /// A folder removed on drop (std only: the harness has no tempfile dependency).
    pub struct TempDir(pub std::path::PathBuf);

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl PgCluster {
    /// `initdb` and start; the cluster answers when this returns.
    pub fn start() -> Self {
        let bin = required("TESSERA_TEST_PG_BIN");
        abandoned::stop_clusters(&bin);
        let port = free_port();
        let dir = std::env::temp_dir().join(unique("tessera_pg"));
        std::fs::create_dir_all(&dir).expect("creates the cluster folder");
        abandoned::claim(&dir);
        let root = is_root();
        if root {
            let status = Command::new("chown")
                .args(["-R", "postgres", &dir.display().to_string()])
                .status()
                .expect("chown runs");
            assert!(status.success());
        }
        let cluster = Self {
            port,
            dir: dir.clone(),
            bin,
            _tmp: Some(tempfile_dir::TempDir(dir)),
        };
        cluster.as_postgres(&format!(
            "{}/initdb -D '{}/data' -A trust -U postgres >'{}/initdb.log' 2>&1",
            cluster.bin,
            cluster.dir.display(),
            cluster.dir.display()
        ));
        cluster.pg_ctl("start");
        cluster
    }

    fn as_postgres(&self, script: &str) {
        let status = if is_root() {
            Command::new("su")
                .args(["postgres", "-s", "/bin/bash", "-c", script])
                .status()
        } else {
            Command::new("bash").args(["-c", script]).status()
        }
        .expect("a shell runs");
        assert!(status.success(), "failed: {script}");
    }

    fn pg_ctl(&self, action: &str) {
        // fsync off: the machine does not crash in these tests, the server
        // does; commits are still written to the OS before they answer
        let opts = format!(
            "-p {} -k '{}' -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off",
            self.port,
            self.dir.display()
        );
        let mode = if action == "start" {
            ""
        } else {
            "-m immediate"
        };
        self.as_postgres(&format!(
            "{}/pg_ctl -D '{}/data' -l '{}/server.log' -w -t 60 {mode} -o \"{opts}\" {action} >/dev/null",
            self.bin,
            self.dir.display(),
            self.dir.display()
        ));
    }

    /// The server's URL for database `db`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates a database and answers its URL.
    pub async fn database(&self, name: &str) -> String {
        let mut admin = PgConnection::connect(&self.url("postgres"))
            .await
            .expect("the test's own cluster answers");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("creates a database");
        self.url(name)
    }

    /// Stops the server at once (no clean shutdown: crash recovery at the
    /// next start) and starts it again.
    pub fn restart(&self) {
        self.pg_ctl("restart");
    }

    fn pids(&self) -> Vec<u32> {
        let Some(main) = postmaster_pid(&self.dir) else {
            return Vec::new();
        };
        let mut all = vec![main];
        all.extend(children(main));
        all
    }

    /// SIGSTOP to the server and its backends: connections stay open and
    /// nothing answers.
    pub fn pause(&self) {
        signal_all("-STOP", &self.pids());
    }

    pub fn resume(&self) {
        signal_all("-CONT", &self.pids());
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        // not asserted: a server that crashed is not paused
        signal("-CONT", &self.pids());
        let script = format!(
            "{}/pg_ctl -D '{}/data' -m immediate stop >/dev/null 2>&1",
            self.bin,
            self.dir.display()
        );
        let _ = if is_root() {
            Command::new("su")
                .args(["postgres", "-s", "/bin/bash", "-c", &script])
                .status()
        } else {
            Command::new("bash").args(["-c", &script]).status()
        };
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A MongoDB-protocol server (secantusdb) of the test's own, to pause and
/// restart. Needs its Python (`TESSERA_TEST_SECANTUS_PYTHON`, which
/// `scripts/services up` exports).
pub struct DocServer {
    pub port: u16,
    dir: std::path::PathBuf,
    process: Process,
    _tmp: tempfile_dir::TempDir,
}

impl DocServer {
    pub async fn start() -> Self {
        let port = free_port();
        // the servers of killed tests died with them (`owned_command`);
        // their folders are left
        abandoned::remove_folders("tessera_docs");
        let dir = std::env::temp_dir().join(unique("tessera_docs"));
        std::fs::create_dir_all(&dir).expect("creates the data folder");
        abandoned::claim(&dir);
        let mut server = Self {
            port,
            dir: dir.clone(),
            process: Process(None),
            _tmp: tempfile_dir::TempDir(dir),
        };
        server.spawn().await;
        server
    }

    async fn spawn(&mut self) {
        let python = required("TESSERA_TEST_SECANTUS_PYTHON");
        let mut command = owned_command(python);
        command
            .args(["-m", "secantus", "--host", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .arg("--storage-path")
            .arg(&self.dir)
            // see scripts/services: a long oplog slows every write
            .args(["--standalone", "--oplog-max-entries", "1000"])
            .args(["--log-level", "WARNING"]);
        let within = Duration::from_secs(60);
        (self.process)
            .start(
                command,
                "secantusdb",
                self.port,
                within,
                "secantusdb listens",
            )
            .await;
    }

    pub fn uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}", self.port)
    }

    pub fn pause(&self) {
        self.process.signal("-STOP");
    }

    pub fn resume(&self) {
        self.process.signal("-CONT");
    }
}

impl Drop for DocServer {
    fn drop(&mut self) {
        self.resume();
        self.process.stop();
    }
}
