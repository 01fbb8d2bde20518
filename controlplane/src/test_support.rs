//! Test doubles and request helpers shared by the HTTP tests.

use crate::media::{MediaCore, MediaError, MediaPlane};
use crate::{http as api, ControlState, CoreHandle, PortSource, PortStatus};
use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use http_body_util::BodyExt;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower::ServiceExt;
use tutti_control_core::ManualClock;
use tutti_dataplane::conference::{ConfKey, MediaOp};
use tutti_dataplane::relay::RelayCommand;
use tutti_dataplane::rx::{PromptId, PromptLibrary};
use tutti_dataplane::stats::{CoreCounters, DropReason};
use tutti_dataplane::tap::{Tap, TapReader, TapSpec};

pub struct Fixed;

impl PortSource for Fixed {
    fn ports(&self) -> Vec<PortStatus> {
        vec![PortStatus {
            device: "net_tap0".into(),
            driver: "net_tap".into(),
            port_id: 0,
            mac: "02:00:00:00:00:01".into(),
            ipv4: "198.18.0.1/24".into(),
            gateway: None,
            link_up: true,
            speed_mbps: 10000,
            queues: 1,
            rss: false,
            mbufs_in_use: 512,
            xstats: Default::default(),
        }]
    }
}

/// A dataplane that records the operations it is given.
pub struct TestMedia {
    cores: Vec<MediaCore>,
    pub prompts: PromptLibrary,
    pub ops: Mutex<Vec<(usize, MediaOp)>>,
    /// Answer every `apply` with [`MediaError::Busy`].
    pub busy: AtomicBool,
    /// Relay commands given (gateway role), described: `add p1`, `start p1 <addr>
    /// rewrite`, `commit p1`, `end p1`, `remove p1`.
    pub relays: Mutex<Vec<String>>,
    /// The core ends of the taps added and not removed, with their core, for a test to
    /// push frames into (removing a tap, or deleting its conference, drops it here as
    /// the dataplane retires it, so its reader sees it end).
    pub taps: Mutex<Vec<(usize, Box<Tap>)>>,
}

impl TestMedia {
    pub fn ops(&self) -> Vec<(usize, MediaOp)> {
        self.ops.lock().unwrap().clone()
    }

    pub fn set_busy(&self, busy: bool) {
        self.busy.store(busy, Ordering::Relaxed);
    }

    /// Push `frame` into every live tap of conference `conf`.
    pub fn push_taps(&self, conf: ConfKey, frame: &[i16]) {
        for (_, tap) in self.taps.lock().unwrap().iter_mut() {
            if tap.spec().conf == conf {
                tap.push(frame);
            }
        }
    }

    /// Drop the taps that `op` unlinks, as a core would.
    fn retire_taps(&self, op: &MediaOp) {
        let unlinked = |t: &TapSpec| match *op {
            MediaOp::RemoveTap { conf, tap } => t.conf == conf && t.key == tap,
            MediaOp::DeleteConference(conf) => t.conf == conf,
            MediaOp::RemoveParticipant { conf, part } => {
                t.conf == conf && t.source.part() == Some(part)
            }
            _ => false,
        };
        self.taps
            .lock()
            .unwrap()
            .retain(|(_, t)| !unlinked(t.spec()));
    }
}

impl MediaPlane for TestMedia {
    fn cores(&self) -> Vec<MediaCore> {
        self.cores.clone()
    }
    fn prompt(&self, name: &str) -> Option<PromptId> {
        self.prompts.id(name)
    }
    fn prompt_names(&self) -> Vec<String> {
        self.prompts.names().map(str::to_string).collect()
    }
    fn prompt_length(&self, id: PromptId) -> Option<Duration> {
        self.prompts
            .samples(id)
            .map(|s| crate::media::samples_duration(s.len()))
    }
    fn apply(&self, core: usize, op: MediaOp) -> Result<(), MediaError> {
        if self.busy.load(Ordering::Relaxed) {
            return Err(MediaError::Busy(core));
        }
        if core >= self.cores.len() {
            return Err(MediaError::Rejected(format!("no core {core}")));
        }
        self.retire_taps(&op);
        self.ops.lock().unwrap().push((core, op));
        Ok(())
    }
    fn add_tap(&self, core: usize, spec: TapSpec) -> Result<TapReader, MediaError> {
        if self.busy.load(Ordering::Relaxed) {
            return Err(MediaError::Busy(core));
        }
        if core >= self.cores.len() {
            return Err(MediaError::Rejected(format!("no core {core}")));
        }
        let (tap, reader) = Tap::new(spec);
        self.taps.lock().unwrap().push((core, tap));
        Ok(reader)
    }
    fn relay(&self, core: usize, cmd: RelayCommand) -> Result<(), MediaError> {
        if core >= self.cores.len() {
            return Err(MediaError::Rejected(format!("no core {core}")));
        }
        let said = match cmd {
            RelayCommand::Add(s) => format!("add p{}", s.part().0),
            RelayCommand::Remove(p) => format!("remove p{}", p.0),
            RelayCommand::StartHandover {
                part,
                candidate,
                instruct,
                ..
            } => format!(
                "start p{} {candidate} {}",
                part.0,
                if instruct { "instruct" } else { "rewrite" }
            ),
            RelayCommand::Commit(p) => format!("commit p{}", p.0),
            RelayCommand::End(p) => format!("end p{}", p.0),
        };
        self.relays.lock().unwrap().push(said);
        Ok(())
    }
}

