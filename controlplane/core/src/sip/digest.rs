//! SIP digest authentication (RFC 3261 22, RFC 7616 and RFC 8760), sans-IO: challenges
//! (`WWW-Authenticate`, SHA-256 and MD5, `qop=auth`), nonces that expire (an expired
//! one is answered `stale=true`), a nonce-count that must grow (a replayed request is
//! challenged again), and the check of an `Authorization` header against the
//! configured users. The user agent asks [`Digest::verify`] about each request that
//! needs it and sends the 401 the answer asks for.

use md5::Md5;
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::time::Duration;
use tutti_dataplane::clock::Instant;

/// How long a nonce is good for.
pub const NONCE_TTL: Duration = Duration::from_secs(300);
/// Nonces kept at most (beyond, the oldest go: their users are challenged again).
const MAX_NONCES: usize = 65_536;

/// The digest algorithms, in the order challenges offer them: MD5 first, since many
/// SIP clients (sipp among them) answer the first challenge only and know no other;
/// clients that know SHA-256 pick it from the second (RFC 8760).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Sha256,
    Md5,
}

impl Algorithm {
    pub const ALL: [Algorithm; 2] = [Algorithm::Md5, Algorithm::Sha256];

    /// Its name in the headers.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Md5 => "MD5",
        }
    }

    fn parse(s: &str) -> Option<Algorithm> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(s))
    }

    /// The lowercase hex digest of `data`.
    pub fn hex(self, data: &str) -> String {
        let bytes: Vec<u8> = match self {
            Algorithm::Sha256 => Sha256::digest(data.as_bytes()).to_vec(),
            Algorithm::Md5 => Md5::digest(data.as_bytes()).to_vec(),
        };
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// An `Authorization` (or `Proxy-Authorization`) header's digest credentials.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Authorization {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub algorithm: Option<String>,
    pub cnonce: Option<String>,
    pub qop: Option<String>,
    pub nc: Option<String>,
    pub opaque: Option<String>,
}

/// Why credentials cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("not Digest credentials")]
    NotDigest,
    #[error("malformed Authorization header: {0}")]
    Malformed(&'static str),
    #[error("Authorization header lacks {0}")]
    Missing(&'static str),
}

/// The `name=value` pairs of a header value after its scheme (values quoted or not;
/// `\` escapes inside quotes).
fn params(s: &str) -> Result<Vec<(String, String)>, DigestError> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            name.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') || name.is_empty() {
            return Err(DigestError::Malformed("a parameter without a value"));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => value.push(
                        chars
                            .next()
                            .ok_or(DigestError::Malformed("an unterminated string"))?,
                    ),
                    Some(c) => value.push(c),
                    None => return Err(DigestError::Malformed("an unterminated string")),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' || c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((name.to_ascii_lowercase(), value));
        if out.len() > 32 {
            return Err(DigestError::Malformed("too many parameters"));
        }
    }
}

/// Read an `Authorization` header value.
pub fn parse_authorization(value: &str) -> Result<Authorization, DigestError> {
    let value = value.trim_start();
    let (scheme, rest) = value.split_at(value.find(char::is_whitespace).unwrap_or(value.len()));
    if !scheme.eq_ignore_ascii_case("Digest") {
        return Err(DigestError::NotDigest);
    }
    let mut a = Authorization::default();
    for (name, v) in params(rest)? {
        let field = match name.as_str() {
            "username" => &mut a.username,
            "realm" => &mut a.realm,
            "nonce" => &mut a.nonce,
            "uri" => &mut a.uri,
            "response" => &mut a.response,
            "algorithm" => a.algorithm.get_or_insert_with(String::new),
            "cnonce" => a.cnonce.get_or_insert_with(String::new),
            "qop" => a.qop.get_or_insert_with(String::new),
            "nc" => a.nc.get_or_insert_with(String::new),
            "opaque" => a.opaque.get_or_insert_with(String::new),
            _ => continue,
        };
        *field = v;
    }
    for (name, v) in [
        ("username", &a.username),
        ("realm", &a.realm),
        ("nonce", &a.nonce),
        ("uri", &a.uri),
        ("response", &a.response),
    ] {
        if v.is_empty() {
            return Err(DigestError::Missing(name));
        }
    }
    Ok(a)
}

/// The expected `response` of credentials `a` for `method` with `password`
/// (RFC 7616 3.4.1; without qop, RFC 2069's form).
pub fn response(alg: Algorithm, a: &Authorization, method: &str, password: &str) -> String {
    let ha1 = alg.hex(&format!("{}:{}:{password}", a.username, a.realm));
    let ha2 = alg.hex(&format!("{method}:{}", a.uri));
    match (&a.qop, &a.nc, &a.cnonce) {
        (Some(qop), Some(nc), Some(cnonce)) => {
            alg.hex(&format!("{ha1}:{}:{nc}:{cnonce}:{qop}:{ha2}", a.nonce))
        }
        _ => alg.hex(&format!("{ha1}:{}:{ha2}", a.nonce)),
    }
}

