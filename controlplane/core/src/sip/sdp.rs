//! SDP offer/answer for SIP calls (RFC 3264): read an offer with `ezk-sdp-types`, pick
//! the first of its audio codecs the dataplane mixes (PCMU, PCMA), telephone-event/8000
//! when offered, and write the answer (ptime 20, `c=` our media address and port).
//! An `RTP/SAVP` offer is answered `RTP/SAVP` with the first of its `a=crypto` lines
//! whose suite we have (SDES, RFC 4568) and our own key of that suite.

use crate::srtp::{self, MasterKey, Suite};
use bytesstr::BytesStr;
use ezk_sdp_types::{Direction, MediaType, SessionDescription, TaggedAddress, TransportProtocol};
use std::net::SocketAddrV4;
use tutti_dataplane::codec::CodecKind;

/// The `a=crypto` line of an offer we took: its tag (the answer's line carries it too)
/// and the key the remote sends with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Crypto {
    pub tag: u32,
    pub key: MasterKey,
}

/// What an offer asks for, once negotiated.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Negotiated {
    /// Where the caller wants our RTP (its RTCP is on the next port). On hold
    /// (`c=0.0.0.0`) the address is unspecified.
    pub remote: SocketAddrV4,
    /// The codec both sides have, first in the offer's order.
    pub codec: CodecKind,
    /// The offer's telephone-event/8000 payload type, if it has one.
    pub telephone_event_pt: Option<u8>,
    /// The offer puts us on hold (`sendonly`, `inactive` or `c=0.0.0.0`).
    pub hold: bool,
    /// The direction our answer takes.
    pub direction: Direction,
    /// SRTP (an `RTP/SAVP` offer): the crypto line taken.
    pub srtp: Option<Crypto>,
}

/// Why an offer cannot be answered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// Not SDP (400).
    #[error("malformed SDP: {0}")]
    Malformed(String),
    /// SDP without what we can take (488).
    #[error("{0}")]
    NotAcceptable(String),
}

/// Payload type of a static-payload codec we mix.
fn static_codec(pt: u8) -> Option<CodecKind> {
    match pt {
        0 => Some(CodecKind::Pcmu),
        8 => Some(CodecKind::Pcma),
        _ => None,
    }
}

/// RTP payload type we send `codec` with.
pub fn payload_type(codec: CodecKind) -> Option<u8> {
    match codec {
        CodecKind::Pcmu => Some(0),
        CodecKind::Pcma => Some(8),
        CodecKind::L16 => None,
    }
}

fn encoding_name(codec: CodecKind) -> &'static str {
    match codec {
        CodecKind::Pcmu => "PCMU",
        CodecKind::Pcma => "PCMA",
        CodecKind::L16 => "L16",
    }
}

/// Negotiate `offer` (the body of an INVITE or re-INVITE).
pub fn negotiate(offer: &[u8]) -> Result<Negotiated, SdpError> {
    negotiate_among(offer, &[CodecKind::Pcmu, CodecKind::Pcma])
}

