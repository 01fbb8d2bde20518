//! SIP end to end: tutti in its own namespace, SIP on the service address through the
//! exception path, real peers (sipp, raw UDP) in the clients' namespace.

mod common;
use common::sip::*;
use common::*;
use serde_json::Value;
use std::time::Duration;

#[test]
fn refusals_malformed_messages_options_and_limits() {
    let _turn = one_at_a_time();
    let rig =
        sip_rig("  trusted: [198.18.0.2/32, 198.18.0.3/32]\n  max_calls: 1\n  invite_rate: 3\n");
    let t = &rig.t;
    let (c, v) = t.call("POST", "/v1/conferences", Some(r#"{"id":"c1"}"#));
    assert_eq!(c, 201, "{v}");
    let uri = |conf: &str| format!("sip:conf-{conf}@198.18.0.1");
    let a = "198.18.0.2";
    let b = "198.18.0.3";
    let pcmu = offer(a, 40000, "0", "a=rtpmap:0 PCMU/8000\r\n");
    let samples = [
        (
            "tutti_sip_requests_total{method=\"INVITE\",code=\"404\"}",
            1.0,
        ),
        (
            "tutti_sip_requests_total{method=\"INVITE\",code=\"488\"}",
            1.0,
        ),
        (
            "tutti_sip_requests_total{method=\"INVITE\",code=\"400\"}",
            2.0,
        ),
        (
            "tutti_sip_requests_total{method=\"INVITE\",code=\"503\"}",
            2.0,
        ),
        (
            "tutti_sip_requests_total{method=\"INVITE\",code=\"200\"}",
            1.0,
        ),
        (
            "tutti_sip_requests_total{method=\"INVITE\",code=\"422\"}",
            1.0,
        ),
        (
            "tutti_sip_requests_total{method=\"OPTIONS\",code=\"403\"}",
            1.0,
        ),
        ("tutti_sip_requests_total{method=\"BYE\",code=\"200\"}", 1.0),
    ];
    // Counts before (the rig's reachability OPTIONS are counted too).
    let before: Vec<f64> = samples
        .iter()
        .map(|(s, _)| metric_at(t.api, s).unwrap_or(0.0))
        .collect();
    let r = rig.exchange(&[
        (a, request("OPTIONS", "sip:198.18.0.1", a, "o1", 1, &[], "")),
        // Rate: three INVITEs from one source in a second, then 503.
        (a, request("INVITE", &uri("nope"), a, "i1", 1, &[], &pcmu)),
        (
            a,
            request("INVITE", &uri("c1"), a, "i2", 1, &[], &offer(a, 40000, "18", "")),
        ),
        (
            a,
            request("INVITE", &uri("c1"), a, "i3", 1, &[], "v=0\r\nm=audio x\r\n"),
        ),
        (a, request("INVITE", &uri("c1"), a, "i4", 1, &[], &pcmu)),
        // Not a request we can read, but with the headers to answer it.
        (
            a,
            "INVITE sip:conf-c1@198.18.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 198.18.0.2:PORT;branch=z9hG4bKm1\r\nCSeq: one INVITE\r\nCall-ID: m1\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:z@w>\r\nContent-Length: 0\r\n\r\n".to_string(),
        ),
        (a, request("REGISTER", "sip:198.18.0.1", a, "g1", 1, &[], "")),
        (
            a,
            request("BYE", &uri("c1"), a, "nodialog", 2, &[], "")
                .replace("To: <sip:conf-c1@198.18.0.1>", "To: <sip:conf-c1@198.18.0.1>;tag=zz"),
        ),
        ("198.18.0.4", request("OPTIONS", "sip:198.18.0.1", "198.18.0.4", "o2", 1, &[], "")),
        // A retransmission of the first INVITE: the same answer, not counted again.
        (a, request("INVITE", &uri("nope"), a, "i1", 1, &[], &pcmu)),
    ]);
    let codes: Vec<u16> = r.iter().map(|x| code(last(x))).collect();
    assert_eq!(
        codes,
        [200, 404, 488, 400, 503, 400, 405, 481, 403, 404],
        "{r:#?}\n{}",
        t.stderr()
    );
    let tag_of = |m: &str| m.split(";tag=").nth(2).map(|t| t[..16].to_string());
    assert_eq!(
        tag_of(last(&r[1])),
        tag_of(last(&r[9])),
        "the same answer: {r:#?}"
    );

    // Over TCP a message without Content-Length cannot be framed: 400, and the
    // connection is closed.
    let tcp = rig.clients.exec(
        "python3",
        &[
            "-c",
            r#"
import socket, sys
c = socket.create_connection(("198.18.0.1", 5060), timeout=5)
c.sendall(sys.argv[1].encode())
out = b""
while True:
    d = c.recv(4096)
    if not d:
        break
    out += d
print(out.decode(errors="replace"))
"#,
            &request("OPTIONS", "sip:198.18.0.1", a, "tcp1", 1, &[], "")
                .replace("Content-Length: 0\r\n", "")
                .replace("SIP/2.0/UDP", "SIP/2.0/TCP"),
        ],
    );
    let text = String::from_utf8_lossy(&tcp.stdout);
    assert!(
        tcp.status.success()
            && text.starts_with("SIP/2.0 400 Bad Request (Content-Length is required over TCP)"),
        "{text}{}",
        String::from_utf8_lossy(&tcp.stderr)
    );
    let options = last(&r[0]);
    for h in [
        "Allow: INVITE, ACK, BYE, CANCEL, OPTIONS",
        "Accept: application/sdp",
        "Supported:",
    ] {
        assert!(options.contains(h), "{options}");
    }
    assert!(last(&r[2]).contains("no common codec"), "{}", last(&r[2]));
    assert!(
        last(&r[3]).starts_with("SIP/2.0 400 Bad Request (malformed SDP"),
        "{}",
        last(&r[3])
    );
    assert!(last(&r[4]).contains("Retry-After: 1"), "{}", last(&r[4]));
    assert!(last(&r[5]).contains("Call-ID: m1"), "{}", last(&r[5]));

    // One call fills the appliance (max_calls 1): OPTIONS and INVITE get 503, and the
    // call is a participant of c1.
    let r = rig.exchange(&[(
        b,
        request(
            "INVITE",
            &uri("c1"),
            b,
            "call1",
            1,
            &["Supported: timer", "Session-Expires: 120"],
            &offer(b, 40002, "8 0 101", "a=rtpmap:101 telephone-event/8000\r\n"),
        ),
    )]);
    assert_eq!(
        r[0].iter().map(|m| code(m)).collect::<Vec<_>>(),
        [100, 180, 200],
        "{r:#?}"
    );
    let ok = last(&r[0]);
    assert!(
        ok.contains("Session-Expires: 120;refresher=uac\r\nRequire: timer\r\n"),
        "{ok}"
    );
    assert!(
        ok.contains("m=audio ") && ok.contains(" RTP/AVP 8 101\r\n"),
        "{ok}"
    );
    assert!(
        ok.contains("c=IN IP4 198.18.0.1\r\n") && ok.contains("a=ptime:20"),
        "{ok}"
    );
    let tag = ok
        .split("\r\n")
        .find(|l| l.starts_with("To:"))
        .and_then(|l| l.split(";tag=").nth(1))
        .expect("our tag")
        .to_string();
    let (_, conf) = t.call("GET", "/v1/conferences/c1", None);
    let parts = conf["participants"].as_array().expect("participants");
    assert_eq!(parts.len(), 1, "{conf}");
    assert_eq!(parts[0]["remote"], "198.18.0.3:40002", "{conf}");
    assert_eq!(parts[0]["codec"], "pcma", "{conf}");
    let local = parts[0]["local"].as_str().unwrap();
    assert!(
        ok.contains(&format!("m=audio {} ", local.split(':').nth(1).unwrap())),
        "{ok}"
    );
    let to_tag = format!("To: <{}>;tag={tag}", uri("c1"));
    let r = rig.exchange(&[
        (b, request("OPTIONS", "sip:198.18.0.1", b, "o3", 1, &[], "")),
        (b, request("INVITE", &uri("c1"), b, "call2", 1, &[], &pcmu)),
    ]);
    assert_eq!(code(last(&r[0])), 503, "{r:#?}");
    assert!(
        last(&r[1]).starts_with("SIP/2.0 503 Too many calls"),
        "{r:#?}"
    );
    // BYE with our tag ends it; the appliance has room again.
    let bye = request("BYE", &uri("c1"), b, "call1", 2, &[], "").replace(
        &format!("To: <{}>\r\n", uri("c1")),
        &format!("{to_tag}\r\n"),
    );
    let r = rig.exchange(&[
        (b, bye),
        (b, request("OPTIONS", "sip:198.18.0.1", b, "o4", 1, &[], "")),
        (
            b,
            request(
                "INVITE",
                &uri("c1"),
                b,
                "short",
                1,
                &["Session-Expires: 30"],
                &pcmu,
            ),
        ),
    ]);
    assert_eq!(code(last(&r[0])), 200, "{r:#?}");
    assert_eq!(code(last(&r[1])), 200, "{r:#?}");
    // RFC 4028: an interval under Min-SE is refused with ours.
    assert_eq!(code(last(&r[2])), 422, "{r:#?}");
    assert!(last(&r[2]).contains("Min-SE: 90\r\n"), "{r:#?}");
    let (_, conf) = t.call("GET", "/v1/conferences/c1", None);
    assert_eq!(
        conf["participants"].as_array().map(Vec::len),
        Some(0),
        "{conf}"
    );

    for ((sample, n), was) in samples.iter().zip(before) {
        assert_eq!(t.metric(sample) - was, *n, "{sample}");
    }
    assert_eq!(t.metric("tutti_sip_dialogs"), 0.0);
    t.assert_metrics_valid();
    assert_eq!(t.get("/healthz").0, 200);
}

/// A sipp `<send>` of a request in a call: `method` with CSeq `cseq`, in the dialog
/// (To with tutti's tag) or not, with an SDP body or none.
fn send(method: &str, cseq: u32, in_dialog: bool, sdp: Option<&str>) -> String {
    let retrans = if method == "ACK" {
        ""
    } else {
        r#" retrans="500""#
    };
    let to_tag = if in_dialog { "[peer_tag_param]" } else { "" };
    let body = sdp.map_or_else(
        || "Content-Length: 0\n\n".to_string(),
        |b| format!("Content-Type: application/sdp\nContent-Length: [len]\n\n{b}"),
    );
    format!(
        r#"<send{retrans}><![CDATA[
{method} sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>{to_tag}
Call-ID: [call_id]
CSeq: {cseq} {method}
Contact: <sip:sipp@[local_ip]:[local_port];transport=[transport]>
Max-Forwards: 70
{body}]]></send>
"#
    )
}

