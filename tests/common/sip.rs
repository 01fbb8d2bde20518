//! SIP test helpers: tutti in its own namespace with an exception port and a `sip:`
//! section on the service address (198.18.0.1:5060 UDP and TCP), the clients
//! (198.18.0.2-4) in a second namespace; sipp scenarios written to files; raw SIP
//! over UDP from a given client address (a Python socket in the clients' namespace).

use super::*;
use std::path::Path;

/// tutti with SIP, and the clients' namespace.
pub struct SipRig {
    pub t: Tutti,
    pub clients: Netns,
    pub tutti_ns: Netns,
    dir: PathBuf,
}

/// The `sip:` section's lines after `listen` (indented by two spaces).
pub fn sip_rig(sip_extra: &str) -> SipRig {
    let rig = exception_rig(
        "s",
        "",
        &format!("sip:\n  listen: [\"udp:198.18.0.1:5060\", \"tcp:198.18.0.1:5060\"]\n{sip_extra}"),
    );
    let dir = rig.t.dir.clone();
    let rig = SipRig {
        t: rig.t,
        clients: rig.clients,
        tutti_ns: rig.tutti_ns,
        dir,
    };
    rig.reachable();
    rig
}

/// A sipp run; killed on drop, by PID.
pub struct Sipp {
    child: Child,
    pub log: PathBuf,
}