/// Negotiate `sdp` taking only the codecs in `codecs`: an offer to answer, or the
/// answer to our own offer of those codecs (RFC 3264: the answer's codecs are a
/// subset of the offer's; its first one we offered is what we send).
pub fn negotiate_among(sdp: &[u8], codecs: &[CodecKind]) -> Result<Negotiated, SdpError> {
    let offer = sdp;
    let text = std::str::from_utf8(offer)
        .map_err(|_| SdpError::Malformed("the body is not UTF-8".into()))?;
    // ezk wants lines ending in CRLF or LF; a body with neither is not SDP.
    let sdp = SessionDescription::parse(&BytesStr::from(text.to_string()))
        .map_err(|e| SdpError::Malformed(e.to_string()))?;
    let audio = sdp
        .media_descriptions
        .iter()
        .find(|m| m.media.media_type == MediaType::Audio && m.media.port != 0)
        .ok_or_else(|| SdpError::NotAcceptable("the offer has no audio stream".into()))?;
    let srtp = match audio.media.proto {
        TransportProtocol::RtpAvp => None,
        TransportProtocol::RtpSavp => Some(crypto(&audio.crypto)?),
        _ => {
            return Err(SdpError::NotAcceptable(format!(
                "audio over {} is not supported (RTP/AVP or RTP/SAVP only)",
                audio.media.proto
            )))
        }
    };
    let rtpmap = |pt: u8| audio.rtpmap.iter().find(|r| r.payload == pt);
    let codec = audio
        .media
        .fmts
        .iter()
        .find_map(|&pt| {
            let kind = static_codec(pt).filter(|k| codecs.contains(k))?;
            // A payload type re-mapped to another codec by rtpmap is not ours.
            match rtpmap(pt) {
                Some(r) if !r.encoding.eq_ignore_ascii_case(encoding_name(kind)) => None,
                _ => Some(kind),
            }
        })
        .ok_or_else(|| {
            SdpError::NotAcceptable("no common codec: tutti takes PCMU (0) or PCMA (8)".into())
        })?;
    let telephone_event_pt = audio.media.fmts.iter().copied().find(|&pt| {
        rtpmap(pt).is_some_and(|r| {
            r.encoding.eq_ignore_ascii_case("telephone-event") && r.clock_rate == 8000
        })
    });
    let connection = audio
        .connection
        .as_ref()
        .or(sdp.connection.as_ref())
        .ok_or_else(|| SdpError::Malformed("no c= line for the audio stream".into()))?;
    let ip = match connection.address {
        TaggedAddress::IP4(ip) => ip,
        _ => {
            return Err(SdpError::NotAcceptable(
                "only IPv4 media addresses are supported".into(),
            ))
        }
    };
    let offered = if audio.direction == Direction::SendRecv {
        sdp.direction
    } else {
        audio.direction
    };
    let hold = ip.is_unspecified() || matches!(offered, Direction::SendOnly | Direction::Inactive);
    let direction = match offered {
        Direction::SendOnly => Direction::RecvOnly,
        Direction::RecvOnly => Direction::SendOnly,
        Direction::Inactive => Direction::Inactive,
        Direction::SendRecv if ip.is_unspecified() => Direction::Inactive,
        Direction::SendRecv => Direction::SendRecv,
    };
    Ok(Negotiated {
        remote: SocketAddrV4::new(ip, audio.media.port),
        codec,
        telephone_event_pt,
        hold,
        direction,
        srtp,
    })
}

/// The first of `lines` with a suite we have, one inline key without MKI, and no
/// session parameters (RFC 4568 §5.1.1: a line with one we do not take is skipped).
fn crypto(lines: &[ezk_sdp_types::SrtpCrypto]) -> Result<Crypto, SdpError> {
    lines
        .iter()
        .find_map(|c| {
            let suite = Suite::from_name(c.suite.as_str())?;
            let [k] = c.keys.as_slice() else { return None };
            if k.mki.is_some() || !c.params.is_empty() {
                return None;
            }
            let key = srtp::decode_key(suite, &k.key_and_salt).ok()?;
            Some(Crypto { tag: c.tag, key })
        })
        .ok_or_else(|| {
            SdpError::NotAcceptable(format!(
                "no usable a=crypto line for RTP/SAVP: tutti takes {} with one inline key",
                srtp::suite_names()
            ))
        })
}

/// The answer to a negotiated offer: our media address `local`, our SRTP key `key` (for
/// an SRTP offer: `RTP/SAVP` with its crypto line's tag), session id and version for
/// `o=`.
pub fn answer(
    n: &Negotiated,
    local: SocketAddrV4,
    key: Option<&MasterKey>,
    session: u64,
    version: u64,
) -> String {
    let crypto = n.srtp.zip(key).map(|(c, k)| Crypto {
        tag: c.tag,
        key: *k,
    });
    describe(
        &[n.codec],
        n.telephone_event_pt,
        n.direction,
        local,
        crypto,
        (session, version),
    )
}

/// The telephone-event/8000 payload type we offer.
pub const TELEPHONE_EVENT_PT: u8 = 101;

/// Our offer of `codecs` (in our order of preference) and telephone-event/8000 as
/// payload type `telephone_event_pt` if given, sendrecv, media at `local`, with
/// session id and version for `o=`.
pub fn offer(
    codecs: &[CodecKind],
    telephone_event_pt: Option<u8>,
    local: SocketAddrV4,
    session: u64,
    version: u64,
) -> String {
    describe(
        codecs,
        telephone_event_pt,
        Direction::SendRecv,
        local,
        None,
        (session, version),
    )
}

