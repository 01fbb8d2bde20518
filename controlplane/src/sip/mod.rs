//! The SIP room: a user agent on UDP and TCP kernel sockets (normally the service
//! address, reached through the exception path) that turns dialogs into the control
//! core's operations ([`tutti_control_core::sip`]). Messages are parsed and typed with
//! `rsipstack`'s SIP layer; the transport loops are our own (see [`transport`]) so that
//! every request, however malformed, is answered (400 with a reason) and counted.
//!
//! - [`transport`]: UDP and TCP listeners, TCP framing by Content-Length;
//! - [`ua`]: the UAS: INVITE/ACK/BYE/CANCEL/OPTIONS, re-INVITE hold, retransmissions,
//!   BYE when a participant is deleted elsewhere; and the driver of dial-outs (the core's
//!   [`tutti_control_core::sip::dial::Dial`]: its messages, responses and timers);
//! - [`SipMetrics`]: `tutti_sip_requests_total{method,code}`, `tutti_sip_dialogs`.

pub mod transport;
pub mod ua;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;
pub use tutti_control_core::sip::{apps, digest, Net};

/// A SIP transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    /// As in a Via header.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }
}

/// One listener: a transport and a kernel address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Listen {
    pub transport: Transport,
    pub addr: SocketAddr,
}

impl FromStr for Listen {
    type Err = String;
    fn from_str(s: &str) -> Result<Listen, String> {
        let bad =
            || format!("'{s}' is not a listener like udp:198.18.0.1:5060 or tcp:198.18.0.1:5060");
        let (t, a) = s.split_once(':').ok_or_else(bad)?;
        let transport = match t {
            "udp" => Transport::Udp,
            "tcp" => Transport::Tcp,
            _ => return Err(bad()),
        };
        let addr = a.parse().map_err(|_| bad())?;
        Ok(Listen { transport, addr })
    }
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = match self.transport {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        };
        write!(f, "{t}:{}", self.addr)
    }
}

/// The `sip:` settings.
#[derive(Clone, Debug, PartialEq)]
pub struct SipConfig {
    pub listen: Vec<Listen>,
    /// The domain we answer for (any, if `None`).
    pub domain: Option<String>,
    pub trusted: Vec<Net>,
    pub max_calls: u32,
    pub invite_rate: u32,
    pub session_expires: Duration,
    pub auto_create: bool,
    /// Digest authentication of callers (`sip.auth`), if configured.
    pub auth: Option<tutti_control_core::sip::digest::AuthConfig>,
    /// What dialled numbers run (`applications:`).
    pub applications: tutti_control_core::sip::apps::Applications,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct SipLabels {
    method: &'static str,
    code: u16,
}

/// SIP counters, rendered at scrape time.
#[derive(Debug, Default)]
pub struct SipMetrics {
    pub(crate) requests: Family<SipLabels, Counter>,
    pub(crate) dialogs: Gauge,
}

/// Methods counted by name (anything else is `other`, so the label set stays bounded).
const METHODS: [&str; 14] = [
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "OPTIONS",
    "REGISTER",
    "INFO",
    "UPDATE",
    "PRACK",
    "SUBSCRIBE",
    "NOTIFY",
    "REFER",
    "MESSAGE",
    "PUBLISH",
];

impl SipMetrics {
    /// Count a request of `method` answered with `code`.
    pub fn answered(&self, method: &str, code: u16) {
        let method = METHODS
            .into_iter()
            .find(|m| *m == method)
            .unwrap_or("other");
        self.requests
            .get_or_create(&SipLabels { method, code })
            .inc();
    }
}
