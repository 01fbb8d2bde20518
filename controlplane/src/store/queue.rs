//! The bounded request queue in front of a [`Store`]: one worker thread owns the store
//! and runs requests in order; callers on the async side enqueue without waiting
//! (a full queue is [`StoreError::Busy`] at once) and wait for the answer at most the
//! configured timeout ([`StoreError::Timeout`]). A slow or dead store therefore costs a
//! caller a bounded wait and a clear error — never a blocked task, and never anything on
//! a dataplane core, which does not talk to the store at all.

use super::{Store, StoreError};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Requests the queue holds by default.
pub const DEFAULT_CAPACITY: usize = 256;
/// How long a caller waits for the store by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(1000);

type Job = Box<dyn FnOnce(&mut dyn Store) + Send>;

/// What a request does, for the metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    Get,
    List,
    Insert,
    Put,
    Delete,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::List => "list",
            Op::Insert => "insert",
            Op::Put => "put",
            Op::Delete => "delete",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StoreLabels {
    op: &'static str,
    result: &'static str,
}

/// The queue's counters: `tutti_store_requests_total{op,result}`.
#[derive(Debug, Default)]
pub struct StoreMetrics {
    pub(crate) requests: Family<StoreLabels, Counter>,
}

impl StoreMetrics {
    fn count(&self, op: Op, result: &Result<impl Sized, StoreError>) {
        let result = match result {
            Ok(_) => "ok",
            Err(StoreError::Busy(_)) => "busy",
            Err(StoreError::Timeout(_)) => "timeout",
            Err(StoreError::Closed) => "closed",
            Err(StoreError::Corrupt { .. }) => "corrupt",
            Err(StoreError::Backend(_)) => "error",
        };
        self.requests
            .get_or_create(&StoreLabels {
                op: op.as_str(),
                result,
            })
            .inc();
    }
}

/// The sending side of the queue; clones share one queue and worker.
#[derive(Clone)]
pub struct StoreQueue {
    tx: mpsc::Sender<Job>,
    capacity: usize,
    timeout: Duration,
    metrics: Arc<StoreMetrics>,
}

impl StoreQueue {
    /// Start the worker thread that owns `store`, behind a queue of `capacity` requests
    /// whose callers wait at most `timeout`. The worker ends when the last clone of the
    /// queue is dropped (after the requests already queued).
    pub fn start(
        mut store: Box<dyn Store>,
        capacity: usize,
        timeout: Duration,
    ) -> std::io::Result<(StoreQueue, JoinHandle<()>)> {
        let (tx, mut rx) = mpsc::channel::<Job>(capacity.max(1));
        let worker = std::thread::Builder::new()
            .name("tutti-store".into())
            .spawn(move || {
                while let Some(job) = rx.blocking_recv() {
                    job(store.as_mut());
                }
            })?;
        let queue = StoreQueue {
            tx,
            capacity: capacity.max(1),
            timeout,
            metrics: Arc::default(),
        };
        Ok((queue, worker))
    }