/// A session description of one audio stream at `local` with `codecs` (those without
/// a static payload type are left out), ptime 20; `RTP/SAVP` with `crypto` if given.
fn describe(
    codecs: &[CodecKind],
    telephone_event_pt: Option<u8>,
    direction: Direction,
    local: SocketAddrV4,
    crypto: Option<Crypto>,
    (session, version): (u64, u64),
) -> String {
    let ip = local.ip();
    let (mut fmts, mut attrs) = (Vec::new(), String::new());
    for (pt, c) in codecs.iter().filter_map(|&c| Some((payload_type(c)?, c))) {
        fmts.push(pt.to_string());
        attrs.push_str(&format!("a=rtpmap:{pt} {}/8000\r\n", encoding_name(c)));
    }
    if let Some(te) = telephone_event_pt {
        fmts.push(te.to_string());
        attrs.push_str(&format!(
            "a=rtpmap:{te} telephone-event/8000\r\na=fmtp:{te} 0-15\r\n"
        ));
    }
    let proto = match crypto {
        Some(c) => {
            attrs.push_str(&format!(
                "a=crypto:{} {} inline:{}\r\n",
                c.tag,
                c.key.suite().name(),
                srtp::encode_key(&c.key)
            ));
            "RTP/SAVP"
        }
        None => "RTP/AVP",
    };
    format!(
        "v=0\r\no=tutti {session} {version} IN IP4 {ip}\r\ns=tutti\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {} {proto} {}\r\n{attrs}a=ptime:20\r\na={}\r\n",
        local.port(),
        fmts.join(" "),
        direction.as_str()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(media: &str, extra: &str) -> String {
        format!(
            "v=0\r\no=- 1 1 IN IP4 198.18.0.2\r\ns=-\r\nc=IN IP4 198.18.0.2\r\nt=0 0\r\n{media}\r\n{extra}"
        )
    }

    #[test]
    fn the_first_supported_codec_of_the_offer_wins() {
        let o = offer(
            "m=audio 4000 RTP/AVP 9 8 0 101",
            "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n",
        );
        let n = negotiate(o.as_bytes()).unwrap();
        assert_eq!(n.codec, CodecKind::Pcma);
        assert_eq!(n.telephone_event_pt, Some(101));
        assert_eq!(n.remote, "198.18.0.2:4000".parse().unwrap());
        assert!(!n.hold);
        let a = answer(&n, "198.18.0.1:20000".parse().unwrap(), None, 7, 1);
        assert!(a.contains("m=audio 20000 RTP/AVP 8 101\r\n"), "{a}");
        assert!(a.contains("c=IN IP4 198.18.0.1\r\n"), "{a}");
        assert!(a.contains("a=rtpmap:8 PCMA/8000\r\n"), "{a}");
        assert!(a.contains("a=rtpmap:101 telephone-event/8000\r\n"), "{a}");
        assert!(a.contains("a=ptime:20\r\na=sendrecv\r\n"), "{a}");
        // The answer is SDP ezk reads back.
        let back = negotiate(a.as_bytes()).unwrap();
        assert_eq!(back.codec, CodecKind::Pcma);
        assert_eq!(back.remote, "198.18.0.1:20000".parse().unwrap());
    }

    #[test]
    fn pcmu_without_telephone_events_has_none() {
        let n = negotiate(offer("m=audio 4000 RTP/AVP 0", "").as_bytes()).unwrap();
        assert_eq!((n.codec, n.telephone_event_pt), (CodecKind::Pcmu, None));
        let a = answer(&n, "198.18.0.1:20000".parse().unwrap(), None, 7, 1);
        assert!(a.contains("m=audio 20000 RTP/AVP 0\r\n"), "{a}");
        assert!(!a.contains("telephone-event"), "{a}");
    }

    #[test]
    fn offers_list_our_codecs_and_answers_are_read_among_them() {
        let local = "198.18.0.1:20002".parse().unwrap();
        let o = super::offer(
            &[CodecKind::Pcmu, CodecKind::Pcma],
            Some(TELEPHONE_EVENT_PT),
            local,
            9,
            1,
        );
        assert!(o.contains("m=audio 20002 RTP/AVP 0 8 101\r\n"), "{o}");
        assert!(o.contains("o=tutti 9 1 IN IP4 198.18.0.1\r\n"), "{o}");
        assert!(o.contains("a=ptime:20\r\na=sendrecv\r\n"), "{o}");
        let n = negotiate(o.as_bytes()).unwrap();
        assert_eq!(
            (n.codec, n.telephone_event_pt),
            (CodecKind::Pcmu, Some(101))
        );
        let only_a = super::offer(&[CodecKind::Pcma], None, local, 9, 1);
        assert!(only_a.contains("m=audio 20002 RTP/AVP 8\r\n"), "{only_a}");
        // An answer with a codec we did not offer has no common codec.
        let answer = super::offer(&[CodecKind::Pcmu], None, local, 1, 1);
        assert!(matches!(
            negotiate_among(answer.as_bytes(), &[CodecKind::Pcma]),
            Err(SdpError::NotAcceptable(_))
        ));
        let both = super::offer(&[CodecKind::Pcmu, CodecKind::Pcma], None, local, 1, 1);
        let n = negotiate_among(both.as_bytes(), &[CodecKind::Pcma]).unwrap();
        assert_eq!(n.codec, CodecKind::Pcma);
    }

    #[test]
    fn hold_is_sendonly_inactive_or_no_address() {
        for (extra, c, want) in [
            ("a=sendonly\r\n", "198.18.0.2", Direction::RecvOnly),
            ("a=inactive\r\n", "198.18.0.2", Direction::Inactive),
            ("", "0.0.0.0", Direction::Inactive),
        ] {
            let o = offer("m=audio 4000 RTP/AVP 0", extra)
                .replace("IN IP4 198.18.0.2\r\nt", &format!("IN IP4 {c}\r\nt"));
            let n = negotiate(o.as_bytes()).unwrap();
            assert!(n.hold, "{o}");
            assert_eq!(n.direction, want, "{o}");
        }
        let n = negotiate(offer("m=audio 4000 RTP/AVP 0", "a=sendrecv\r\n").as_bytes()).unwrap();
        assert!(!n.hold);
    }

    #[test]
    fn what_cannot_be_answered_says_why() {
        for (o, want) in [
            (offer("m=audio 4000 RTP/AVP 9 18", ""), "no common codec"),
            (offer("m=video 4000 RTP/AVP 96", ""), "no audio stream"),
            (offer("m=audio 0 RTP/AVP 0", ""), "no audio stream"),
            (offer("m=audio 4000 RTP/SAVP 0", ""), "no usable a=crypto"),
            (
                offer("m=audio 4000 UDP/TLS/RTP/SAVPF 0", ""),
                "RTP/SAVP only",
            ),
            (
                offer("m=audio 4000 RTP/AVP 0", "a=rtpmap:0 opus/48000/2\r\n"),
                "no common codec",
            ),
        ] {
            match negotiate(o.as_bytes()) {
                Err(SdpError::NotAcceptable(e)) => assert!(e.contains(want), "{e}"),
                other => panic!("{o}: {other:?}"),
            }
        }
        for bad in [&b"\xff\xfe"[..], b"hello", b"v=0\r\nm=audio x\r\n", b""] {
            assert!(
                matches!(negotiate(bad), Err(SdpError::Malformed(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn srtp_offers_are_answered_with_our_key_for_the_first_suite_we_have() {
        let theirs = srtp::generate_key(Suite::AesCm128HmacSha1_32);
        let extra = format!(
            "a=crypto:1 AES_256_CM_HMAC_SHA1_80 inline:{k}\r\n\
             a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:{k}|2^20|1:4\r\n\
             a=crypto:3 AES_CM_128_HMAC_SHA1_80 inline:{k} UNENCRYPTED_SRTP\r\n\
             a=crypto:4 AES_CM_128_HMAC_SHA1_32 inline:{k}|2^31\r\n",
            k = srtp::encode_key(&theirs)
        );
        let o = offer("m=audio 4000 RTP/SAVP 0", &extra);
        let n = negotiate(o.as_bytes()).unwrap();
        assert_eq!(
            n.srtp,
            Some(Crypto {
                tag: 4,
                key: theirs
            })
        );
        let ours = srtp::generate_key(Suite::AesCm128HmacSha1_32);
        let a = answer(&n, "198.18.0.1:20000".parse().unwrap(), Some(&ours), 7, 1);
        assert!(a.contains("m=audio 20000 RTP/SAVP 0\r\n"), "{a}");
        let line = format!(
            "a=crypto:4 AES_CM_128_HMAC_SHA1_32 inline:{}\r\n",
            srtp::encode_key(&ours)
        );
        assert!(a.contains(&line), "{a}");
        // Read back, the answer carries our key.
        let back = negotiate(a.as_bytes()).unwrap();
        assert_eq!(back.srtp, Some(Crypto { tag: 4, key: ours }));
        // A plain offer stays plain.
        let plain = negotiate(offer("m=audio 4000 RTP/AVP 0", &extra).as_bytes()).unwrap();
        assert_eq!(plain.srtp, None);
    }

    #[test]
    fn srtp_offers_without_a_usable_crypto_line_are_refused() {
        let wrong_len = srtp::encode_key(&srtp::generate_key(Suite::AeadAes128Gcm));
        for extra in [
            String::new(),
            "a=crypto:1 F8_128_HMAC_SHA1_80 inline:MTIzNDU2Nzg5QUJDREUwMTIzNDU2Nzg5QUJjZGVm\r\n"
                .into(),
            format!("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{wrong_len}\r\n"),
        ] {
            let o = offer("m=audio 4000 RTP/SAVP 0", &extra);
            match negotiate(o.as_bytes()) {
                Err(SdpError::NotAcceptable(e)) => assert!(e.contains("a=crypto"), "{e}"),
                other => panic!("{extra}: {other:?}"),
            }
        }
    }
}