/// The authentication settings (`sip.auth`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthConfig {
    pub realm: String,
    /// Passwords by user name.
    pub users: HashMap<String, String>,
    /// Challenge only sources outside `sip.trusted` (else every source).
    pub untrusted_only: bool,
}

/// What a request's credentials come to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Authenticated as this user.
    Accepted(String),
    /// Answer 401 with [`Digest::challenge`] (`stale`: the nonce expired, the password
    /// was right).
    Challenge { stale: bool },
}

/// The digest authenticator: the users, and the nonces it issued.
#[derive(Debug)]
pub struct Digest {
    config: AuthConfig,
    /// Issued nonces: when, and the highest nonce-count seen.
    nonces: HashMap<String, (Instant, u32)>,
}

impl Digest {
    pub fn new(config: AuthConfig) -> Digest {
        Digest {
            config,
            nonces: HashMap::new(),
        }
    }

    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    /// A fresh nonce, issued at `now`.
    fn nonce(&mut self, now: Instant) -> String {
        if self.nonces.len() >= MAX_NONCES {
            self.nonces
                .retain(|_, (at, _)| now.saturating_since(*at) < NONCE_TTL);
            if self.nonces.len() >= MAX_NONCES {
                if let Some(oldest) = self
                    .nonces
                    .iter()
                    .min_by_key(|(_, (at, _))| *at)
                    .map(|(n, _)| n.clone())
                {
                    self.nonces.remove(&oldest);
                }
            }
        }
        let n: [u8; 16] = rand::random();
        let nonce: String = n.iter().map(|b| format!("{b:02x}")).collect();
        self.nonces.insert(nonce.clone(), (now, 0));
        nonce
    }

    /// The `WWW-Authenticate` header values of a 401 at `now`: one per algorithm
    /// (in [`Algorithm::ALL`]'s order), each with a fresh nonce.
    pub fn challenge(&mut self, now: Instant, stale: bool) -> Vec<String> {
        Algorithm::ALL
            .into_iter()
            .map(|alg| {
                let nonce = self.nonce(now);
                let stale = if stale { ", stale=true" } else { "" };
                format!(
                    "Digest realm=\"{}\", nonce=\"{nonce}\", algorithm={}, qop=\"auth\"{stale}",
                    self.config.realm,
                    alg.name()
                )
            })
            .collect()
    }

