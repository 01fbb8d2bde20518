//! `tutti.yaml`: parsed strictly (unknown keys are errors, with line and column) and
//! validated before anything touches the hardware.

use serde::Deserialize;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;
use tutti_controlplane::gateway::peer::MixerAccess;
use tutti_controlplane::gateway::{GatewayConfig, HandoverSettings};
use tutti_controlplane::http::{tls, Access};
use tutti_controlplane::orphan::OrphanConfig;
use tutti_controlplane::sip::apps::{App, Applications};
use tutti_controlplane::sip::{Listen, Net, SipConfig};
use tutti_controlplane::tokio_rustls::TlsAcceptor;
use tutti_dataplane::net::exception::ExceptionConfig;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// EAL arguments, exactly as on a DPDK command line (without the program name).
    pub eal: Vec<String>,
    pub ports: Vec<PortConfig>,
    pub dataplane: DataplaneConfig,
    pub control: ControlConfig,
    /// Directory of prompt WAV files (8 kHz mono 16-bit PCM or G.711), loaded at start-up
    /// (default: [`DEFAULT_PROMPTS`] if it exists, else the prompts built into the binary).
    #[serde(default)]
    pub prompts: Option<std::path::PathBuf>,
    /// Call-manager leases and orphaned-conference reclamation timers.
    #[serde(default)]
    pub orphan: OrphanSection,
    /// The gateway role (absent: a mixer only).
    #[serde(default)]
    pub gateway: Option<GatewaySection>,
    /// The SIP user agent (absent: no SIP).
    #[serde(default)]
    pub sip: Option<SipSection>,
    /// What a dialled number (Request-URI user, else To user) runs: `{app: conference}`,
    /// `{app: announcement, prompt: NAME, loop: BOOL}` or `{app: echo}`; the key
    /// `default` for numbers not listed (else 404). `conf-<id>` always joins `<id>`.
    #[serde(default)]
    pub applications: std::collections::BTreeMap<String, AppEntry>,
    /// Where tutti keeps what must survive a restart (the provisioning database,
    /// `tutti.redb`); created if missing. Absent: provisioning lives in memory only.
    #[serde(default)]
    pub state_dir: Option<std::path::PathBuf>,
    /// The provisioning store's request queue.
    #[serde(default)]
    pub store: StoreSection,
}

/// `store:`: where provisioning is kept, and the bounded queue in front of it.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// `embedded` [default]: redb in `state_dir`; `redis`: a Redis server at `url`.
    #[serde(default)]
    pub backend: StoreBackend,
    /// The Redis server, `redis://host:port/db` (backend redis only).
    pub url: Option<String>,
    /// Prefix of every Redis key [tutti] (backend redis only).
    pub prefix: Option<String>,
    /// Requests waiting for the store at most [256]; more are refused at once (503).
    pub queue: Option<usize>,
    /// How long a request waits for the store's answer [1s] (also Redis's connect,
    /// read and write timeout).
    pub timeout: Option<HumanDuration>,
}

/// `store.backend`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    #[default]
    Embedded,
    Redis,
}

/// Default `store.prefix`.
pub const DEFAULT_STORE_PREFIX: &str = "tutti";

impl StoreSection {
    /// The queue's capacity and timeout, with defaults for what the file leaves out.
    pub fn settings(&self) -> (usize, Duration) {
        use tutti_controlplane::store::queue::{DEFAULT_CAPACITY, DEFAULT_TIMEOUT};
        (
            self.queue.unwrap_or(DEFAULT_CAPACITY),
            self.timeout.map_or(DEFAULT_TIMEOUT, |t| t.0),
        )
    }

    fn validate(&self) -> Result<(), String> {
        match (self.backend, &self.url) {
            (StoreBackend::Redis, None) => {
                return Err("store.url: backend redis needs the server's URL, e.g. \
                            redis://127.0.0.1:6379/0"
                    .into())
            }
            (StoreBackend::Redis, Some(url)) if !url.starts_with("redis://") => {
                return Err(format!("store.url: {url:?} is not a redis:// URL"))
            }
            (StoreBackend::Embedded, Some(_)) => {
                return Err("store.url: only with backend redis".into())
            }
            _ => {}
        }
        if self.prefix.is_some() && self.backend != StoreBackend::Redis {
            return Err("store.prefix: only with backend redis".into());
        }
        if self.prefix.as_deref().is_some_and(|p| {
            p.is_empty()
                || !p
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b))
        }) {
            return Err("store.prefix: use A-Z, a-z, 0-9, '_', '-', '.' and ':'".into());
        }
        if self.queue.is_some_and(|q| !(1..=65536).contains(&q)) {
            return Err("store.queue: use 1 to 65536".into());
        }
        if self
            .timeout
            .is_some_and(|t| t.0 < Duration::from_millis(10) || t.0 > Duration::from_secs(60))
        {
            return Err("store.timeout: use 10ms to 60s".into());
        }
        Ok(())
    }
}

/// `sip:`: phones, PBXs and trunks call `sip:conf-<id>@<domain or address>`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SipSection {
    /// Listeners, `udp:IP:PORT` or `tcp:IP:PORT` (normally the service address).
    pub listen: Vec<SipListen>,
    /// The SIP domain tutti answers for (default: any host in the request URI).
    #[serde(default)]
    pub domain: Option<String>,
    /// Sources allowed to send requests (CIDRs); empty: every source.
    #[serde(default)]
    pub trusted: Vec<Ipv4Cidr>,
    /// Concurrent calls at most [1000]; INVITEs beyond get 503, OPTIONS 503.
    pub max_calls: Option<u32>,
    /// New INVITEs per second per source at most [100] (a trunk sends every call from
    /// one address); excess gets 503 with Retry-After.
    pub invite_rate: Option<u32>,
    /// The longest RFC 4028 session interval taken from callers [30m; at least 90s].
    pub session_expires: Option<HumanDuration>,
    /// Create `conf-<id>` on its first INVITE (otherwise 404) [false].
    #[serde(default)]
    pub auto_create: bool,
    /// Digest authentication of new calls (absent: none; untrusted sources get 403).
    #[serde(default)]
    pub auth: Option<SipAuth>,
}

/// `sip.auth`: INVITEs from sources not in `sip.trusted` (every source with
/// `untrusted_only: false`) must answer a digest challenge (RFC 7616/8760).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SipAuth {
    /// The realm of the challenges.
    pub realm: String,
    /// The users and their passwords.
    #[serde(default)]
    pub users: Vec<SipUser>,
    /// A file of more users, one `user:password` a line (`#` starts a comment).
    pub users_file: Option<PathBuf>,
    /// Challenge only sources outside `sip.trusted` [true].
    pub untrusted_only: Option<bool>,
}

/// One `sip.auth.users` entry.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SipUser {
    pub user: String,
    pub password: String,
}