/// An offer from sipp with media at `ip:port` (PCMU and telephone-events), direction
/// `dir`.
fn sipp_sdp(ip: &str, port: u16, dir: &str) -> String {
    format!(
        "v=0\no=sipp 1 1 IN IP4 {ip}\ns=-\nc=IN IP4 {ip}\nt=0 0\nm=audio {port} RTP/AVP 0 101\na=rtpmap:0 PCMU/8000\na=rtpmap:101 telephone-event/8000\na={dir}\n"
    )
}

fn scenario(body: &str) -> String {
    format!("<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<scenario name=\"tutti\">\n{body}</scenario>\n")
}

/// A sipp UAC scenario: INVITE (media at `media`), ACK, then `middle` (more XML, where
/// `REINVITE_SENDONLY` and `REINVITE_SENDRECV` stand for re-INVITEs), then nothing.
fn uac(media: (&str, u16), middle: &str) -> String {
    let (ip, port) = media;
    let invite = |cseq: u32, dir: &str| {
        format!(
            "{}<recv response=\"100\" optional=\"true\"/>\n<recv response=\"180\" optional=\"true\"/>\n<recv response=\"200\" rtd=\"true\"/>\n{}",
            send("INVITE", cseq, cseq > 1, Some(&sipp_sdp(ip, port, dir))),
            send("ACK", cseq, true, None)
        )
    };
    let middle = middle
        .replace("REINVITE_SENDONLY", &invite(2, "sendonly"))
        .replace("REINVITE_SENDRECV", &invite(3, "sendrecv"));
    scenario(&format!("{}{middle}", invite(1, "sendrecv")))
}

/// INVITE, CANCEL once it rings: 200 for the CANCEL, 487 for the INVITE, ACK.
fn cancel() -> String {
    scenario(&format!(
        "{}<recv response=\"100\" optional=\"true\"/>\n<recv response=\"180\"/>\n{}<recv response=\"200\"/>\n<recv response=\"487\"/>\n{}",
        send("INVITE", 1, false, Some(&sipp_sdp("[local_ip]", 31000, "sendrecv"))),
        send("CANCEL", 1, false, None),
        send("ACK", 1, true, None)
    ))
}

/// The caller hangs up.
fn bye() -> String {
    format!("{}<recv response=\"200\"/>\n", send("BYE", 9, true, None))
}

/// Wait for tutti's BYE and answer it.
const BYE_FROM_TUTTI: &str = r#"<recv request="BYE" timeout="60000"/>
<send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
"#;

fn participants(t: &Tutti, conf: &str) -> Vec<Value> {
    let (code, v) = t.call("GET", &format!("/v1/conferences/{conf}"), None);
    if code != 200 {
        return Vec::new();
    }
    v["participants"].as_array().cloned().unwrap_or_default()
}

fn by_remote(t: &Tutti, conf: &str, remote: &str) -> Option<Value> {
    participants(t, conf)
        .into_iter()
        .find(|p| p["remote"] == remote)
}

