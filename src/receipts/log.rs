//! The write path: a bounded queue in front of one writer thread that commits receipts in
//! batches. Browsing never waits on it; a consent request waits only for its own receipt's
//! commit, and is refused (no cookie) when the queue is full or the store is down.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Receipt, Store, StoreError, BATCH_WINDOW};

/// Opens a connection to the store (the writer reconnects with it after a failure).
pub type Opener = Arc<dyn Fn() -> Result<Box<dyn Store>, StoreError> + Send + Sync>;

/// Receipts committed in one transaction at most.
const MAX_BATCH: usize = 256;
/// How long a consent request waits for its commit.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);

struct Job {
    receipt: Receipt,
    ack: tokio::sync::oneshot::Sender<Result<Receipt, String>>,
}

/// Why a receipt was not recorded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("the receipt queue is full")]
    QueueFull,
    #[error("the receipt store is unavailable: {0}")]
    StoreDown(String),
    #[error("the receipt log is shut down")]
    Closed,
}

/// The receipt write path of one proxy.
pub struct ReceiptLog {
    tx: Mutex<Option<SyncSender<Job>>>,
    worker: Mutex<Option<JoinHandle<()>>>,
    healthy: Arc<AtomicBool>,
    committed: Arc<AtomicU64>,
}

impl ReceiptLog {
    /// Starts the writer thread; `capacity` receipts may wait in the queue.
    pub fn start(open: Opener, capacity: usize) -> ReceiptLog {
        let (tx, rx) = sync_channel::<Job>(capacity.max(1));
        let healthy = Arc::new(AtomicBool::new(true));
        let committed = Arc::new(AtomicU64::new(0));
        let (h, c) = (healthy.clone(), committed.clone());
        let worker = std::thread::Builder::new()
            .name("consentgate-receipts".into())
            .spawn(move || writer(rx, open, h, c))
            .ok();
        if worker.is_none() {
            healthy.store(false, Ordering::SeqCst);
        }
        ReceiptLog {
            tx: Mutex::new(Some(tx)),
            worker: Mutex::new(worker),
            healthy,
            committed,
        }
    }

    /// Whether the last commit (or connection attempt) succeeded.
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::SeqCst)
    }

    pub fn committed(&self) -> u64 {
        self.committed.load(Ordering::SeqCst)
    }

    /// Queues a receipt and waits for its commit; returns it sealed (with its chain hash).
    pub async fn record(&self, receipt: Receipt) -> Result<Receipt, RecordError> {
        let (ack, done) = tokio::sync::oneshot::channel();
        {
            let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner());
            let Some(tx) = tx.as_ref() else {
                return Err(RecordError::Closed);
            };
            match tx.try_send(Job { receipt, ack }) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => return Err(RecordError::QueueFull),
                Err(TrySendError::Disconnected(_)) => return Err(RecordError::Closed),
            }
        }
        match tokio::time::timeout(ACK_TIMEOUT, done).await {
            Ok(Ok(Ok(r))) => Ok(r),
            Ok(Ok(Err(e))) => Err(RecordError::StoreDown(e)),
            Ok(Err(_)) => Err(RecordError::Closed),
            Err(_) => Err(RecordError::StoreDown("commit timed out".into())),
        }
    }

    /// Stops accepting receipts and waits until everything queued is committed.
    pub fn shutdown(&self) {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(w) = self.worker.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = w.join();
        }
    }
}