impl SipAuth {
    /// The authenticator's settings: the users listed and those of `users_file`.
    pub fn settings(&self) -> Result<tutti_controlplane::sip::digest::AuthConfig, String> {
        let mut users = std::collections::HashMap::new();
        let mut add = |user: &str, password: &str, at: &str| {
            if user.is_empty() || user.contains(['"', '\\', ':']) || password.is_empty() {
                return Err(format!(
                    "{at}: a user needs a name (no quotes, backslashes or colons) and a password"
                ));
            }
            if users
                .insert(user.to_string(), password.to_string())
                .is_some()
            {
                return Err(format!("{at}: user {user} is listed twice"));
            }
            Ok(())
        };
        for (i, u) in self.users.iter().enumerate() {
            add(&u.user, &u.password, &format!("sip.auth.users[{i}]"))?;
        }
        if let Some(path) = &self.users_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("sip.auth.users_file: {}: {e}", path.display()))?;
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let at = format!("sip.auth.users_file: {}:{}", path.display(), n + 1);
                let (user, password) = line
                    .split_once(':')
                    .ok_or_else(|| format!("{at}: not user:password"))?;
                add(user, password, &at)?;
            }
        }
        if users.is_empty() {
            return Err("sip.auth: at least one user (users or users_file) is needed".into());
        }
        if self.realm.is_empty() || self.realm.contains(['"', '\\']) {
            return Err("sip.auth.realm: a realm without quotes or backslashes is needed".into());
        }
        Ok(tutti_controlplane::sip::digest::AuthConfig {
            realm: self.realm.clone(),
            users,
            untrusted_only: self.untrusted_only.unwrap_or(true),
        })
    }
}

/// One entry of `applications:`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(tag = "app", rename_all = "lowercase", deny_unknown_fields)]
pub enum AppEntry {
    Conference,
    Announcement {
        prompt: String,
        #[serde(default, rename = "loop")]
        looped: bool,
    },
    Echo,
}

impl AppEntry {
    fn app(&self) -> App {
        match self {
            AppEntry::Conference => App::Conference,
            AppEntry::Announcement { prompt, looped } => App::Announcement {
                prompt: prompt.clone(),
                looped: *looped,
            },
            AppEntry::Echo => App::Echo,
        }
    }
}

/// The key of `applications:` that names the application for numbers not listed.
pub const DEFAULT_APPLICATION: &str = "default";

impl Config {
    /// The `applications:` table as the user agent routes by it.
    pub fn applications(&self) -> Applications {
        let mut apps = Applications::default();
        for (number, entry) in &self.applications {
            if number == DEFAULT_APPLICATION {
                apps.default = Some(entry.app());
            } else {
                apps.numbers.insert(number.clone(), entry.app());
            }
        }
        apps
    }