#[test]
fn callers_over_udp_and_tcp_hear_each_other_hold_and_hang_up_both_ways() {
    let _turn = one_at_a_time();
    // The callers' RTP stops after a few seconds while the calls go on: an RTP
    // timeout longer than the test, so that only hold, BYE and the API end them.
    let mut rig =
        sip_rig("  auto_create: true\n  domain: tutti.test\norphan:\n  rtp_timeout: 2m\n");
    let t = &rig.t;
    let events = sse_collect(t.api, "/v1/events", 40);
    std::thread::sleep(Duration::from_millis(300));
    // Caller A over UDP: talks, goes on hold by re-INVITE, comes back, hangs up.
    let a = rig.sipp(
        &uac(
            ("198.18.0.3", 30000),
            &format!(
                r#"<pause milliseconds="7000"/>
REINVITE_SENDONLY<pause milliseconds="3000"/>
REINVITE_SENDRECV<pause milliseconds="2000"/>
{}"#,
                bye()
            ),
        ),
        "198.18.0.2",
        &["-s", "conf-room", "-m", "1", "-p", "5070", "-mp", "7000"],
        40,
    );
    // Caller B over TCP: talks, and tutti hangs up when the API deletes it.
    let b = rig.sipp(
        &uac(("198.18.0.4", 30000), BYE_FROM_TUTTI),
        "198.18.0.2",
        &[
            "-s",
            "conf-room",
            "-m",
            "1",
            "-p",
            "5072",
            "-mp",
            "7100",
            "-t",
            "t1",
        ],
        40,
    );
    t.wait_for(10, "two SIP participants", |t| {
        participants(t, "room").len() == 2
    });
    let pa = by_remote(t, "room", "198.18.0.3:30000").expect("caller A");
    let pb = by_remote(t, "room", "198.18.0.4:30000").expect("caller B");
    assert_eq!(pa["codec"], "pcmu", "{pa}");
    assert_eq!(pa["telephone_event_pt"], 101, "{pa}");
    assert_eq!(pa["hold"], false, "{pa}");
    // A SIP participant in the REST API: its call.
    assert!(
        pa["sip"]["call_id"].as_str().is_some_and(|c| !c.is_empty()),
        "{pa}"
    );
    assert_eq!(pa["sip"]["from"], "sip:sipp@198.18.0.2:5070", "{pa}");
    assert_eq!(pa["sip"]["to"], "sip:conf-room@198.18.0.1:5060", "{pa}");
    hear_each_other_rtp(
        &rig,
        [
            ("198.18.0.3:30000", pa["local"].as_str().unwrap()),
            ("198.18.0.4:30000", pb["local"].as_str().unwrap()),
        ],
    );

    let hold = |want: bool| {
        move |t: &Tutti| by_remote(t, "room", "198.18.0.3:30000").is_some_and(|p| p["hold"] == want)
    };
    t.wait_for(15, "caller A on hold", hold(true));
    t.wait_for(10, "caller A back", hold(false));
    let (ok, log) = a.finish();
    assert!(ok, "caller A: {log}\n{}", t.stderr());
    assert_eq!(participants(t, "room").len(), 1);

    let pid = pb["id"].as_str().unwrap();
    let (status, v) = t.call(
        "DELETE",
        &format!("/v1/conferences/room/participants/{pid}"),
        None,
    );
    assert_eq!(status, 204, "{v}");
    let (ok, log) = b.finish();
    assert!(ok, "caller B got no BYE: {log}\n{}", t.stderr());
    assert_eq!(t.metric("tutti_sip_dialogs"), 0.0);
    assert_eq!(
        t.metric("tutti_sip_requests_total{method=\"INVITE\",code=\"200\"}"),
        4.0
    );
    assert_eq!(
        t.metric("tutti_sip_requests_total{method=\"BYE\",code=\"200\"}"),
        1.0
    );

    // CANCEL while it rings: 487, and the call never joins.
    let (ok, log) = rig
        .sipp(
            &cancel(),
            "198.18.0.2",
            &["-s", "conf-room", "-m", "1", "-p", "5074", "-mp", "7200"],
            20,
        )
        .finish();
    assert!(ok, "cancel: {log}\n{}", t.stderr());
    assert_eq!(
        t.metric("tutti_sip_requests_total{method=\"INVITE\",code=\"487\"}"),
        1.0
    );
    assert_eq!(
        t.metric("tutti_sip_requests_total{method=\"CANCEL\",code=\"200\"}"),
        1.0
    );
    assert!(participants(t, "room").is_empty());

    // A wrong domain is not ours.
    let r = rig.exchange(&[(
        "198.18.0.2",
        request(
            "INVITE",
            "sip:conf-room@elsewhere.test",
            "198.18.0.2",
            "d1",
            1,
            &[],
            &offer("198.18.0.2", 4000, "0", ""),
        ),
    )]);
    assert_eq!(code(last(&r[0])), 404, "{r:?}");

    let (st, _) = rig.t.terminate();
    assert!(st.success(), "exit status {st}");
    let text = events.join().unwrap();
    let evs = sse_events(&text);
    let kinds: Vec<(&str, Option<&str>)> = evs
        .iter()
        .filter(|e| e["type"].as_str().is_some_and(|k| k.starts_with("call_")))
        .map(|e| (e["type"].as_str().unwrap(), e["reason"].as_str()))
        .collect();
    for want in [
        ("call_ringing", None),
        ("call_answered", None),
        ("call_held", None),
        ("call_resumed", None),
        ("call_ended", Some("bye")),
        ("call_ended", Some("deleted")),
        ("call_ended", Some("cancel")),
    ] {
        assert!(kinds.contains(&want), "{want:?} not in {kinds:?}");
    }
}

/// Junk for the SIP listeners while calls are up, from 198.18.0.3: `n` datagrams of
/// unreadable SIP (garbage, binary, truncated, no Via, huge headers, broken SDP, a bad
/// response) over UDP; `n / 20` TCP connections holding half a message open meanwhile,
/// and `n / 20` sending one that cannot be framed (each waits for the 400 and the close,
/// 2 s at most). Prints how many tutti closed.
const JUNK: &str = r#"
import socket, sys, time
n = int(sys.argv[1])
via = "Via: SIP/2.0/UDP 198.18.0.3:5999;branch=z9hG4bKjunk"
junk = [
    b"\x00\xff\xfe garbage",
    b"INVITE sip:conf-load@198.18.0.1 SIP/2.0\r\n\r\n",
    ("INVITE sip:conf-load@198.18.0.1 SIP/2.0\r\n" + via + "\r\nCSeq: x INVITE\r\n\r\n").encode(),
    ("BYE sip:x SIP/2.0\r\n" + via + "\r\nCall-ID: nope\r\nX: " + "y" * 60000 + "\r\n\r\n").encode(),
    ("INVITE sip:conf-load@198.18.0.1 SIP/2.0\r\n" + via + "\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:conf-load@198.18.0.1>\r\n"
     "Call-ID: junk\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: 9\r\n\r\nv=0\r\nm=x").encode(),
    b"SIP/2.0 200 OK\r\nCall-ID: whatever\r\nCSeq: 1 INVITE\r\n\r\n",
    b"\r\n\r\n",
]
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("198.18.0.3", 0))
for i in range(n):
    u.sendto(junk[i % len(junk)], ("198.18.0.1", 5060))
    if i % 50 == 0:
        time.sleep(0.01)