    /// Run `f` on the store's worker and wait for its answer (bounded, see the module).
    pub async fn run<R: Send + 'static>(
        &self,
        op: Op,
        f: impl FnOnce(&mut dyn Store) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let result = self.submit(f).await;
        self.metrics.count(op, &result);
        if let Err(e) = &result {
            tracing::warn!(op = op.as_str(), error = %e, "store request failed");
        }
        result
    }

    async fn submit<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Store) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |store| {
            // The caller may have given up waiting; the answer then goes nowhere.
            let _ = reply.send(f(store));
        });
        self.tx.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => StoreError::Busy(self.capacity),
            mpsc::error::TrySendError::Closed(_) => StoreError::Closed,
        })?;
        match tokio::time::timeout(self.timeout, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(StoreError::Closed),
            Err(_) => Err(StoreError::Timeout(self.timeout.as_millis() as u64)),
        }
    }

    /// Requests waiting for the worker now.
    pub fn depth(&self) -> usize {
        self.capacity - self.tx.capacity()
    }

    /// The queue's counters.
    pub fn metrics(&self) -> &StoreMetrics {
        &self.metrics
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::embedded::Embedded;
    use std::sync::mpsc as std_mpsc;
    use std::sync::Mutex;
    use tutti_control_core::directory::{Code, Entry, EntrySpec};

    /// The real embedded store, whose every call first waits for the test's go-ahead:
    /// the test decides how slow the store is.
    struct Gated {
        inner: Embedded,
        go: Arc<Mutex<std_mpsc::Receiver<()>>>,
    }

    impl Gated {
        fn wait(&self) {
            let _ = self.go.lock().unwrap().recv();
        }
    }

    impl Store for Gated {
        fn entry(&mut self, code: &Code) -> Result<Option<Entry>, StoreError> {
            self.wait();
            self.inner.entry(code)
        }
        fn put_entry(&mut self, e: &Entry) -> Result<bool, StoreError> {
            self.wait();
            self.inner.put_entry(e)
        }
        fn insert_entry(&mut self, e: &Entry) -> Result<bool, StoreError> {
            self.wait();
            self.inner.insert_entry(e)
        }
        fn delete_entry(&mut self, code: &Code) -> Result<bool, StoreError> {
            self.wait();
            self.inner.delete_entry(code)
        }
        fn entries(&mut self, after: Option<&Code>, n: usize) -> Result<Vec<Entry>, StoreError> {
            self.wait();
            self.inner.entries(after, n)
        }
    }

    fn gated(capacity: usize, timeout: Duration) -> (StoreQueue, std_mpsc::Sender<()>) {
        let (go, gate) = std_mpsc::channel();
        let store = Gated {
            inner: Embedded::in_memory().unwrap(),
            go: Arc::new(Mutex::new(gate)),
        };
        let (q, _worker) = StoreQueue::start(Box::new(store), capacity, timeout).unwrap();
        (q, go)
    }

    fn code() -> Code {
        Code::parse("42").unwrap()
    }

    #[tokio::test]
    async fn requests_run_in_order_on_the_worker() {
        let (q, go) = gated(4, Duration::from_secs(30));
        for _ in 0..3 {
            go.send(()).unwrap();
        }
        let e = Entry::from_spec("42", EntrySpec::default()).unwrap();
        let put = e.clone();
        assert!(q
            .run(Op::Insert, move |s| s.insert_entry(&put))
            .await
            .unwrap());
        let got = q.run(Op::Get, |s| s.entry(&code())).await.unwrap();
        assert_eq!(got, Some(e));
        assert!(q
            .run(Op::Delete, |s| s.delete_entry(&code()))
            .await
            .unwrap());
        assert_eq!(q.depth(), 0);
    }

    #[tokio::test]
    async fn a_slow_store_times_out_and_a_full_queue_is_busy_at_once() {
        let (q, go) = gated(2, Duration::from_millis(50));
        // The worker takes the first request and waits at the gate; it times out.
        let first = q.run(Op::Get, |s| s.entry(&code())).await;
        assert_eq!(first, Err(StoreError::Timeout(50)));
        // Two more fill the queue behind it (their callers give up in the background).
        let waiting: Vec<_> = (0..2)
            .map(|_| {
                let q = q.clone();
                tokio::spawn(async move { q.run(Op::Get, |s| s.entry(&code())).await })
            })
            .collect();
        while q.depth() < 2 {
            tokio::task::yield_now().await;
        }
        let busy = q.run(Op::Get, |s| s.entry(&code())).await;
        assert_eq!(busy, Err(StoreError::Busy(2)));
        for w in waiting {
            assert_eq!(w.await.unwrap(), Err(StoreError::Timeout(50)));
        }
        // The store recovers: once let through, requests are answered again.
        for _ in 0..4 {
            go.send(()).unwrap();
        }
        for _ in 0..5000 {
            if q.depth() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let q2 = StoreQueue {
            timeout: Duration::from_secs(30),
            ..q.clone()
        };
        assert_eq!(q2.run(Op::Get, |s| s.entry(&code())).await, Ok(None));
        let counted = |result| {
            q.metrics()
                .requests
                .get_or_create(&StoreLabels { op: "get", result })
                .get()
        };
        assert_eq!(
            (counted("timeout"), counted("busy"), counted("ok")),
            (3, 1, 1)
        );
    }
}