    fn validate_applications(&self) -> Result<(), String> {
        if !self.applications.is_empty() && self.sip.is_none() {
            return Err("applications: calls arrive by SIP; a sip: section is needed".into());
        }
        for (number, entry) in &self.applications {
            if number.is_empty()
                || !number
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-_.*#".contains(&b))
            {
                return Err(format!(
                    "applications: '{number}' is not a dialled number (letters, digits, + - _ . * #)"
                ));
            }
            if number.starts_with("conf-") {
                return Err(format!(
                    "applications: '{number}': conf-<id> numbers join their conference and cannot name an application"
                ));
            }
            if let AppEntry::Announcement { prompt, .. } = entry {
                if prompt.is_empty() {
                    return Err(format!(
                        "applications.{number}.prompt: a prompt name is needed"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// One SIP listener, written `udp:198.18.0.1:5060` or `tcp:198.18.0.1:5060`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SipListen(pub Listen);

impl<'de> Deserialize<'de> for SipListen {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map(SipListen).map_err(serde::de::Error::custom)
    }
}

/// Default `sip.max_calls`.
pub const DEFAULT_MAX_CALLS: u32 = 1000;
/// Default `sip.invite_rate` (per source per second).
pub const DEFAULT_INVITE_RATE: u32 = 100;
/// Default `sip.session_expires` (RFC 4028 recommends 30 minutes).
pub const DEFAULT_SESSION_EXPIRES: Duration = Duration::from_secs(1800);
/// RFC 4028's smallest session interval (Min-SE).
pub const MIN_SESSION_EXPIRES: Duration = Duration::from_secs(90);

impl SipSection {
    /// The user agent's settings, with defaults for what the file leaves out.
    pub fn settings(&self) -> SipConfig {
        SipConfig {
            listen: self.listen.iter().map(|l| l.0).collect(),
            domain: self.domain.clone(),
            trusted: self
                .trusted
                .iter()
                .map(|c| Net::new(c.addr, c.prefix_len))
                .collect(),
            max_calls: self.max_calls.unwrap_or(DEFAULT_MAX_CALLS),
            invite_rate: self.invite_rate.unwrap_or(DEFAULT_INVITE_RATE),
            session_expires: self
                .session_expires
                .map_or(DEFAULT_SESSION_EXPIRES, |d| d.0),
            auto_create: self.auto_create,
            auth: self.auth.as_ref().and_then(|a| a.settings().ok()),
            applications: Applications::default(),
        }
    }

    fn validate(&self) -> Result<(), String> {
        if self.listen.is_empty() {
            return Err("sip.listen: at least one listener is needed".into());
        }
        let mut seen = std::collections::HashSet::new();
        for (i, l) in self.listen.iter().enumerate() {
            if !seen.insert(l.0) {
                return Err(format!("sip.listen[{i}]: {} is listed twice", l.0));
            }
        }
        if self.domain.as_deref().is_some_and(|d| {
            d.is_empty()
                || !d
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        }) {
            return Err("sip.domain: must be a host name or address".into());
        }
        if self.max_calls == Some(0) {
            return Err("sip.max_calls: must be at least 1".into());
        }
        if self.invite_rate == Some(0) {
            return Err("sip.invite_rate: must be at least 1".into());
        }
        if self
            .session_expires
            .is_some_and(|d| d.0 < MIN_SESSION_EXPIRES)
        {
            return Err("sip.session_expires: at least 90s (RFC 4028 Min-SE)".into());
        }
        if let Some(a) = &self.auth {
            a.settings()?;
        }
        Ok(())
    }
}

/// `gateway:`: this appliance relays clients' media to mixers and can hand their
/// conferences over between mixers.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GatewaySection {
    /// Where the gateway API listens (the mixer API stays on `control.listen`).
    pub listen: SocketAddr,
    /// Base URLs of the mixers' APIs, e.g. `http://198.18.0.11:8080`.
    pub mixers: Vec<String>,
    /// Consecutive identical frames a handover requires of every client [5].
    pub validate_frames: Option<u32>,
    /// How long a handover may take to validate [2s].
    pub validation_timeout: Option<HumanDuration>,
    /// The most one mixer's stream may be delayed to line up with the other's [60ms].
    pub max_align: Option<HumanDuration>,
    /// Each call to a mixer's API gives up after this long [2s].
    pub mixer_timeout: Option<HumanDuration>,
    /// The bearer token every gateway API request but `/healthz` needs (or `token_file`).
    #[serde(default)]
    pub token: Option<String>,
    /// A file holding the gateway API's token.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// The token the gateway sends to its mixers (their `control.token`), or
    /// `mixer_token_file`.
    #[serde(default)]
    pub mixer_token: Option<String>,
    /// A file holding the mixers' token.
    #[serde(default)]
    pub mixer_token_file: Option<PathBuf>,
    /// PEM certificates an `https://` mixer's certificate must chain to.
    #[serde(default)]
    pub mixer_ca: Option<PathBuf>,
    /// Serve the gateway API over HTTPS with this certificate and key.
    #[serde(default)]
    pub tls: Option<TlsFiles>,
}

impl GatewaySection {
    /// The gateway's settings, with defaults for what the file leaves out.
    pub fn settings(&self) -> GatewayConfig {
        let d = HandoverSettings::default();
        let or = |v: Option<HumanDuration>, default: Duration| v.map_or(default, |h| h.0);
        GatewayConfig {
            mixers: self
                .mixers
                .iter()
                .map(|m| m.trim_end_matches('/').to_string())
                .collect(),
            handover: HandoverSettings {
                validate_frames: self.validate_frames.unwrap_or(d.validate_frames),
                validation_timeout: or(self.validation_timeout, d.validation_timeout),
                max_align: or(self.max_align, d.max_align),
                mixer_timeout: or(self.mixer_timeout, d.mixer_timeout),
            },
        }
    }

    /// Who may use the gateway API (`/metrics` as `control.metrics_public` says).
    pub fn access(&self, metrics_public: bool) -> Result<Access, String> {
        Ok(secret("gateway.token", &self.token, &self.token_file)?
            .map_or_else(Access::open, |t| Access::bearer(&t, metrics_public)))
    }

    /// How the gateway reaches its mixers: its token and the roots for https mixers.
    pub fn mixer_access(&self) -> Result<MixerAccess, String> {
        Ok(MixerAccess {
            token: secret(
                "gateway.mixer_token",
                &self.mixer_token,
                &self.mixer_token_file,
            )?,
            roots: match &self.mixer_ca {
                Some(path) => tls::certificates("gateway.mixer_ca", path)?,
                None => Vec::new(),
            },
        })
    }

    /// The gateway API's TLS server, if `tls` is set.
    pub fn tls(&self) -> Result<Option<TlsAcceptor>, String> {
        acceptor("gateway", &self.tls)
    }

    fn validate(&self, control: &ControlConfig) -> Result<(), String> {
        self.access(control.metrics_public)?;
        self.mixer_access()?;
        self.tls()?;
        let control = control.listen;
        if self.listen == control {
            return Err(format!(
                "gateway.listen: {} is control.listen too; the gateway API needs its own address",
                self.listen
            ));
        }
        for (i, m) in self.mixers.iter().enumerate() {
            let rest = m
                .strip_prefix("http://")
                .or_else(|| m.strip_prefix("https://"));
            let rest = rest.ok_or_else(|| {
                format!("gateway.mixers[{i}]: '{m}' is not a base URL like http://198.18.0.11:8080")
            })?;
            if m.starts_with("https://") && self.mixer_ca.is_none() {
                return Err(format!(
                    "gateway.mixers[{i}]: '{m}' is https: set gateway.mixer_ca to the PEM \
                     certificates that sign the mixers' certificates"
                ));
            }
            if rest.trim_end_matches('/').is_empty() || rest.trim_end_matches('/').contains('/') {
                return Err(format!(
                    "gateway.mixers[{i}]: '{m}' must be a base URL without a path"
                ));
            }
        }
        if let Some(k) = self.validate_frames {
            if !(1..=500).contains(&k) {
                return Err(format!(
                    "gateway.validate_frames: {k} must be from 1 to 500"
                ));
            }
        }
        if self
            .max_align
            .is_some_and(|d| d.0 > Duration::from_millis(500))
        {
            return Err("gateway.max_align: at most 500ms".into());
        }
        Ok(())
    }
}

/// `orphan:`: every key is optional (defaults in brackets in the README).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OrphanSection {
    /// Heartbeat intervals a call manager may miss before its lease lapses.
    pub lease_misses: Option<u32>,
    /// No packet (or no voice) for this long: ask to stay.
    pub no_packet: Option<HumanDuration>,
    /// One participant talking continuously this long: ask.
    pub single_talker: Option<HumanDuration>,
    /// Two or more talking continuously at once this long: ask.
    pub multi_talker: Option<HumanDuration>,
    /// An RTCP-sending endpoint without RTCP this long is dead (default: 3 RTCP
    /// intervals, at least 15 s).
    pub rtcp_timeout: Option<HumanDuration>,
    /// An endpoint with neither RTCP nor SID and no RTP this long is dead.
    pub rtp_timeout: Option<HumanDuration>,
    /// How long after a prompt a reply still counts.
    pub reply_window: Option<HumanDuration>,
}

/// Most heartbeat misses `orphan.lease_misses` may allow.
pub const MAX_LEASE_MISSES: u32 = 1000;

impl OrphanSection {
    /// The timers, with defaults for what the file leaves out.
    pub fn timers(&self) -> OrphanConfig {
        let d = OrphanConfig::default();
        let or = |v: Option<HumanDuration>, default: Duration| v.map_or(default, |h| h.0);
        OrphanConfig {
            lease_misses: self.lease_misses.unwrap_or(d.lease_misses),
            no_packet: or(self.no_packet, d.no_packet),
            single_talker: or(self.single_talker, d.single_talker),
            multi_talker: or(self.multi_talker, d.multi_talker),
            rtcp_timeout: or(self.rtcp_timeout, d.rtcp_timeout),
            rtp_timeout: or(self.rtp_timeout, d.rtp_timeout),
            reply_window: or(self.reply_window, d.reply_window),
        }
    }
}

/// A duration written like `500ms`, `5s`, `10m`, `2h30m`: whole numbers, each with a
/// unit (`h`, `m`, `s`, `ms`), largest unit first, each unit at most once; not zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl FromStr for HumanDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("'{s}' is not a duration like 500ms, 5s, 10m or 2h30m");
        const UNITS: [(&str, u64); 4] = [("h", 3_600_000), ("ms", 1), ("m", 60_000), ("s", 1000)];
        // Rank of each unit, largest first, for the order check.
        let rank = |u: &str| ["h", "m", "s", "ms"].iter().position(|x| *x == u);
        let mut rest = s.trim();
        if rest.is_empty() {
            return Err(bad());
        }
        let mut total_ms: u64 = 0;
        let mut last_rank = None;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(bad());
            }
            let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
            rest = &rest[digits..];
            let (unit, ms) = UNITS
                .iter()
                .find(|(u, _)| rest.starts_with(u))
                .ok_or_else(bad)?;
            rest = &rest[unit.len()..];
            let r = rank(unit);
            if last_rank.is_some_and(|l| r <= l) {
                return Err(bad());
            }
            last_rank = Some(r);
            total_ms = n
                .checked_mul(*ms)
                .and_then(|v| total_ms.checked_add(v))
                .ok_or_else(|| format!("duration '{s}' is too long"))?;
        }
        if total_ms == 0 {
            return Err(format!("duration '{s}' must be longer than zero"));
        }
        Ok(HumanDuration(Duration::from_millis(total_ms)))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Where installed prompts live.
pub const DEFAULT_PROMPTS: &str = "/usr/share/tutti/prompts";

/// One NIC port and its address.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PortConfig {
    /// DPDK device name (`net_tap0`, `virtio_user0`) or a PCI address.
    pub device: String,
    /// The port's address and prefix, e.g. `198.18.0.1/24`.
    pub ipv4: Ipv4Cidr,
    /// Next hop for destinations off the port's subnet.
    #[serde(default)]
    pub gateway: Option<Ipv4Addr>,
    /// The kernel interface that gets what the dataplane does not consume (absent: such
    /// frames are dropped and counted).
    #[serde(default)]
    pub exception: Option<ExceptionSection>,
}

/// `ports[].exception`: a kernel interface tutti creates and configures (the port's MAC
/// and address, link up, a default route via the port's gateway) for SIP, TCP and
/// everything else that is not media, ARP or ping.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExceptionSection {
    /// The kernel interface's name (at most 15 characters; must not exist yet).
    pub iface: String,
    /// The DPDK device behind it [tap].
    #[serde(default)]
    pub kind: ExceptionKind,
    /// Frames per second each dataplane core sends to the kernel at most [10000].
    pub rate_pps: Option<u32>,
    /// Frames each core may send at once above the rate [256].
    pub burst: Option<u32>,
    /// Frames each core holds for the kernel at most [256].
    pub queue: Option<u32>,
}