/// One media core: lcore 3, 198.18.0.1, ports 20000..=20999, `capacity` participants.
pub fn media_core(capacity: u32) -> MediaCore {
    MediaCore {
        lcore: 3,
        local_ip: Ipv4Addr::new(198, 18, 0, 1),
        ports: 20000..=20999,
        capacity,
    }
}

pub struct Harness {
    pub state: ControlState,
    pub media: Arc<TestMedia>,
    pub counters: Arc<CoreCounters>,
    pub clock: Arc<ManualClock>,
}

pub fn harness(cores: Vec<MediaCore>) -> Harness {
    harness_with(
        cores,
        crate::orphan::OrphanConfig::default(),
        &["welcome", "goodbye"],
    )
}

/// A harness with reclamation timers `orphan` and one prompt per name in `prompts`
/// (prompt `i` lasts `i + 1` × 20 ms).
pub fn harness_with(
    cores: Vec<MediaCore>,
    orphan: crate::orphan::OrphanConfig,
    prompts: &[&str],
) -> Harness {
    let clock = Arc::new(ManualClock::default());
    let counters = Arc::new(CoreCounters::default());
    counters.rx_packets.add(5);
    counters.drop_packet(DropReason::NoListener);
    let mut library = PromptLibrary::new();
    for (i, name) in prompts.iter().enumerate() {
        library
            .add_samples(name, vec![0i16; 160 * (i + 1)].into())
            .expect("prompt");
    }
    let media = Arc::new(TestMedia {
        cores,
        prompts: library,
        ops: Mutex::default(),
        busy: AtomicBool::new(false),
        relays: Mutex::default(),
        taps: Mutex::default(),
    });
    let state = ControlState::new(
        vec![CoreHandle {
            lcore: 1,
            counters: counters.clone(),
            engine: Arc::default(),
            relay: Arc::default(),
        }],
        Arc::new(Fixed),
        media.clone(),
        "test",
        clock.clone(),
        orphan,
        1,
    );
    let store = crate::store::embedded::Embedded::in_memory().expect("in-memory store");
    let (queue, _worker) = crate::store::queue::StoreQueue::start(
        Box::new(store),
        crate::store::queue::DEFAULT_CAPACITY,
        crate::store::queue::DEFAULT_TIMEOUT,
    )
    .expect("store worker");
    let state = state.with_store(queue);
    Harness {
        state,
        media,
        counters,
        clock,
    }
}

/// Send a request with an optional raw JSON body; the answer's status and body text.
pub async fn send(
    st: &ControlState,
    method: Method,
    uri: &str,
    body: Option<&str>,
) -> (StatusCode, String) {
    send_via(
        api::router(st.clone(), api::Access::open()),
        method,
        uri,
        body,
    )
    .await
}

/// [`send`] to `router`.
pub async fn send_via(
    router: axum::Router,
    method: Method,
    uri: &str,
    body: Option<&str>,
) -> (StatusCode, String) {
    let mut req = Request::builder().method(method).uri(uri);
    if body.is_some() {
        req = req.header(header::CONTENT_TYPE, "application/json");
    }
    let req = req
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap();
    let r = router.oneshot(req).await.unwrap();
    let code = r.status();
    let body = r.into_body().collect().await.unwrap().to_bytes();
    (code, String::from_utf8(body.to_vec()).unwrap())
}

pub async fn get(st: &ControlState, uri: &str) -> (StatusCode, String) {
    send(st, Method::GET, uri, None).await
}

/// Send a request whose answer must be JSON.
pub async fn json(
    st: &ControlState,
    method: Method,
    uri: &str,
    body: Option<&str>,
) -> (StatusCode, serde_json::Value) {
    let (code, text) = send(st, method, uri, body).await;
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{uri}: {e}: {text}"));
    (code, v)
}