impl Sipp {
    /// Wait for it (at most its time bound) and return whether it succeeded and its
    /// output.
    pub fn finish(mut self) -> (bool, String) {
        let ok = self.child.wait().map(|s| s.success()).unwrap_or(false);
        let out = std::fs::read_to_string(&self.log).unwrap_or_default();
        (ok, out)
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run sipp in `ns` from `local_ip` to `target` with `scenario` (XML text, written to
/// `dir`, or a built-in scenario name with `-sn`) and more arguments, for at most `secs`;
/// its errors logged in `dir`.
pub fn sipp(
    ns: &Netns,
    dir: &Path,
    target: &str,
    scenario: &str,
    local_ip: &str,
    args: &[&str],
    secs: u32,
) -> Sipp {
    let log = dir.join(format!("{}.log", unique("sipp")));
    let mut argv: Vec<String> = vec![
        "sipp".into(),
        target.into(),
        "-i".into(),
        local_ip.into(),
        "-nostdin".into(),
        "-timeout".into(),
        format!("{secs}s"),
        "-timeout_error".into(),
        "-trace_err".into(),
        "-error_file".into(),
        log.display().to_string(),
    ];
    if scenario.trim_start().starts_with('<') {
        let file = dir.join(format!("{}.xml", unique("scenario")));
        std::fs::write(&file, scenario).unwrap();
        argv.extend(["-sf".into(), file.display().to_string()]);
    } else {
        argv.extend(["-sn".into(), scenario.into()]);
    }
    argv.extend(args.iter().map(|s| s.to_string()));
    let a: Vec<&str> = argv.iter().map(String::as_str).collect();
    let child = ns_spawn(ns, secs + 10, &a);
    Sipp { child, log }
}

impl SipRig {
    /// Run sipp in the clients' namespace from `local_ip` to tutti's SIP address with
    /// `scenario` (see [`sipp`]).
    pub fn sipp(&self, scenario: &str, local_ip: &str, args: &[&str], secs: u32) -> Sipp {
        sipp(
            &self.clients,
            &self.dir,
            "198.18.0.1:5060",
            scenario,
            local_ip,
            args,
            secs,
        )
    }

    /// Wait until SIP answers each client address (OPTIONS; at most 10 tries each): the
    /// kernel behind the exception port has resolved the clients' addresses.
    fn reachable(&self) {
        for ip in ["198.18.0.2", "198.18.0.3", "198.18.0.4"] {
            let answered = (0..10).any(|i| {
                let id = format!("warmup{i}");
                let r = self.exchange(&[(
                    ip,
                    request("OPTIONS", "sip:198.18.0.1", ip, &id, 1, &[], ""),
                )]);
                !last(&r[0]).is_empty()
            });
            assert!(answered, "SIP does not answer {ip}: {}", self.t.stderr());
        }
    }

    /// Send each `(from_ip, message)` over UDP from its own socket to 198.18.0.1:5060 and
    /// collect what comes back within 5 s, up to a final response: one entry per
    /// message, each the list of responses (their full text).
    pub fn exchange(&self, messages: &[(&str, String)]) -> Vec<Vec<String>> {
        let input: Vec<serde_json::Value> = messages
            .iter()
            .map(|(ip, m)| serde_json::json!([ip, m]))
            .collect();
        let file = self.dir.join(format!("{}.json", unique("sipmsgs")));
        std::fs::write(&file, serde_json::to_string(&input).unwrap()).unwrap();
        let out = self
            .clients
            .exec("python3", &["-c", EXCHANGE, file.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "exchange: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("exchange output")
    }
}

const EXCHANGE: &str = r#"
import json, socket, sys, time
out = []
for ip, msg in json.load(open(sys.argv[1])):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((ip, 0))
    port = s.getsockname()[1]
    s.sendto(msg.replace("PORT", str(port)).encode(), ("198.18.0.1", 5060))
    got = []
    deadline = time.time() + 5
    while time.time() < deadline:
        s.settimeout(max(0.01, deadline - time.time()))
        try:
            d, _ = s.recvfrom(65535)
        except socket.timeout:
            break
        t = d.decode(errors="replace")
        got.append(t)
        code = int(t.split(" ")[1]) if t.startswith("SIP/2.0 ") else 0
        if code >= 200:
            break
    out.append(got)
    s.close()
print(json.dumps(out))
"#;

/// A SIP request from `ip` (the `PORT` in Via/Contact is the sender's port, filled
/// in by the sender), with extra header lines and a body.
pub fn request(
    method: &str,
    uri: &str,
    ip: &str,
    call_id: &str,
    cseq: u32,
    extra: &[&str],
    body: &str,
) -> String {
    let mut m = format!(
        "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {ip}:PORT;branch=z9hG4bK{call_id}{cseq}{method}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:test@{ip}>;tag=t{call_id}\r\nTo: <{uri}>\r\n\
         Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContact: <sip:test@{ip}:PORT>\r\n"
    );
    for e in extra {
        m.push_str(e);
        m.push_str("\r\n");
    }
    if body.is_empty() {
        m.push_str("Content-Length: 0\r\n\r\n");
    } else {
        m.push_str(&format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
    }
    m
}

/// An SDP offer from `ip:port` with payload types `fmts` (and their rtpmap lines).
pub fn offer(ip: &str, port: u16, fmts: &str, attrs: &str) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP {fmts}\r\n{attrs}"
    )
}

/// The status code of a response's text.
pub fn code(response: &str) -> u16 {
    response
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// The final response (the last) of an exchange entry, or "" if none came.
pub fn last(responses: &[String]) -> &str {
    responses.last().map_or("", String::as_str)
}

/// A baresip client in `rig`'s clients' namespace: SIP on `ip`:5080, saying a tone of
/// `hz` (an 8 kHz WAV through the aufile module), recording what it hears (the sndfile
/// module's dump of the decoded stream; the player is an aubridge to nowhere), dialling
/// `uri` at start (if not empty; it answers calls itself at once) and quitting after
/// `secs`; with `srtp`, its media is SRTP only (SDES, the srtp module's
/// `mediaenc=srtp-mand`).
pub fn baresip(
    rig: &SipRig,
    ip: &str,
    hz: u32,
    uri: &str,
    secs: u32,
    srtp: bool,
) -> (std::process::Child, std::path::PathBuf) {
    let dir = rig.t.dir.join(unique("baresip"));
    std::fs::create_dir_all(&dir).unwrap();
    let say = dir.join("say.wav");
    must(
        "python3",
        &[
            "-c",
            "import math, struct, sys, wave\nw = wave.open(sys.argv[1], 'wb'); w.setnchannels(1); w.setsampwidth(2); w.setframerate(8000)\nw.writeframes(b''.join(struct.pack('<h', int(6000 * math.sin(2 * math.pi * float(sys.argv[2]) * i / 8000))) for i in range(8000 * 30)))\n",
            say.to_str().unwrap(),
            &hz.to_string(),
        ],
    );
    std::fs::write(
        dir.join("config"),
        format!(
            "poll_method epoll\nsip_listen {ip}:5080\naudio_player aubridge,{ip}\naudio_source aufile,{say}\naudio_alert aubridge,{ip}\nausrc_srate 8000\nauplay_srate 8000\nausrc_channels 1\nauplay_channels 1\nrtp_ports 10000-10100\nsnd_path {dir}\nmodule_path /usr/lib/baresip/modules\nmodule g711.so\nmodule aufile.so\nmodule aubridge.so\nmodule sndfile.so\nmodule menu.so\n{srtp_module}module account.so\n",
            say = say.display(),
            dir = dir.display(),
            srtp_module = if srtp { "module srtp.so\n" } else { "" },
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("accounts"),
        format!(
            "<sip:caller@{ip}>;regint=0;audio_codecs=PCMU/8000;answermode=auto{}\n",
            if srtp { ";mediaenc=srtp-mand" } else { "" }
        ),
    )
    .unwrap();
    let dial = format!("/dial {uri}");
    let secs_s = secs.to_string();
    let mut argv = vec!["baresip", "-4", "-f", dir.to_str().unwrap(), "-t", &secs_s];
    if !uri.is_empty() {
        argv.extend(["-e", &dial]);
    }
    let child = ns_spawn(&rig.clients, secs + 10, &argv);
    (child, dir)
}

/// The sndfile module's dump of what a baresip client decoded, in `dir`.
pub fn decoded_wav(dir: &std::path::Path) -> std::path::PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with("-dec.wav"))
        .unwrap_or_else(|| {
            panic!(
                "no decoded dump in {}: {:?}",
                dir.display(),
                std::fs::read_dir(dir)
                    .unwrap()
                    .flatten()
                    .map(|e| e.file_name())
                    .collect::<Vec<_>>()
            )
        })
}
