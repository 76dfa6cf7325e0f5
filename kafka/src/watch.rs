//! Knowing at once that a broker's process went away.
//!
//! librdkafka reports a broken connection through its event queue, which is
//! served only when the client is polled, while its own threads reconnect
//! and fetch on their own: a consumer busy writing documents learns of a
//! restarted broker only after it has fetched from it. A plain TCP
//! connection per bootstrap address, on which nothing is ever sent, reads
//! end-of-file the moment the broker's process is gone; that is the signal.
//! (A paused broker keeps its sockets open and is not reported: it has lost
//! nothing.)

use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::watch;

/// How long to wait between attempts to reconnect the canary.
const RETRY: Duration = Duration::from_millis(100);

/// Ticks each time a connection to one of `brokers` (a bootstrap list,
/// `host:port,...`) breaks or cannot be made. Spawns one task per address;
/// they end when every receiver is gone.
pub fn watch_brokers(brokers: &str) -> watch::Receiver<u64> {
    let (tx, rx) = watch::channel(0u64);
    for address in brokers.split(',').map(str::trim).filter(|a| !a.is_empty()) {
        tokio::spawn(canary(address.to_owned(), tx.clone()));
    }
    rx
}

async fn canary(address: String, tx: watch::Sender<u64>) {
    let mut connected_once = false;
    while !tx.is_closed() {
        match TcpStream::connect(&address).await {
            Ok(mut stream) => {
                connected_once = true;
                let mut buf = [0u8; 64];
                // nothing is sent, so nothing arrives: a read ends only when
                // the broker's side closes or resets
                let _ = stream.read(&mut buf).await;
                tracing::warn!(broker = %address, "the broker closed its connections");
                tx.send_modify(|n| *n += 1);
            }
            Err(_) if connected_once => {
                tx.send_modify(|n| *n += 1);
                tokio::time::sleep(RETRY).await;
            }
            Err(_) => tokio::time::sleep(RETRY).await,
        }
        if tx.is_closed() {
            return;
        }
    }
}