impl Drop for ReceiptLog {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn writer(rx: Receiver<Job>, open: Opener, healthy: Arc<AtomicBool>, committed: Arc<AtomicU64>) {
    let mut store: Option<Box<dyn Store>> = None;
    // Blocks for the first job of a batch; ends when every sender is gone and the queue is empty.
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        let deadline = Instant::now() + BATCH_WINDOW;
        while batch.len() < MAX_BATCH {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(j) => batch.push(j),
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        if store.is_none() {
            match open() {
                Ok(s) => store = Some(s),
                Err(e) => {
                    healthy.store(false, Ordering::SeqCst);
                    tracing::error!(error = %e, "receipt store unavailable: consent requests refused");
                    for j in batch {
                        let _ = j.ack.send(Err(e.to_string()));
                    }
                    continue;
                }
            }
        }
        let mut receipts: Vec<Receipt> = batch.iter().map(|j| j.receipt.clone()).collect();
        let result = store.as_mut().map(|s| s.append(&mut receipts));
        match result {
            Some(Ok(())) => {
                healthy.store(true, Ordering::SeqCst);
                committed.fetch_add(receipts.len() as u64, Ordering::SeqCst);
                for (j, r) in batch.into_iter().zip(receipts) {
                    let _ = j.ack.send(Ok(r));
                }
            }
            Some(Err(e)) => {
                healthy.store(false, Ordering::SeqCst);
                tracing::error!(error = %e, receipts = batch.len(), "receipt commit failed: consent requests refused");
                store = None; // reconnect for the next batch
                for j in batch {
                    let _ = j.ack.send(Err(e.to_string()));
                }
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::sample;
    use super::super::{verify, SqliteStore, Verified};
    use super::*;

    fn sqlite_opener(path: std::path::PathBuf) -> Opener {
        Arc::new(move || Ok(Box::new(SqliteStore::open(&path)?) as Box<dyn Store>))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_records_are_batched_chained_and_drained() {
        let dir = std::env::temp_dir().join(format!("cg-log-{}", super::super::new_id()));
        let path = dir.join("r.db");
        let log = Arc::new(ReceiptLog::start(sqlite_opener(path.clone()), 1024));
        let mut tasks = Vec::new();
        for _ in 0..200 {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                log.record(sample("shop.example")).await
            }));
        }
        for t in tasks {
            let r = t.await.unwrap().unwrap();
            assert_eq!(r.hash.len(), 64);
        }
        assert_eq!(log.committed(), 200);
        log.shutdown();
        let mut s = SqliteStore::open(&path).unwrap();
        assert_eq!(
            verify(&mut s, "shop.example").unwrap(),
            Verified::Intact { receipts: 200 }
        );
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test]
    async fn a_down_store_refuses_and_recovers() {
        let up = Arc::new(AtomicBool::new(false));
        let dir = std::env::temp_dir().join(format!("cg-log-{}", super::super::new_id()));
        let path = dir.join("r.db");
        let (u, p) = (up.clone(), path.clone());
        let open: Opener = Arc::new(move || {
            if u.load(Ordering::SeqCst) {
                Ok(Box::new(SqliteStore::open(&p)?) as Box<dyn Store>)
            } else {
                Err(StoreError::Backend("connection refused".into()))
            }
        });
        let log = ReceiptLog::start(open, 16);
        assert!(matches!(
            log.record(sample("s")).await,
            Err(RecordError::StoreDown(_))
        ));
        assert!(!log.healthy());
        up.store(true, Ordering::SeqCst);
        assert!(log.record(sample("s")).await.is_ok());
        assert!(log.healthy());
        log.shutdown();
        assert_eq!(log.record(sample("s")).await, Err(RecordError::Closed));
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once() {
        // A store that blocks: the queue (capacity 1) fills and further records are refused.
        let gate = Arc::new(std::sync::Barrier::new(2));
        let g = gate.clone();
        let open: Opener = Arc::new(move || {
            g.wait();
            Err(StoreError::Backend("slow".into()))
        });
        let log = Arc::new(ReceiptLog::start(open, 1));
        let l1 = log.clone();
        let first = tokio::spawn(async move { l1.record(sample("s")).await });
        tokio::time::sleep(Duration::from_millis(100)).await; // the writer holds job 1
        let l2 = log.clone();
        let second = tokio::spawn(async move { l2.record(sample("s")).await }); // fills the queue
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(log.record(sample("s")).await, Err(RecordError::QueueFull));
        gate.wait();
        assert!(first.await.unwrap().is_err());
        gate.wait();
        assert!(second.await.unwrap().is_err());
    }
}