    /// Check the `Authorization` header value of a `method` request at `now` (none:
    /// challenge).
    pub fn verify(&mut self, now: Instant, method: &str, authorization: Option<&str>) -> Verdict {
        let challenge = Verdict::Challenge { stale: false };
        let Some(a) = authorization.and_then(|v| parse_authorization(v).ok()) else {
            return challenge;
        };
        let alg = match a.algorithm.as_deref() {
            None => Algorithm::Md5,
            Some(name) => match Algorithm::parse(name) {
                Some(alg) => alg,
                None => return challenge,
            },
        };
        if a.realm != self.config.realm || a.qop.as_deref() != Some("auth") {
            return challenge;
        }
        let Some(nc) =
            a.nc.as_deref()
                .and_then(|n| u32::from_str_radix(n, 16).ok())
        else {
            return challenge;
        };
        if a.cnonce.as_deref().is_none_or(str::is_empty) {
            return challenge;
        }
        let Some(password) = self.config.users.get(&a.username) else {
            return challenge;
        };
        let expected = response(alg, &a, method, password);
        if !expected.eq_ignore_ascii_case(&a.response) {
            return challenge;
        }
        let Some((issued, last_nc)) = self.nonces.get_mut(&a.nonce) else {
            // Not ours, or forgotten: right password, so say it is stale.
            return Verdict::Challenge { stale: true };
        };
        if now.saturating_since(*issued) >= NONCE_TTL {
            self.nonces.remove(&a.nonce);
            return Verdict::Challenge { stale: true };
        }
        if nc <= *last_nc {
            // A replay (or a reordered retransmission): not accepted twice.
            return challenge;
        }
        *last_nc = nc;
        Verdict::Accepted(a.username)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7616 3.9.1.
    fn rfc7616(alg: &str, response: &str) -> Authorization {
        Authorization {
            username: "Mufasa".into(),
            realm: "http-auth@example.org".into(),
            nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v".into(),
            uri: "/dir/index.html".into(),
            response: response.into(),
            algorithm: Some(alg.into()),
            cnonce: Some("f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ".into()),
            qop: Some("auth".into()),
            nc: Some("00000001".into()),
            opaque: Some("FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS".into()),
        }
    }

    #[test]
    fn rfc7616_test_vectors() {
        let md5 = rfc7616("MD5", "8ca523f5e9506fed4657c9700eebdbec");
        assert_eq!(
            response(Algorithm::Md5, &md5, "GET", "Circle of Life"),
            md5.response
        );
        let sha = rfc7616(
            "SHA-256",
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
        );
        assert_eq!(
            response(Algorithm::Sha256, &sha, "GET", "Circle of Life"),
            sha.response
        );
        // The header as RFC 7616 writes it reads back to the same credentials.
        let header = r#"Digest username="Mufasa",
       realm="http-auth@example.org",
       uri="/dir/index.html",
       algorithm=MD5,
       nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
       nc=00000001,
       cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
       qop=auth,
       response="8ca523f5e9506fed4657c9700eebdbec",
       opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#;
        assert_eq!(parse_authorization(header), Ok(md5));
    }

    #[test]
    fn bad_headers_are_errors_not_panics() {
        assert_eq!(
            parse_authorization("Basic abc"),
            Err(DigestError::NotDigest)
        );
        assert_eq!(parse_authorization(""), Err(DigestError::NotDigest));
        assert!(matches!(
            parse_authorization("Digest username=\"a"),
            Err(DigestError::Malformed(_))
        ));
        assert!(matches!(
            parse_authorization("Digest username"),
            Err(DigestError::Malformed(_))
        ));
        assert_eq!(
            parse_authorization("Digest username=a, realm=b, nonce=c, uri=d"),
            Err(DigestError::Missing("response"))
        );
        let a = parse_authorization(
            r#"Digest username="a\"b", realm=r, nonce=n, uri=u, response=x, foo=bar"#,
        )
        .unwrap();
        assert_eq!(a.username, "a\"b");
    }

    fn digest() -> Digest {
        Digest::new(AuthConfig {
            realm: "tutti.test".into(),
            users: HashMap::from([("alice".to_string(), "s3cret".to_string())]),
            untrusted_only: true,
        })
    }

    /// The header a client sends for `challenge` with `password`, nonce-count `nc`.
    fn answer(challenge: &str, alg: Algorithm, password: &str, nc: u32) -> String {
        let c = parse_authorization(&challenge.replacen(
            "Digest",
            "Digest uri=x, response=x, username=x,",
            1,
        ))
        .unwrap();
        let mut a = Authorization {
            username: "alice".into(),
            realm: c.realm,
            nonce: c.nonce,
            uri: "sip:100@198.18.0.1".into(),
            algorithm: Some(alg.name().into()),
            cnonce: Some("0a4f113b".into()),
            qop: Some("auth".into()),
            nc: Some(format!("{nc:08x}")),
            ..Default::default()
        };
        a.response = response(alg, &a, "INVITE", password);
        format!(
            "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", response=\"{}\", algorithm={}, cnonce=\"0a4f113b\", qop=auth, nc={}",
            a.username, a.realm, a.nonce, a.uri, a.response, alg.name(), a.nc.as_deref().unwrap()
        )
    }

    #[test]
    fn challenge_answer_replay_and_stale_nonces_in_virtual_time() {
        let mut d = digest();
        let t0 = Instant::ZERO + Duration::from_secs(1);
        assert_eq!(
            d.verify(t0, "INVITE", None),
            Verdict::Challenge { stale: false }
        );
        let ch = d.challenge(t0, false);
        assert_eq!(ch.len(), 2);
        assert!(ch[1].contains("algorithm=SHA-256") && ch[1].contains("qop=\"auth\""));
        assert!(ch[0].contains("algorithm=MD5") && !ch[0].contains("stale"));
        for (c, alg) in ch.iter().zip(Algorithm::ALL) {
            let ok = answer(c, alg, "s3cret", 1);
            assert_eq!(
                d.verify(t0, "INVITE", Some(&ok)),
                Verdict::Accepted("alice".into())
            );
            // The same nonce-count again: a replay.
            assert_eq!(
                d.verify(t0, "INVITE", Some(&ok)),
                Verdict::Challenge { stale: false }
            );
            let next = answer(c, alg, "s3cret", 2);
            assert_eq!(
                d.verify(t0, "INVITE", Some(&next)),
                Verdict::Accepted("alice".into())
            );
            // Another method than the one signed, a wrong password: challenged.
            let third = answer(c, alg, "s3cret", 3);
            assert_eq!(
                d.verify(t0, "BYE", Some(&third)),
                Verdict::Challenge { stale: false }
            );
            let wrong = answer(c, alg, "guess", 4);
            assert_eq!(
                d.verify(t0, "INVITE", Some(&wrong)),
                Verdict::Challenge { stale: false }
            );
        }
        // An expired nonce with the right password: stale.
        let ch = d.challenge(t0, false);
        let late = answer(&ch[1], Algorithm::Sha256, "s3cret", 1);
        assert_eq!(
            d.verify(t0 + NONCE_TTL, "INVITE", Some(&late)),
            Verdict::Challenge { stale: true }
        );
        assert!(d.challenge(t0, true)[0].ends_with("stale=true"));
        // Another realm, an unknown user: challenged.
        let other = answer(&ch[0], Algorithm::Md5, "s3cret", 1).replace("tutti.test", "x");
        assert_eq!(
            d.verify(t0, "INVITE", Some(&other)),
            Verdict::Challenge { stale: false }
        );
    }
}