# Half a message on each of these, left open meanwhile; unframable ones get 400 and close.
half = []
for i in range(n // 20):
    t = socket.create_connection(("198.18.0.1", 5060), timeout=2, source_address=("198.18.0.3", 0))
    t.sendall(b"OPTIONS sip:x SIP/2.0\r\nContent-Length: 10")
    half.append(t)
closed = 0
for i in range(n // 20):
    t = socket.create_connection(("198.18.0.1", 5060), timeout=2, source_address=("198.18.0.3", 0))
    t.sendall(junk[1 + 2 * (i % 2)])
    try:
        while t.recv(65535):
            pass
        closed += 1
    except socket.timeout:
        pass
    t.close()
for t in half:
    t.close()
print(closed)
"#;

#[test]
fn two_hundred_concurrent_sipp_calls_with_media_echoed_through_malformed_sip() {
    let _turn = one_at_a_time();
    // The defaults but auto_create: max_calls 1000, invite_rate 100 per source.
    let mut rig = sip_rig("  auto_create: true\n");
    let t = &rig.t;
    let rx0 = t.metric("tutti_rx_packets_total{core=\"1\"}");
    // sipp's built-in UAC: 200 calls at 50 per second, each up for 10 s, RTP echoed.
    let calls = rig.sipp(
        "uac",
        "198.18.0.2",
        &[
            "-s",
            "conf-load",
            "-m",
            "200",
            "-l",
            "200",
            "-r",
            "50",
            "-d",
            "10000",
            "-rtp_echo",
            "-mp",
            "6000",
        ],
        80,
    );
    t.wait_for(30, "200 SIP participants", |t| {
        participants(t, "load").len() == 200
    });
    assert_eq!(t.metric("tutti_sip_dialogs"), 200.0);
    // Junk over UDP and TCP while they are up changes nothing for them.
    let junk = rig.clients.exec("python3", &["-c", JUNK, "400"]);
    assert!(
        junk.status.success(),
        "junk: {:?} {} {}",
        junk.status,
        String::from_utf8_lossy(&junk.stdout),
        String::from_utf8_lossy(&junk.stderr)
    );
    let closed = String::from_utf8_lossy(&junk.stdout).trim().to_string();
    assert_eq!(
        closed, "20",
        "every unframable TCP message closes its connection"
    );
    assert_eq!(participants(t, "load").len(), 200, "{}", t.stderr());
    assert_eq!(t.get("/healthz").0, 200);

    let (ok, log) = calls.finish();
    assert!(ok, "sipp: {log}\n{}", t.stderr());
    // Media flowed both ways: each call's stream came back from sipp's echo (about 500
    // packets a call over 10 s; at least 50 a call, on a machine shared with builds).
    let echoed = t.metric("tutti_rx_packets_total{core=\"1\"}") - rx0;
    eprintln!("200 SIP calls: {echoed} packets received back from sipp's RTP echo");
    assert!(echoed >= 200.0 * 50.0, "{echoed} packets echoed");
    t.wait_for(10, "the calls ended", |t| {
        participants(t, "load").is_empty()
    });
    assert_eq!(
        t.metric("tutti_sip_requests_total{method=\"INVITE\",code=\"200\"}"),
        200.0
    );
    assert_eq!(
        t.metric("tutti_sip_requests_total{method=\"BYE\",code=\"200\"}"),
        200.0
    );
    assert!(t.metric("tutti_sip_requests_total{method=\"INVITE\",code=\"400\"}") > 0.0);
    assert_eq!(t.metric("tutti_sip_dialogs"), 0.0);
    let (st, _) = rig.t.terminate();
    assert!(st.success(), "exit status {st}");
}

/// Each of the baresip clients `clients` (in `FREQS` order: client `i` says
/// `FREQS[i]`) heard the other's tone, not its own, in the last second of its call.
fn hear_each_other(clients: [(std::process::Child, std::path::PathBuf); 2]) {
    let mut heard = Vec::new();
    for (mut child, dir) in clients {
        let _ = child.wait();
        heard.push(decoded_wav(&dir));
    }
    for (i, wav) in heard.iter().enumerate() {
        let r = analyze_wav(wav, &FREQS[..2]);
        let (own, other) = (db(&r, FREQS[i]), db(&r, FREQS[1 - i]));
        eprintln!("baresip {i} heard: {r}");
        assert!(
            r["seconds"].as_f64().unwrap() >= 3.0 && other - own >= 20.0,
            "baresip {i} hears {other:.1} dB of the other, {own:.1} dB of itself: {r}"
        );
    }
}

#[test]
fn two_baresip_clients_in_one_conference_hear_each_other() {
    let _turn = one_at_a_time();
    let mut rig = sip_rig("  auto_create: true\n");
    let a = baresip(
        &rig,
        "198.18.0.3",
        FREQS[0],
        "sip:conf-bare@198.18.0.1",
        10,
        false,
    );
    let b = baresip(
        &rig,
        "198.18.0.4",
        FREQS[1],
        "sip:conf-bare@198.18.0.1",
        10,
        false,
    );
    rig.t.wait_for(10, "two baresip participants", |t| {
        participants(t, "bare").len() == 2
    });
    hear_each_other([a, b]);
    let (st, _) = rig.t.terminate();
    assert!(st.success(), "exit status {st}");
}

#[test]
fn a_dialled_baresip_and_a_caller_hear_each_other() {
    let _turn = one_at_a_time();
    let mut rig = sip_rig("  auto_create: true\n");
    let t = &rig.t;
    // The callee answers by itself; the caller calls in once it is dialled.
    let callee = baresip(&rig, "198.18.0.4", FREQS[1], "", 14, false);
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(
        t.call("POST", "/v1/conferences", Some(r#"{"id": "mix"}"#))
            .0,
        201
    );
    let (code, p) = dial(t, "mix", r#"{"to": "sip:caller@198.18.0.4:5080"}"#);
    assert_eq!(code, 202, "{p}");
    let pid = p["id"].as_str().unwrap().to_string();
    let p = wait_dial_state(t, "mix", &pid, "answered");
    assert_eq!(p["codec"], "pcmu", "baresip takes PCMU only: {p}");
    let caller = baresip(
        &rig,
        "198.18.0.3",
        FREQS[0],
        "sip:conf-mix@198.18.0.1",
        11,
        false,
    );
    t.wait_for(10, "the caller and the dialled callee", |t| {
        participants(t, "mix").len() == 2
    });
    // Both talk a while; deleting the conference then ends both calls at once (BYE to
    // each), so the last second of each recording has the other in it.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(t.call("DELETE", "/v1/conferences/mix", None).0, 204);
    hear_each_other([caller, callee]);
    let (st, _) = rig.t.terminate();
    assert!(st.success(), "exit status {st}");
}

#[test]
fn a_caller_whose_rtp_stops_is_hung_up_at_the_rtp_timeout() {
    let _turn = one_at_a_time();
    let mut rig = sip_rig("  auto_create: true\norphan:\n  rtp_timeout: 2s\n");
    let t = &rig.t;
    let events = sse_collect(t.api, "/v1/events", 25);
    let caller = rig.sipp(
        &uac(("198.18.0.3", 30000), BYE_FROM_TUTTI),
        "198.18.0.2",
        &["-s", "conf-quiet", "-m", "1", "-p", "5070", "-mp", "7000"],
        30,
    );
    t.wait_for(10, "the SIP participant", |t| {
        participants(t, "quiet").len() == 1
    });
    let p = by_remote(t, "quiet", "198.18.0.3:30000").expect("caller");
    // One second of RTP, then none: a dead phone.
    Peer::start(
        &rig.clients,
        "198.18.0.3:30000",
        p["local"].as_str().unwrap(),
        1,
        &[],
    )
    .finish();
    let (ok, log) = caller.finish();
    assert!(ok, "the caller got no BYE: {log}\n{}", t.stderr());
    assert!(participants(t, "quiet").is_empty());
    let (st, _) = rig.t.terminate();
    assert!(st.success(), "exit status {st}");
    let evs = sse_events(&events.join().unwrap());
    assert!(
        evs.iter()
            .any(|e| e["type"] == "call_ended" && e["reason"] == "rtp_timeout"),
        "{evs:?}"
    );
}

/// A call from 198.18.0.2:5070 to conference `conf` whose INVITE says `Contact:
/// <sip:sipp@198.18.0.3:5071>` and carries the header lines `extra`, ended by DELETE:
/// tutti's BYE must reach `hop` (a sipp there checks that its Request-URI is the Contact
/// and that it has each line of `routes`) and nowhere else.
fn bye_reaches(rig: &SipRig, conf: &str, extra: &str, hop: (&str, u16), routes: &[&str]) {
    let t = &rig.t;
    let caller = uac(("198.18.0.2", 30000), "")
        .replace(
            "Contact: <sip:sipp@[local_ip]:[local_port];",
            "Contact: <sip:sipp@198.18.0.3:5071;",
        )
        .replacen(
            "Max-Forwards: 70\n",
            &format!("Max-Forwards: 70\n{extra}"),
            1,
        );
    assert!(caller.contains("198.18.0.3:5071"), "{caller}");
    let checks: String = std::iter::once("BYE sip:sipp@198[.]18[.]0[.]3:5071;".to_string())
        .chain(routes.iter().map(|r| {
            r.replace('.', "[.]")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        }))
        .enumerate()
        .map(|(i, re)| {
            format!(
                "<ereg regexp=\"{re}\" search_in=\"msg\" check_it=\"true\" assign_to=\"m{i}\"/>\n"
            )
        })
        .collect();
    let catcher = BYE_FROM_TUTTI.replacen(
        "<recv request=\"BYE\" timeout=\"60000\"/>",
        &format!(
            "<recv request=\"BYE\" timeout=\"60000\"><action>\n{checks}</action></recv>\n<Reference variables=\"{}\"/>",
            (0..=routes.len()).map(|i| format!("m{i}")).collect::<Vec<_>>().join(",")
        ),
        1,
    );
    let port = hop.1.to_string();
    let catcher = rig.sipp(&scenario(&catcher), hop.0, &["-p", &port, "-m", "1"], 30);
    let caller = rig.sipp(
        &caller,
        "198.18.0.2",
        &[
            "-s",
            &format!("conf-{conf}"),
            "-m",
            "1",
            "-p",
            "5070",
            "-mp",
            "7000",
        ],
        20,
    );
    let (ok, log) = caller.finish();
    assert!(ok, "the call was not set up: {log}\n{}", t.stderr());
    let p = by_remote(t, conf, "198.18.0.2:30000").expect("the caller's participant");
    let pid = p["id"].as_str().unwrap();
    let (code, _) = t.call(
        "DELETE",
        &format!("/v1/conferences/{conf}/participants/{pid}"),
        None,
    );
    assert_eq!(code, 204);
    let (ok, log) = catcher.finish();
    assert!(ok, "no BYE as expected at {hop:?}: {log}\n{}", t.stderr());
    t.wait_for(5, "the dialog gone", |t| {
        t.metric("tutti_sip_dialogs") == 0.0
    });
}

#[test]
fn tutti_sends_its_bye_along_the_route_set_to_the_callers_contact() {
    let _turn = one_at_a_time();
    let rig = sip_rig("  auto_create: true\n");
    // No route set: to the Contact, not to where the INVITE came from.
    bye_reaches(&rig, "target", "", ("198.18.0.3", 5071), &[]);
    // A record-routing proxy at 198.18.0.4:5072: through it, the Contact the
    // Request-URI (RFC 3261 12.2.1.1, loose routing).
    bye_reaches(
        &rig,
        "routed",
        "Record-Route: <sip:198.18.0.4:5072;lr>\n",
        ("198.18.0.4", 5072),
        &["Route: <sip:198.18.0.4:5072;lr>"],
    );
}

/// A sipp UAS scenario: the INVITE, 100, then `answer` (XML), for dial-out tests.
fn uas(answer: &str) -> String {
    scenario(&format!(
        r#"<recv request="INVITE" timeout="20000"/>
{}{answer}"#,
        respond("100 Trying", "", "")
    ))
}

/// A sipp `<send>` of a response to the last request received, with `to_tag` (sipp's
/// tag, or none) and a `cseq` other than the request's if given.
fn respond(status: &str, to_tag: &str, cseq: &str) -> String {
    let cseq = if cseq.is_empty() {
        "[last_CSeq:]".to_string()
    } else {
        format!("CSeq: {cseq}")
    };
    format!(
        "<send><![CDATA[\nSIP/2.0 {status}\n[last_Via:]\n[last_From:]\n[last_To:]{to_tag}\n[last_Call-ID:]\n{cseq}\nContact: <sip:sipp@[local_ip]:[local_port]>\nContent-Length: 0\n\n]]></send>\n"
    )
}

const SIPP_TAG: &str = ";tag=[pid]SIPpTag01[call_number]";

fn dial(t: &Tutti, conf: &str, body: &str) -> (u16, Value) {
    t.call("POST", &format!("/v1/conferences/{conf}/dial"), Some(body))
}

fn wait_dial_state(t: &Tutti, conf: &str, pid: &str, state: &str) -> Value {
    let path = format!("/v1/conferences/{conf}/participants/{pid}");
    let mut last = Value::Null;
    t.wait_for(20, &format!("{pid} {state}"), |t| {
        last = t.call("GET", &path, None).1;
        last["dial"]["state"] == state || last["dial"]["state"] == "failed"
    });
    assert_eq!(last["dial"]["state"], state, "{last}");
    last
}

#[test]
fn dial_out_answered_refused_and_unanswered() {
    let _turn = one_at_a_time();
    let mut rig = sip_rig("  auto_create: true\n");
    let t = &rig.t;
    let events = sse_collect(t.api, "/v1/events", 45);
    assert_eq!(
        t.call("POST", "/v1/conferences", Some(r#"{"id": "d"}"#)).0,
        201
    );
    // Refused before anything is sent: unknown conference, bad URI, bad codec.
    assert_eq!(dial(t, "nope", r#"{"to": "sip:a@198.18.0.2:5070"}"#).0, 404);
    assert_eq!(dial(t, "d", r#"{"to": "alice"}"#).0, 422);
    let (code, e) = dial(t, "d", r#"{"to": "sip:a@198.18.0.2", "codecs": ["G729"]}"#);
    assert_eq!(code, 422, "{e}");
    assert_eq!(participants(t, "d").len(), 0);

    // Answered: sipp's built-in UAS echoing RTP at 198.18.0.2:6100.
    let callee = rig.sipp(
        "uas",
        "198.18.0.2",
        &["-p", "5070", "-m", "1", "-rtp_echo", "-mp", "6100"],
        40,
    );
    std::thread::sleep(Duration::from_millis(500));
    let rx0 = t.metric("tutti_rx_packets_total{core=\"1\"}");
    let (code, p) = dial(
        t,
        "d",
        r#"{"to": "sip:alice@198.18.0.2:5070", "codecs": ["PCMU"]}"#,
    );
    assert_eq!(code, 202, "{p}");
    assert_eq!(p["dial"]["state"], "calling", "{p}");
    let pid = p["id"].as_str().unwrap().to_string();
    let p = wait_dial_state(t, "d", &pid, "answered");
    assert_eq!(p["remote"], "198.18.0.2:6100", "{p}");
    assert_eq!(p["codec"], "pcmu", "{p}");
    assert_eq!(t.metric("tutti_sip_dialogs"), 1.0);
    // Media both ways: tutti's stream to sipp comes back from its echo.
    t.wait_for(15, "RTP echoed back from the dialled callee", |t| {
        t.metric("tutti_rx_packets_total{core=\"1\"}") - rx0 >= 100.0
    });
    let (code, _) = t.call(
        "DELETE",
        &format!("/v1/conferences/d/participants/{pid}"),
        None,
    );
    assert_eq!(code, 204);
    let (ok, log) = callee.finish();
    assert!(ok, "the UAS did not get tutti's BYE: {log}\n{}", t.stderr());

    // Refused: 486 Busy Here, ACKed.
    let busy = uas(&format!(
        "{}<recv request=\"ACK\"/>\n",
        respond("486 Busy Here", SIPP_TAG, "")
    ));
    let callee = rig.sipp(&busy, "198.18.0.3", &["-p", "5071", "-m", "1"], 30);
    std::thread::sleep(Duration::from_millis(500));
    let (code, p) = dial(t, "d", r#"{"to": "sip:bob@198.18.0.3:5071"}"#);
    assert_eq!(code, 202, "{p}");
    let busy_pid = p["id"].as_str().unwrap().to_string();
    let p = wait_dial_state(t, "d", &busy_pid, "failed");
    assert_eq!(
        (p["dial"]["reason"].as_str(), p["dial"]["code"].as_u64()),
        (Some("busy"), Some(486)),
        "{p}"
    );
    let (ok, log) = callee.finish();
    assert!(ok, "no ACK for the 486: {log}\n{}", t.stderr());

    // No answer: it only rings; at timeout_ms tutti CANCELs (200, then 487 and its ACK).
    let ringing = uas(&format!(
        "{}<recv request=\"CANCEL\" timeout=\"10000\"/>\n{}{}<recv request=\"ACK\"/>\n",
        respond("180 Ringing", SIPP_TAG, ""),
        respond("200 OK", SIPP_TAG, ""),
        respond("487 Request Terminated", SIPP_TAG, "1 INVITE")
    ));
    let callee = rig.sipp(&ringing, "198.18.0.4", &["-p", "5072", "-m", "1"], 30);
    std::thread::sleep(Duration::from_millis(500));
    let (code, p) = dial(
        t,
        "d",
        r#"{"to": "sip:carol@198.18.0.4:5072", "timeout_ms": 1000}"#,
    );
    assert_eq!(code, 202, "{p}");
    let silent_pid = p["id"].as_str().unwrap().to_string();
    let p = wait_dial_state(t, "d", &silent_pid, "failed");
    assert_eq!(p["dial"]["reason"], "no_answer", "{p}");
    let (ok, log) = callee.finish();
    assert!(ok, "the UAS saw no CANCEL: {log}\n{}", t.stderr());

    // Over TCP (the URI says so): from the TCP listener's address, on one connection.
    let callee = rig.sipp(
        "uas",
        "198.18.0.2",
        &[
            "-p",
            "5073",
            "-t",
            "t1",
            "-m",
            "1",
            "-rtp_echo",
            "-mp",
            "6200",
        ],
        40,
    );
    std::thread::sleep(Duration::from_millis(500));
    let (code, p) = dial(
        t,
        "d",
        r#"{"to": "sip:dave@198.18.0.2:5073;transport=tcp"}"#,
    );
    assert_eq!(code, 202, "{p}");
    let tcp_pid = p["id"].as_str().unwrap().to_string();
    let p = wait_dial_state(t, "d", &tcp_pid, "answered");
    assert_eq!(p["remote"], "198.18.0.2:6200", "{p}");
    let uri = format!("/v1/conferences/d/participants/{tcp_pid}");
    assert_eq!(t.call("DELETE", &uri, None).0, 204);
    let (ok, log) = callee.finish();
    assert!(
        ok,
        "the TCP UAS did not get tutti's BYE: {log}\n{}",
        t.stderr()
    );
    // Nobody listens: the connection is refused, the call unreachable.
    let (code, p) = dial(t, "d", r#"{"to": "sip:eve@198.18.0.3:5999;transport=tcp"}"#);
    assert_eq!(code, 202, "{p}");
    let p = wait_dial_state(t, "d", p["id"].as_str().unwrap(), "failed");
    assert_eq!(p["dial"]["reason"], "unreachable", "{p}");

    // The failed ones are gone from the conference (ports freed), visible until deleted.
    assert!(participants(t, "d").is_empty());
    let uri = format!("/v1/conferences/d/participants/{busy_pid}");
    assert_eq!(t.call("DELETE", &uri, None).0, 204);
    assert_eq!(t.call("GET", &uri, None).0, 404);
    assert_eq!(t.metric("tutti_sip_dialogs"), 0.0);

    let evs = sse_events(&events.join().unwrap());
    let of = |kind: &str, pid: &str| {
        evs.iter()
            .find(|e| e["type"] == kind && e["participant"] == pid)
            .cloned()
    };
    assert!(of("call_ringing", &pid).is_some(), "{evs:?}");
    assert!(of("call_answered", &pid).is_some(), "{evs:?}");
    let failed = of("call_failed", &busy_pid).expect("call_failed for the busy callee");
    assert_eq!(
        (failed["reason"].as_str(), failed["code"].as_u64()),
        (Some("busy"), Some(486))
    );
    let failed = of("call_failed", &silent_pid).expect("call_failed for the silent callee");
    assert_eq!(failed["reason"], "no_answer");
    let (st, _) = rig.t.terminate();
    assert!(st.success(), "exit status {st}");
}

/// A SIP caller moved to another conference (REST `move`) keeps its call: its BYE ends
/// it there, and deleting it there sends the BYE.
#[test]
fn moved_callers_hang_up_and_are_hung_up_in_their_new_conference() {
    let _turn = one_at_a_time();
    let rig = sip_rig("  auto_create: true\norphan:\n  rtp_timeout: 2m\n");
    let t = &rig.t;
    let (code, v) = t.call("POST", "/v1/conferences", Some(r#"{"id":"moved-to"}"#));
    assert_eq!(code, 201, "{v}");
    // Caller A hangs up 4 s in; caller B waits for tutti's BYE.
    let a = rig.sipp(
        &uac(
            ("198.18.0.3", 30000),
            &format!("<pause milliseconds=\"4000\"/>\n{}", bye()),
        ),
        "198.18.0.2",
        &[
            "-s",
            "conf-moved-from",
            "-m",
            "1",
            "-p",
            "5070",
            "-mp",
            "7000",
        ],
        30,
    );
    let b = rig.sipp(
        &uac(("198.18.0.4", 30000), BYE_FROM_TUTTI),
        "198.18.0.2",
        &[
            "-s",
            "conf-moved-from",
            "-m",
            "1",
            "-p",
            "5072",
            "-mp",
            "7100",
        ],
        30,
    );
    t.wait_for(10, "two SIP participants", |t| {
        participants(t, "moved-from").len() == 2
    });
    for p in participants(t, "moved-from") {
        let uri = format!(
            "/v1/conferences/moved-from/participants/{}/move",
            p["id"].as_str().unwrap()
        );
        let (code, v) = t.call("POST", &uri, Some(r#"{"conference":"moved-to"}"#));
        assert_eq!(code, 200, "{v}");
        assert_eq!(
            v["sip"]["call_id"], p["sip"]["call_id"],
            "the same call: {v}"
        );
    }
    assert!(participants(t, "moved-from").is_empty());
    let (ok, log) = a.finish();
    assert!(ok, "caller A: {log}\n{}", t.stderr());
    t.wait_for(
        5,
        "caller A's participant gone from its new conference",
        |t| by_remote(t, "moved-to", "198.18.0.3:30000").is_none(),
    );
    let pb = by_remote(t, "moved-to", "198.18.0.4:30000").expect("caller B moved");
    let uri = format!(
        "/v1/conferences/moved-to/participants/{}",
        pb["id"].as_str().unwrap()
    );
    let (code, v) = t.call("DELETE", &uri, None);
    assert_eq!(code, 204, "{v}");
    let (ok, log) = b.finish();
    assert!(ok, "caller B got no BYE: {log}\n{}", t.stderr());
    assert_eq!(t.metric("tutti_sip_dialogs"), 0.0);
}

/// The application conferences (`app-<tag>`) up, with their participants.
fn app_conferences(t: &Tutti) -> Vec<Value> {
    let (code, v) = t.call("GET", "/v1/conferences", None);
    assert_eq!(code, 200, "{v}");
    v["conferences"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c["id"].as_str().is_some_and(|id| id.starts_with("app-")))
        .collect()
}

#[test]
fn dialled_numbers_run_echo_and_announcement_and_unknown_ones_get_404() {
    let _turn = one_at_a_time();
    let mut rig = sip_rig(
        "orphan:\n  rtp_timeout: 2m\napplications:\n  \"100\": {app: echo}\n  \"200\": {app: announcement, prompt: goodbye}\n",
    );
    let t = &rig.t;
    let events = sse_collect(t.api, "/v1/events", 40);
    std::thread::sleep(Duration::from_millis(300));

    // A number no application has: 404; conf-<id> still joins (404 here: no such
    // conference, and no auto_create).
    let pcmu = offer("198.18.0.3", 30002, "0", "a=rtpmap:0 PCMU/8000\r\n");
    let got = rig.exchange(&[
        (
            "198.18.0.3",
            request(
                "INVITE",
                "sip:555@198.18.0.1",
                "198.18.0.3",
                "apps1",
                1,
                &[],
                &pcmu,
            ),
        ),
        (
            "198.18.0.3",
            request(
                "INVITE",
                "sip:conf-x@198.18.0.1",
                "198.18.0.3",
                "apps2",
                1,
                &[],
                &pcmu,
            ),
        ),
    ]);
    assert!(
        last(&got[0]).contains("404 No application for this number"),
        "{got:?}"
    );
    assert!(last(&got[1]).contains("404 No such conference"), "{got:?}");

    // The echo number: the caller's 1 kHz tone comes back to it.
    let caller = rig.sipp(
        &uac(
            ("198.18.0.3", 30000),
            &format!("<pause milliseconds=\"6000\"/>\n{}", bye()),
        ),
        "198.18.0.2",
        &["-s", "100", "-m", "1", "-p", "5070", "-mp", "7000"],
        30,
    );
    t.wait_for(10, "the echo call's conference", |t| {
        app_conferences(t).len() == 1
    });
    let conf = app_conferences(t)[0]["id"].as_str().unwrap().to_string();
    let p = by_remote(t, &conf, "198.18.0.3:30000").expect("the echo caller");
    let r = Peer::start(
        &rig.clients,
        "198.18.0.3:30000",
        p["local"].as_str().unwrap(),
        3,
        &["--tone".into(), "1000".into()],
    )
    .finish();
    eprintln!("the echo caller heard: {r}");
    assert!(
        db(&r, 1000) > -25.0 && db(&r, 1000) - db(&r, 440) >= 20.0,
        "the echo caller hears {:.1} dB of its 1 kHz tone, {:.1} dB at 440 Hz: {r}",
        db(&r, 1000),
        db(&r, 440)
    );
    let (ok, log) = caller.finish();
    assert!(ok, "echo caller: {log}\n{}", t.stderr());
    t.wait_for(5, "the echo conference to go", |t| {
        app_conferences(t).is_empty()
    });

    // The announcement number: the prompt reaches the caller, then tutti hangs up.
    let listener = Peer::start(&rig.clients, "198.18.0.4:30000", "198.18.0.1:9", 8, &[]);
    let caller = rig.sipp(
        &uac(("198.18.0.4", 30000), BYE_FROM_TUTTI),
        "198.18.0.2",
        &["-s", "200", "-m", "1", "-p", "5071", "-mp", "7100"],
        30,
    );
    let (ok, log) = caller.finish();
    assert!(
        ok,
        "the announcement caller got no BYE: {log}\n{}",
        t.stderr()
    );
    let heard = listener.finish();
    assert!(
        heard["received"].as_u64().unwrap_or(0) >= 25,
        "the announcement caller got no prompt: {heard}"
    );
    assert!(app_conferences(t).is_empty());
    let (st, _) = rig.t.terminate();
    assert!(st.success(), "exit status {st}");
    let evs = sse_events(&events.join().unwrap());
    assert!(
        evs.iter().any(|e| e["type"] == "prompt_done"
            && e["prompt"] == "goodbye"
            && e["completed"] == true),
        "{evs:?}"
    );
    assert!(
        evs.iter()
            .any(|e| e["type"] == "call_ended" && e["reason"] == "announcement_done"),
        "{evs:?}"
    );
}

/// sipp answers the digest challenge (`-au`/`-ap`): INVITE, 401, ACK, INVITE with
/// credentials, 200, ACK, then BYE.
fn uac_auth(media: (&str, u16)) -> String {
    let sdp = sipp_sdp(media.0, media.1, "sendrecv");
    scenario(&format!(
        "{}<recv response=\"100\" optional=\"true\"/>\n<recv response=\"401\" auth=\"true\"/>\n{}{}<recv response=\"100\" optional=\"true\"/>\n<recv response=\"180\" optional=\"true\"/>\n<recv response=\"200\" rtd=\"true\"/>\n{}<pause milliseconds=\"1000\"/>\n{}",
        send("INVITE", 1, false, Some(&sdp)),
        send("ACK", 1, false, None),
        send("INVITE", 2, false, Some(&sdp))
            .replace("Max-Forwards: 70\n", "Max-Forwards: 70\n[authentication]\n"),
        send("ACK", 2, true, None),
        bye()
    ))
}

#[test]
fn untrusted_callers_answer_a_digest_challenge_trusted_ones_are_not_asked() {
    let _turn = one_at_a_time();
    let rig = sip_rig(
        "  trusted: [198.18.0.4/32]\n  auth:\n    realm: tutti.test\n    users: [{user: alice, password: s3cret}]\napplications:\n  \"100\": {app: echo}\n",
    );
    let t = &rig.t;
    let pcmu = |ip: &str| offer(ip, 30002, "0", "a=rtpmap:0 PCMU/8000\r\n");
    let wrong = "Authorization: Digest username=\"alice\", realm=\"tutti.test\", nonce=\"00\", uri=\"sip:100@198.18.0.1\", response=\"0123\", algorithm=MD5, cnonce=\"c\", qop=auth, nc=00000001";
    let got = rig.exchange(&[
        (
            "198.18.0.3",
            request(
                "INVITE",
                "sip:100@198.18.0.1",
                "198.18.0.3",
                "auth1",
                1,
                &[],
                &pcmu("198.18.0.3"),
            ),
        ),
        (
            "198.18.0.3",
            request(
                "INVITE",
                "sip:100@198.18.0.1",
                "198.18.0.3",
                "auth2",
                1,
                &[wrong],
                &pcmu("198.18.0.3"),
            ),
        ),
        (
            "198.18.0.3",
            request(
                "INVITE",
                "sip:100@198.18.0.1",
                "198.18.0.3",
                "auth3",
                1,
                &["Authorization: Digest username"],
                &pcmu("198.18.0.3"),
            ),
        ),
        (
            "198.18.0.4",
            request(
                "INVITE",
                "sip:555@198.18.0.1",
                "198.18.0.4",
                "auth4",
                1,
                &[],
                &pcmu("198.18.0.4"),
            ),
        ),
    ]);
    for (i, want) in [(0, 401), (1, 401), (2, 401), (3, 404)] {
        assert_eq!(code(last(&got[i])), want, "{i}: {:?}", got[i]);
    }
    let challenge = last(&got[0]);
    assert!(
        challenge.contains("WWW-Authenticate: Digest realm=\"tutti.test\"")
            && challenge.contains("algorithm=SHA-256")
            && challenge.contains("algorithm=MD5")
            && challenge.contains("qop=\"auth\""),
        "{challenge}"
    );
    // sipp with the password gets in (and hangs up); with a wrong one it does not.
    let caller = rig.sipp(
        &uac_auth(("198.18.0.3", 30000)),
        "198.18.0.2",
        &[
            "-s", "100", "-m", "1", "-p", "5070", "-au", "alice", "-ap", "s3cret",
        ],
        30,
    );
    let (ok, log) = caller.finish();
    assert!(ok, "the authenticated caller: {log}\n{}", t.stderr());
    let intruder = rig.sipp(
        &uac_auth(("198.18.0.3", 30000)),
        "198.18.0.2",
        &[
            "-s", "100", "-m", "1", "-p", "5071", "-au", "alice", "-ap", "guess",
        ],
        20,
    );
    let (ok, _) = intruder.finish();
    assert!(!ok, "a wrong password got in");
    assert_eq!(
        t.metric("tutti_sip_requests_total{method=\"INVITE\",code=\"200\"}"),
        1.0
    );
    assert!(t.metric("tutti_sip_requests_total{method=\"INVITE\",code=\"401\"}") >= 5.0);
}

/// A SIP caller and a REST participant in a REST-created conference hear each other.
#[test]
fn a_sip_caller_and_a_rest_participant_hear_each_other() {
    let _turn = one_at_a_time();
    let rig = sip_rig("orphan:\n  rtp_timeout: 2m\n");
    let t = &rig.t;
    let (code, v) = t.call("POST", "/v1/conferences", Some(r#"{"id":"mixed"}"#));
    assert_eq!(code, 201, "{v}");
    let body = r#"{"remote":"198.18.0.4:31000","codec":"pcmu"}"#;
    let (code, rest) = t.call("POST", "/v1/conferences/mixed/participants", Some(body));
    assert_eq!(code, 201, "{rest}");
    let caller = rig.sipp(
        &uac(
            ("198.18.0.3", 30000),
            &format!("<pause milliseconds=\"6000\"/>\n{}", bye()),
        ),
        "198.18.0.2",
        &["-s", "conf-mixed", "-m", "1", "-p", "5070", "-mp", "7000"],
        30,
    );
    t.wait_for(10, "the SIP caller", |t| {
        participants(t, "mixed").len() == 2
    });
    let sip = by_remote(t, "mixed", "198.18.0.3:30000").expect("the caller");
    hear_each_other_rtp(
        &rig,
        [
            ("198.18.0.3:30000", sip["local"].as_str().unwrap()),
            ("198.18.0.4:31000", rest["local"].as_str().unwrap()),
        ],
    );
    let (ok, log) = caller.finish();
    assert!(ok, "caller: {log}\n{}", t.stderr());
}

/// rtp-peer clients at `ends` (`(bind, tutti's local address)`) each send a tone for 3 s
/// and hear the other's, 30 dB above their own.
fn hear_each_other_rtp(rig: &SipRig, ends: [(&str, &str); 2]) {
    let peers = ends.map(|(bind, local)| {
        let i = usize::from(bind != ends[0].0);
        let tone = vec!["--tone".to_string(), FREQS[i].to_string()];
        Peer::start(&rig.clients, bind, local, 3, &tone)
    });
    let reports: Vec<Value> = peers.into_iter().map(Peer::finish).collect();
    for (i, r) in reports.iter().enumerate() {
        let (own, other) = (db(r, FREQS[i]), db(r, FREQS[1 - i]));
        assert!(r["received"].as_u64().unwrap() >= 100, "{r}");
        assert!(
            other - own >= 30.0,
            "client {i} hears {other:.1} dB of the other, {own:.1} dB of itself: {r}"
        );
    }
}