/// Which DPDK device carries the exception path.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ExceptionKind {
    /// `net_tap`: works on any Linux kernel.
    #[default]
    Tap,
    /// `virtio_user` on `/dev/vhost-net` (the kernel's vhost-net module): fewer copies.
    VirtioUser,
}

/// Longest Linux interface name.
pub const IFNAMSIZ_MAX: usize = 15;

impl ExceptionSection {
    /// The per-core bounds, with defaults for what the file leaves out.
    pub fn bounds(&self) -> ExceptionConfig {
        let d = ExceptionConfig::default();
        ExceptionConfig {
            rate_pps: self.rate_pps.unwrap_or(d.rate_pps),
            burst: self.burst.unwrap_or(d.burst),
            queue: self.queue.map_or(d.queue, |q| q as usize),
        }
    }

    fn validate(&self, i: usize) -> Result<(), String> {
        let name = &self.iface;
        if name.is_empty() || name.len() > IFNAMSIZ_MAX {
            return Err(format!(
                "ports[{i}].exception.iface: '{name}' must be 1 to {IFNAMSIZ_MAX} characters (a Linux interface name)"
            ));
        }
        if name == "."
            || name == ".."
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
        {
            return Err(format!(
                "ports[{i}].exception.iface: '{name}' may hold only letters, digits, '_', '-' and '.'"
            ));
        }
        let check = |key: &str, v: Option<u32>, max: u32| match v {
            Some(n) if n == 0 || n > max => Err(format!(
                "ports[{i}].exception.{key}: {n} must be from 1 to {max}"
            )),
            _ => Ok(()),
        };
        check("rate_pps", self.rate_pps, 10_000_000)?;
        check("burst", self.burst, 1_000_000)?;
        check("queue", self.queue, 65_536)
    }
}

/// The polling cores.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DataplaneConfig {
    /// EAL lcore ids that poll; each gets one queue pair on every port.
    pub cores: Vec<u32>,
    /// Microseconds to sleep after an empty poll (0: pure polling).
    #[serde(default)]
    pub idle_sleep_us: u32,
    /// Packet buffers in each queue's pool.
    #[serde(default = "default_mbufs")]
    pub mbufs_per_queue: u32,
    /// Local UDP ports for media, `first-last`; split evenly between the cores (each
    /// participant takes an even RTP port and the odd RTCP port after it).
    #[serde(default = "default_udp_ports")]
    pub udp_ports: PortRange,
    /// Participants one core admits (admission control answers 503 beyond it).
    #[serde(default = "default_participants_per_core")]
    pub participants_per_core: u32,
    /// Conferences one core can hold.
    #[serde(default = "default_conferences_per_core")]
    pub conferences_per_core: u32,
}

fn default_mbufs() -> u32 {
    8191
}

fn default_udp_ports() -> PortRange {
    PortRange {
        first: 20000,
        last: 59999,
    }
}

/// Measured by `cargo bench --bench capacity` (10-party conferences, memory backend),
/// with headroom for the NIC path.
fn default_participants_per_core() -> u32 {
    20_000
}

fn default_conferences_per_core() -> u32 {
    8_192
}

/// An inclusive range of UDP ports, written `first-last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl FromStr for PortRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("'{s}' is not a port range like 20000-29999");
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let first: u16 = a.trim().parse().map_err(|_| bad())?;
        let last: u16 = b.trim().parse().map_err(|_| bad())?;
        if first == 0 || first > last {
            return Err(format!(
                "port range {s}: the first port must be 1 or more and not above the last"
            ));
        }
        Ok(PortRange { first, last })
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl PortRange {
    /// The whole RTP/RTCP pairs of the range (RTP on even ports, RTCP on the next odd
    /// one), shared by every dataplane core: a pair belongs to whichever core hosts its
    /// call. `None` if the range holds no pair.
    pub fn pairs(&self) -> Option<std::ops::RangeInclusive<u16>> {
        let first = self.first.checked_add(self.first % 2)?;
        // Ports first..=last hold floor((last - first + 1) / 2) whole pairs.
        let pairs = self.last.checked_sub(first)?.div_ceil(2);
        (pairs > 0).then(|| first..=first + (pairs * 2 - 1))
    }
}

/// The control core.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ControlConfig {
    /// Address of the HTTP API (`/healthz`, `/v1/...`, `/metrics`).
    pub listen: SocketAddr,
    /// CPU to pin the control thread to (optional).
    #[serde(default)]
    pub core: Option<usize>,
    /// The bearer token every API request but `/healthz` needs (or `token_file`).
    #[serde(default)]
    pub token: Option<String>,
    /// A file holding the token (read at start-up, trailing newline trimmed).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// `/metrics` needs no token even when the API has one.
    #[serde(default)]
    pub metrics_public: bool,
    /// Serve HTTPS (on `listen`) with this certificate and key.
    #[serde(default)]
    pub tls: Option<TlsFiles>,
}

/// `tls: {cert, key}`: PEM files, the certificate chain (leaf first) and its key.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    /// The TLS server for `section`'s API.
    pub fn acceptor(&self, section: &str) -> Result<TlsAcceptor, String> {
        tls::acceptor(&format!("{section}.tls"), &self.cert, &self.key)
    }
}

/// The TLS server of `tls`, if it is set.
fn acceptor(section: &str, tls: &Option<TlsFiles>) -> Result<Option<TlsAcceptor>, String> {
    tls.as_ref().map(|t| t.acceptor(section)).transpose()
}

impl ControlConfig {
    /// The control API's TLS server, if `tls` is set.
    pub fn tls(&self) -> Result<Option<TlsAcceptor>, String> {
        acceptor("control", &self.tls)
    }

    /// Who may use the control API.
    pub fn access(&self) -> Result<Access, String> {
        Ok(secret("control.token", &self.token, &self.token_file)?
            .map_or_else(Access::open, |t| Access::bearer(&t, self.metrics_public)))
    }
}

/// The longest token file read.
const MAX_SECRET_BYTES: u64 = 4096;

