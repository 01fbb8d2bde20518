//! Any text as what the core reads of a new call before it is answered: an
//! `Authorization` header (parsed, then checked against a challenge the authenticator
//! issued), and the dialled numbers (Request-URI user, To user) routed by an
//! applications table. Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use tutti_control_core::sip::apps::{App, Applications};
use tutti_control_core::sip::digest::{parse_authorization, AuthConfig, Digest};
use tutti_dataplane::clock::Instant;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = parse_authorization(&text);
    let mut d = Digest::new(AuthConfig {
        realm: "tutti.test".into(),
        users: HashMap::from([("alice".to_string(), "s3cret".to_string())]),
        untrusted_only: false,
    });
    let now = Instant::ZERO + Duration::from_secs(1);
    for c in d.challenge(now, false) {
        // The fuzzer's header with an issued nonce in it, too.
        let nonce = c.split("nonce=\"").nth(1).and_then(|r| r.split('"').next());
        let with = nonce.map(|n| text.replace("NONCE", n));
        let _ = d.verify(now, "INVITE", with.as_deref().or(Some(&text)));
    }
    let apps = Applications {
        numbers: BTreeMap::from([("100".to_string(), App::Echo)]),
        default: None,
    };
    let mut users = text.splitn(2, '\n');
    let _ = apps.route(users.next(), users.next());
});