/// A secret given in the file as `key` or in a file named by `key_file` (at most one of
/// them): the file's text without its trailing newline, which must not be empty.
fn secret(
    key: &str,
    inline: &Option<String>,
    file: &Option<PathBuf>,
) -> Result<Option<String>, String> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(format!("{key} and {key}_file: give one of them, not both")),
        (Some(t), None) if t.trim().is_empty() => Err(format!("{key}: must not be empty")),
        (Some(t), None) => Ok(Some(t.clone())),
        (None, Some(path)) => {
            use std::io::Read;
            let mut text = String::new();
            std::fs::File::open(path)
                .and_then(|f| f.take(MAX_SECRET_BYTES + 1).read_to_string(&mut text))
                .map_err(|e| format!("{key}_file: cannot read {}: {e}", path.display()))?;
            if text.len() as u64 > MAX_SECRET_BYTES {
                return Err(format!(
                    "{key}_file: {} is longer than {MAX_SECRET_BYTES} bytes",
                    path.display()
                ));
            }
            let t = text.trim_end_matches(['\n', '\r']);
            if t.trim().is_empty() {
                return Err(format!("{key}_file: {} is empty", path.display()));
            }
            Ok(Some(t.to_string()))
        }
        (None, None) => Ok(None),
    }
}

/// An IPv4 address with a prefix length, written `a.b.c.d/len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Cidr {
    pub addr: Ipv4Addr,
    pub prefix_len: u8,
}

impl FromStr for Ipv4Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| format!("'{s}' is not an address with a prefix, like 198.18.0.1/24"))?;
        let addr: Ipv4Addr = a
            .parse()
            .map_err(|_| format!("'{a}' is not an IPv4 address"))?;
        let prefix_len: u8 = p
            .parse()
            .ok()
            .filter(|n| (1..=32).contains(n))
            .ok_or_else(|| format!("prefix length '{p}' must be a number from 1 to 32"))?;
        Ok(Ipv4Cidr { addr, prefix_len })
    }
}

impl std::fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

impl<'de> Deserialize<'de> for Ipv4Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A configuration that could not be used, with where and why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

impl Config {
    /// Read, parse and validate `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: p.clone(),
            source,
        })?;
        Config::parse(&text, &p)
    }

    /// Parse and validate YAML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let cfg: Config = serde_yaml::from_str(text).map_err(|e| {
            let (line, column) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((0, 0));
            // serde_yaml appends "at line L column C"; we already put it in front.
            let msg = e.to_string();
            let message = match msg.rfind(" at line ") {
                Some(i) => msg[..i].to_string(),
                None => msg,
            };
            ConfigError::Syntax {
                path: origin.into(),
                line,
                column,
                message,
            }
        })?;
        cfg.validate().map_err(|message| ConfigError::Invalid {
            path: origin.into(),
            message,
        })?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), String> {
        self.store.validate()?;
        if self
            .state_dir
            .as_ref()
            .is_some_and(|d| d.as_os_str().is_empty())
        {
            return Err("state_dir: must not be empty".into());
        }
        if self.ports.is_empty() {
            return Err("ports: at least one port is needed".into());
        }
        if self.dataplane.cores.is_empty() {
            return Err("dataplane.cores: at least one dataplane core is needed".into());
        }
        if self.dataplane.cores.len() > tutti_dataplane::host::MAX_CORES {
            return Err(format!(
                "dataplane.cores: at most {} dataplane cores",
                tutti_dataplane::host::MAX_CORES
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for c in &self.dataplane.cores {
            if !seen.insert(c) {
                return Err(format!("dataplane.cores: core {c} is listed twice"));
            }
        }
        let mut devices = std::collections::HashSet::new();
        let mut ifaces = std::collections::HashSet::new();
        for (i, p) in self.ports.iter().enumerate() {
            if let Some(x) = &p.exception {
                x.validate(i)?;
                if !ifaces.insert(&x.iface) {
                    return Err(format!(
                        "ports[{i}].exception.iface: '{}' is listed twice",
                        x.iface
                    ));
                }
            }
            if p.device.trim().is_empty() {
                return Err(format!("ports[{i}].device: must not be empty"));
            }
            if !devices.insert(&p.device) {
                return Err(format!("ports[{i}].device: '{}' is listed twice", p.device));
            }
            if let Some(gw) = p.gateway {
                let mask = u32::MAX << (32 - u32::from(p.ipv4.prefix_len));
                if u32::from(gw) & mask != u32::from(p.ipv4.addr) & mask {
                    return Err(format!(
                        "ports[{i}].gateway: {gw} is not on the port's subnet {}",
                        p.ipv4
                    ));
                }
                if gw == p.ipv4.addr {
                    return Err(format!(
                        "ports[{i}].gateway: {gw} is the port's own address"
                    ));
                }
            }
        }
        if self.dataplane.udp_ports.pairs().is_none() {
            return Err(format!(
                "dataplane.udp_ports: {}-{} holds no RTP/RTCP port pair (an even port and the odd one after it)",
                self.dataplane.udp_ports.first, self.dataplane.udp_ports.last,
            ));
        }
        if self.dataplane.participants_per_core == 0 || self.dataplane.conferences_per_core == 0 {
            return Err(
                "dataplane.participants_per_core and conferences_per_core must be at least 1"
                    .into(),
            );
        }
        if let Some(n) = self.orphan.lease_misses {
            if !(1..=MAX_LEASE_MISSES).contains(&n) {
                return Err(format!(
                    "orphan.lease_misses: {n} must be from 1 to {MAX_LEASE_MISSES}"
                ));
            }
        }
        self.control.access()?;
        self.control.tls()?;
        if let Some(g) = &self.gateway {
            g.validate(&self.control)?;
        }
        if let Some(sip) = &self.sip {
            sip.validate()?;
        }
        self.validate_applications()?;
        if self.dataplane.mbufs_per_queue < 2048 {
            return Err(format!(
                "dataplane.mbufs_per_queue: {} is too few; at least 2048 (rx and tx rings take 1024 each)",
                self.dataplane.mbufs_per_queue
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
eal: ["-l", "0-1", "--no-pci", "--vdev=net_tap0,iface=tutti0", "--file-prefix=tutti"]
ports:
  - device: net_tap0          # DPDK device name, or a PCI address for a real NIC
    ipv4: 198.18.0.1/24
    gateway: 198.18.0.254     # optional next hop
dataplane:
  cores: [1]                  # lcores that poll; one queue pair per core per port
  idle_sleep_us: 0
control:
  listen: 127.0.0.1:8080
"#;

    #[test]
    fn the_documented_example_parses() {
        let c = Config::parse(GOOD, "t.yaml").unwrap();
        assert_eq!(c.ports[0].ipv4.to_string(), "198.18.0.1/24");
        assert_eq!(c.ports[0].gateway, Some(Ipv4Addr::new(198, 18, 0, 254)));
        assert_eq!(c.dataplane.cores, vec![1]);
        assert_eq!(c.dataplane.mbufs_per_queue, 8191);
        assert_eq!(c.control.listen.port(), 8080);
    }

    #[test]
    fn exception_section_defaults_and_errors() {
        let with = |x: &str| {
            GOOD.replace(
                "    gateway: 198.18.0.254     # optional next hop",
                &format!("    gateway: 198.18.0.254\n    exception: {x}"),
            )
        };
        let c = Config::parse(&with("{iface: tutti0}"), "t.yaml").unwrap();
        let x = c.ports[0].exception.as_ref().unwrap();
        assert_eq!((x.iface.as_str(), x.kind), ("tutti0", ExceptionKind::Tap));
        assert_eq!(x.bounds(), ExceptionConfig::default());
        let c = Config::parse(
            &with("{iface: sip0, kind: virtio_user, rate_pps: 500, burst: 50, queue: 64}"),
            "t.yaml",
        )
        .unwrap();
        let x = c.ports[0].exception.as_ref().unwrap();
        assert_eq!(x.kind, ExceptionKind::VirtioUser);
        assert_eq!(
            x.bounds(),
            ExceptionConfig {
                rate_pps: 500,
                burst: 50,
                queue: 64
            }
        );
        for (bad, msg) in [
            ("{iface: a23456789012345x}", "must be 1 to 15 characters"),
            ("{iface: 'tu,tti'}", "may hold only"),
            ("{iface: t0, rate_pps: 0}", "rate_pps: 0 must be from 1"),
            ("{iface: t0, queue: 100000}", "queue: 100000 must be from 1"),
            ("{iface: t0, kind: pcap}", "unknown variant `pcap`"),
            ("{iface: t0, rate: 5}", "unknown field `rate`"),
        ] {
            let e = Config::parse(&with(bad), "t.yaml").unwrap_err().to_string();
            assert!(e.contains(msg), "{bad}: {e}");
        }
    }

    #[test]
    fn port_ranges_hold_whole_even_pairs() {
        let pairs = |s: &str| s.parse::<PortRange>().unwrap().pairs();
        assert_eq!(pairs("20001-20010"), Some(20002..=20009));
        assert_eq!(pairs("20000-59999"), Some(20000..=59999));
        assert_eq!(pairs("20000-20000"), None);
        assert_eq!(pairs("20001-20002"), None);
        assert_eq!(pairs("65535-65535"), None);
        assert_eq!(pairs("65534-65535"), Some(65534..=65535));
        assert!("9-3".parse::<PortRange>().is_err());
        assert!("0-3".parse::<PortRange>().is_err());
        assert!("abc".parse::<PortRange>().is_err());
    }

    #[test]
    fn unknown_key_names_line_and_column() {
        let bad = GOOD.replace("  idle_sleep_us: 0", "  idle_sleep: 0");
        let e = Config::parse(&bad, "t.yaml").unwrap_err().to_string();
        assert!(
            e.starts_with("t.yaml:9:3: dataplane: unknown field `idle_sleep`"),
            "{e}"
        );
    }

    #[test]
    fn durations_are_written_humanely() {
        let ms = |s: &str| s.parse::<HumanDuration>().map(|d| d.0.as_millis());
        assert_eq!(ms("500ms"), Ok(500));
        assert_eq!(ms("5s"), Ok(5000));
        assert_eq!(ms("10m"), Ok(600_000));
        assert_eq!(ms("2h30m"), Ok(9_000_000));
        assert_eq!(ms("1h2m3s4ms"), Ok(3_723_004));
        assert_eq!(ms(" 3s "), Ok(3000));
        for bad in [
            "",
            "5",
            "s",
            "5 s",
            "5x",
            "1.5s",
            "-5s",
            "30m2h",
            "5s5s",
            "0s",
            "0h0m",
            "5sm",
            "99999999999999999999h",
            "9999999999999999h",
        ] {
            assert!(ms(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn the_orphan_section_sets_timers_with_defaults() {
        let c = Config::parse(GOOD, "t.yaml").unwrap();
        assert_eq!(c.orphan.timers(), OrphanConfig::default());
        let text = format!(
            "{GOOD}orphan:\n  lease_misses: 2\n  no_packet: 3s\n  single_talker: 2h30m\n  multi_talker: 10m\n  rtcp_timeout: 4s\n  rtp_timeout: 2s\n  reply_window: 1500ms\n"
        );
        let t = Config::parse(&text, "t.yaml").unwrap().orphan.timers();
        assert_eq!(t.lease_misses, 2);
        assert_eq!(t.no_packet, Duration::from_secs(3));
        assert_eq!(t.single_talker, Duration::from_secs(9000));
        assert_eq!(t.multi_talker, Duration::from_secs(600));
        assert_eq!(t.rtcp_timeout, Duration::from_secs(4));
        assert_eq!(t.rtp_timeout, Duration::from_secs(2));
        assert_eq!(t.reply_window, Duration::from_millis(1500));
        let partial = format!("{GOOD}orphan:\n  no_packet: 10m\n");
        let t = Config::parse(&partial, "t.yaml").unwrap().orphan.timers();
        assert_eq!(t.no_packet, Duration::from_secs(600));
        assert_eq!(t.rtp_timeout, OrphanConfig::default().rtp_timeout);
    }

    #[test]
    fn orphan_errors_name_line_and_column() {
        let lines = GOOD.lines().count();
        let bad = format!("{GOOD}orphan:\n  no_packet: 3 minutes\n");
        let e = Config::parse(&bad, "t.yaml").unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "t.yaml:{}:3: orphan: '3 minutes' is not a duration",
                lines + 2
            )),
            "{e}"
        );
        let bad = format!("{GOOD}orphan:\n  no_paket: 3s\n");
        let e = Config::parse(&bad, "t.yaml").unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "t.yaml:{}:3: orphan: unknown field `no_paket`",
                lines + 2
            )),
            "{e}"
        );
        let bad = format!("{GOOD}orphan:\n  lease_misses: 0\n");
        let e = Config::parse(&bad, "t.yaml").unwrap_err().to_string();
        assert!(e.contains("orphan.lease_misses: 0 must be from 1"), "{e}");
    }

    #[test]
    fn tokens_come_inline_or_from_a_file_and_bad_ones_are_explained() {
        let dir = std::env::temp_dir().join(format!("tutti-cfg-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "from-file\n").unwrap();
        let empty = dir.join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let control = |extra: &str| {
            GOOD.replace(
                "control:\n  listen: 127.0.0.1:8080\n",
                &format!("control:\n  listen: 127.0.0.1:8080\n{extra}"),
            )
        };
        let c = Config::parse(GOOD, "t.yaml").unwrap();
        assert!(!c.control.access().unwrap().is_protected());
        let c = Config::parse(&control("  token: s3cret\n"), "t.yaml").unwrap();
        assert!(c.control.access().unwrap().is_protected());
        let c = Config::parse(
            &control(&format!("  token_file: {}\n", file.display())),
            "t.yaml",
        )
        .unwrap();
        assert_eq!(
            secret("control.token", &None, &c.control.token_file).unwrap(),
            Some("from-file".to_string())
        );
        let missing = dir.join("missing");
        let long = dir.join("long");
        std::fs::write(&long, "x".repeat(5000)).unwrap();
        for (extra, want) in [
            (
                format!("  token_file: {}\n", long.display()),
                format!(
                    "control.token_file: {} is longer than 4096 bytes",
                    long.display()
                ),
            ),
            (
                format!("  token: a\n  token_file: {}\n", file.display()),
                "control.token and control.token_file: give one of them".to_string(),
            ),
            (
                "  token: \"\"\n".into(),
                "control.token: must not be empty".into(),
            ),
            (
                format!("  token_file: {}\n", empty.display()),
                format!("control.token_file: {} is empty", empty.display()),
            ),
            (
                format!("  token_file: {}\n", missing.display()),
                format!("control.token_file: cannot read {}", missing.display()),
            ),
        ] {
            let e = Config::parse(&control(&extra), "t.yaml")
                .unwrap_err()
                .to_string();
            assert!(e.contains(&want), "{extra}: {e}");
        }
        let gw = format!(
            "{GOOD}gateway:\n  listen: 127.0.0.1:8090\n  mixers: []\n  mixer_token_file: {}\n",
            missing.display()
        );
        let e = Config::parse(&gw, "t.yaml").unwrap_err().to_string();
        assert!(e.contains("gateway.mixer_token_file: cannot read"), "{e}");
        let gw = format!(
            "{GOOD}gateway:\n  listen: 127.0.0.1:8090\n  mixers: []\n  token: g\n  mixer_token_file: {}\n",
            file.display()
        );
        let g = Config::parse(&gw, "t.yaml").unwrap().gateway.unwrap();
        assert_eq!(
            g.mixer_access().unwrap().token.as_deref(),
            Some("from-file")
        );
        assert!(g.access(false).unwrap().is_protected());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_gateway_section_has_defaults_and_explained_errors() {
        assert!(Config::parse(GOOD, "t.yaml").unwrap().gateway.is_none());
        let with = |body: &str| format!("{GOOD}gateway:\n{body}");
        let c = Config::parse(
            &with("  listen: 127.0.0.1:8090\n  mixers: [\"http://198.18.0.11:8080/\"]\n  max_align: 40ms\n"),
            "t.yaml",
        )
        .unwrap();
        let g = c.gateway.expect("gateway").settings();
        assert_eq!(g.mixers, ["http://198.18.0.11:8080"]);
        assert_eq!(g.handover.max_align, Duration::from_millis(40));
        assert_eq!(g.handover.validate_frames, 5);
        assert_eq!(g.handover.validation_timeout, Duration::from_secs(2));
        for (body, want) in [
            (
                "  listen: 127.0.0.1:8080\n  mixers: []\n",
                "needs its own address",
            ),
            (
                "  listen: 127.0.0.1:8090\n  mixers: [\"198.18.0.11:8080\"]\n",
                "gateway.mixers[0]: '198.18.0.11:8080' is not a base URL",
            ),
            (
                "  listen: 127.0.0.1:8090\n  mixers: [\"http://m/v1\"]\n",
                "without a path",
            ),
            (
                "  listen: 127.0.0.1:8090\n  mixers: []\n  validate_frames: 0\n",
                "gateway.validate_frames: 0 must be from 1 to 500",
            ),
            (
                "  listen: 127.0.0.1:8090\n  mixers: []\n  max_align: 2s\n",
                "gateway.max_align: at most 500ms",
            ),
            (
                "  listen: 127.0.0.1:8090\n  mixer: []\n",
                "unknown field `mixer`",
            ),
            (
                "  listen: 127.0.0.1:8090\n  mixers: [\"https://198.18.0.11:8443\"]\n",
                "'https://198.18.0.11:8443' is https: set gateway.mixer_ca",
            ),
            (
                "  listen: 127.0.0.1:8090\n  mixers: []\n  mixer_ca: /nonexistent/ca.pem\n",
                "gateway.mixer_ca: /nonexistent/ca.pem",
            ),
            (
                "  listen: 127.0.0.1:8090\n  mixers: []\n  tls: {cert: /nonexistent/c.pem, key: /k}\n",
                "gateway.tls.cert: /nonexistent/c.pem",
            ),
        ] {
            let e = Config::parse(&with(body), "t.yaml")
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{body}: {e}");
        }
    }

    #[test]
    fn sip_auth_reads_users_and_a_users_file() {
        let dir = std::env::temp_dir().join(format!("tutti-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("users");
        std::fs::write(&file, "# users\nbob:pw2\n\ncarol:pw:3\n").unwrap();
        let sip = "sip:\n  listen: [\"udp:198.18.0.1:5060\"]\n  auth:\n";
        let yaml = format!(
            "{GOOD}{sip}    realm: tutti.test\n    users: [{{user: alice, password: pw1}}]\n    users_file: {}\n",
            file.display()
        );
        let a = Config::parse(&yaml, "t.yaml")
            .unwrap()
            .sip
            .unwrap()
            .settings();
        let a = a.auth.expect("auth");
        assert_eq!(a.realm, "tutti.test");
        assert!(a.untrusted_only);
        assert_eq!(a.users.get("alice").map(String::as_str), Some("pw1"));
        assert_eq!(a.users.get("carol").map(String::as_str), Some("pw:3"));
        assert_eq!(a.users.len(), 3);
        for (body, want) in [
            ("    realm: r\n", "at least one user"),
            (
                "    realm: \"\"\n    users: [{user: a, password: b}]\n",
                "sip.auth.realm",
            ),
            (
                "    realm: r\n    users: [{user: a, password: \"\"}]\n",
                "sip.auth.users[0]",
            ),
            (
                "    realm: r\n    users: [{user: a, password: b}, {user: a, password: c}]\n",
                "listed twice",
            ),
            (
                "    realm: r\n    users_file: /nonexistent/users\n",
                "sip.auth.users_file: /nonexistent/users",
            ),
        ] {
            let e = Config::parse(&format!("{GOOD}{sip}{body}"), "t.yaml")
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{body}: {e}");
        }
        std::fs::write(&file, "nocolon\n").unwrap();
        let e = Config::parse(&yaml, "t.yaml").unwrap_err().to_string();
        assert!(e.contains(":1: not user:password"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn applications_map_numbers_and_refuse_bad_entries() {
        let sip = "sip:\n  listen: [\"udp:198.18.0.1:5060\"]\n";
        let apps = "applications:\n  \"100\": {app: echo}\n  \"+200\": {app: announcement, prompt: goodbye, loop: true}\n  \"300\": {app: conference}\n  default: {app: announcement, prompt: goodbye}\n";
        let c = Config::parse(&format!("{GOOD}{sip}{apps}"), "t.yaml").unwrap();
        let a = c.applications();
        assert_eq!(a.numbers.get("100"), Some(&App::Echo));
        assert_eq!(
            a.numbers.get("+200"),
            Some(&App::Announcement {
                prompt: "goodbye".into(),
                looped: true
            })
        );
        assert_eq!(a.numbers.get("300"), Some(&App::Conference));
        assert_eq!(
            a.default,
            Some(App::Announcement {
                prompt: "goodbye".into(),
                looped: false
            })
        );
        assert!(Config::parse(GOOD, "t.yaml")
            .unwrap()
            .applications()
            .numbers
            .is_empty());
        for (body, want) in [
            (
                "applications:\n  \"1\": {app: echo}\n",
                "a sip: section is needed",
            ),
            (
                &format!("{sip}applications:\n  \"a b\": {{app: echo}}\n"),
                "'a b' is not a dialled number",
            ),
            (
                &format!("{sip}applications:\n  conf-1: {{app: echo}}\n"),
                "conf-<id> numbers join",
            ),
            (
                &format!("{sip}applications:\n  \"1\": {{app: announcement, prompt: \"\"}}\n"),
                "applications.1.prompt",
            ),
            (
                &format!("{sip}applications:\n  \"1\": {{app: fax}}\n"),
                "unknown variant `fax`",
            ),
            (
                &format!("{sip}applications:\n  \"1\": {{app: announcement}}\n"),
                "missing field `prompt`",
            ),
        ] {
            let e = Config::parse(&format!("{GOOD}{body}"), "t.yaml")
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{body}: {e}");
        }
    }

    #[test]
    fn the_sip_section_has_defaults_and_explained_errors() {
        assert!(Config::parse(GOOD, "t.yaml").unwrap().sip.is_none());
        let with = |body: &str| format!("{GOOD}sip:\n{body}");
        let c = Config::parse(
            &with("  listen: [\"udp:198.18.0.1:5060\", \"tcp:198.18.0.1:5060\"]\n  domain: tutti.example\n  trusted: [198.18.0.0/15]\n  max_calls: 200\n  invite_rate: 50\n  session_expires: 5m\n  auto_create: true\n"),
            "t.yaml",
        )
        .unwrap();
        let s = c.sip.expect("sip").settings();
        assert_eq!(s.listen.len(), 2);
        assert_eq!(s.listen[1].to_string(), "tcp:198.18.0.1:5060");
        assert_eq!(s.domain.as_deref(), Some("tutti.example"));
        assert!(s.trusted[0].contains(std::net::IpAddr::V4(Ipv4Addr::new(198, 19, 3, 4))));
        assert!(!s.trusted[0].contains(std::net::IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))));
        assert_eq!((s.max_calls, s.invite_rate), (200, 50));
        assert_eq!(s.session_expires, Duration::from_secs(300));
        assert!(s.auto_create);
        let d = Config::parse(&with("  listen: [\"udp:127.0.0.1:5060\"]\n"), "t.yaml")
            .unwrap()
            .sip
            .expect("sip")
            .settings();
        assert_eq!(d.max_calls, DEFAULT_MAX_CALLS);
        assert_eq!(d.invite_rate, DEFAULT_INVITE_RATE);
        assert_eq!(d.session_expires, DEFAULT_SESSION_EXPIRES);
        assert!(d.trusted.is_empty() && !d.auto_create && d.domain.is_none());
        let lines = GOOD.lines().count();
        for (body, want) in [
            (
                "  listen: [\"sctp:127.0.0.1:5060\"]\n".to_string(),
                format!("t.yaml:{}:11: sip.listen: 'sctp:127.0.0.1:5060' is not a listener like udp:198.18.0.1:5060", lines + 2),
            ),
            (
                "  listen: [\"udp:127.0.0.1\"]\n".to_string(),
                "is not a listener".to_string(),
            ),
            (
                "  listen: []\n".to_string(),
                "sip.listen: at least one listener".to_string(),
            ),
            (
                "  listen: [\"udp:127.0.0.1:5060\", \"udp:127.0.0.1:5060\"]\n".to_string(),
                "sip.listen[1]: udp:127.0.0.1:5060 is listed twice".to_string(),
            ),
            (
                "  listen: [\"udp:127.0.0.1:5060\"]\n  max_calls: 0\n".to_string(),
                "sip.max_calls: must be at least 1".to_string(),
            ),
            (
                "  listen: [\"udp:127.0.0.1:5060\"]\n  invite_rate: 0\n".to_string(),
                "sip.invite_rate: must be at least 1".to_string(),
            ),
            (
                "  listen: [\"udp:127.0.0.1:5060\"]\n  session_expires: 30s\n".to_string(),
                "sip.session_expires: at least 90s".to_string(),
            ),
            (
                "  listen: [\"udp:127.0.0.1:5060\"]\n  trusted: [198.18.0.0]\n".to_string(),
                "not an address with a prefix".to_string(),
            ),
            (
                "  listen: [\"udp:127.0.0.1:5060\"]\n  domain: \"a b\"\n".to_string(),
                "sip.domain: must be a host name".to_string(),
            ),
            (
                "  listen: [\"udp:127.0.0.1:5060\"]\n  autocreate: true\n".to_string(),
                format!("t.yaml:{}:3: sip: unknown field `autocreate`", lines + 3),
            ),
        ] {
            let e = Config::parse(&with(&body), "t.yaml")
                .unwrap_err()
                .to_string();
            assert!(e.contains(&want), "{body}: {e}");
        }
    }

    #[test]
    fn bad_values_are_explained() {
        let cases = [
            (
                GOOD.replace("198.18.0.1/24", "198.18.0.1"),
                "not an address with a prefix",
            ),
            (
                GOOD.replace("198.18.0.1/24", "198.18.0.1/33"),
                "prefix length '33'",
            ),
            (
                GOOD.replace("198.18.0.254", "198.19.0.254"),
                "not on the port's subnet",
            ),
            (
                GOOD.replace("cores: [1]", "cores: []"),
                "at least one dataplane core",
            ),
            (GOOD.replace("cores: [1]", "cores: [1, 1]"), "listed twice"),
            (
                GOOD.replace("127.0.0.1:8080", "nowhere"),
                "invalid socket address",
            ),
            (GOOD.replace("eal: [", "eal: [[["), "t.yaml:"),
        ];
        for (text, want) in cases {
            let e = Config::parse(&text, "t.yaml").unwrap_err().to_string();
            assert!(e.contains(want), "{e} should mention {want}");
        }
    }

    #[test]
    fn the_state_dir_and_store_queue_have_defaults_and_explained_errors() {
        let c = Config::parse(GOOD, "t.yaml").unwrap();
        assert_eq!(c.state_dir, None);
        assert_eq!(c.store.settings(), (256, Duration::from_secs(1)));
        let set =
            format!("{GOOD}state_dir: /var/lib/tutti\nstore: {{queue: 32, timeout: 250ms}}\n");
        let c = Config::parse(&set, "t.yaml").unwrap();
        assert_eq!(c.state_dir.as_deref(), Some(Path::new("/var/lib/tutti")));
        assert_eq!(c.store.settings(), (32, Duration::from_millis(250)));
        let redis = format!("{GOOD}store: {{backend: redis, url: 'redis://127.0.0.1:6379/0'}}\n");
        let c = Config::parse(&redis, "t.yaml").unwrap();
        assert_eq!(c.store.backend, StoreBackend::Redis);
        for (extra, want) in [
            ("store: {queue: 0}", "store.queue: use 1 to 65536"),
            ("store: {timeout: 1ms}", "store.timeout: use 10ms to 60s"),
            ("store: {timeout: 2m}", "store.timeout"),
            ("store: {depth: 3}", "unknown field `depth`"),
            ("state_dir: ''", "state_dir: must not be empty"),
            (
                "store: {backend: redis}",
                "backend redis needs the server's URL",
            ),
            (
                "store: {backend: redis, url: 'http://x'}",
                "not a redis:// URL",
            ),
            ("store: {url: 'redis://x'}", "only with backend redis"),
            ("store: {prefix: a}", "only with backend redis"),
            (
                "store: {backend: redis, url: 'redis://x', prefix: 'a b'}",
                "store.prefix",
            ),
            ("store: {backend: sqlite}", "unknown variant `sqlite`"),
        ] {
            let e = Config::parse(&format!("{GOOD}{extra}\n"), "t.yaml")
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{extra}: {e}");
        }
    }
}
