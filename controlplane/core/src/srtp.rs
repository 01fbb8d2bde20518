//! SDES key material (RFC 4568) as SDP's `a=crypto` and the REST API carry it: a suite
//! name and the base64 of the master key and salt. Our own keys come from the
//! operating system's random source.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine};
use rand::RngCore;
pub use tutti_dataplane::conference::SrtpKeys;
pub use tutti_dataplane::srtp::{MasterKey, Suite, MAX_KEY_LEN};

/// Standard base64; padding written, and accepted whether present or not.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The suites' names, for error messages.
pub fn suite_names() -> String {
    Suite::ALL.map(Suite::name).join(", ")
}

/// The suite named `name`, or a message naming the ones there are.
pub fn suite(name: &str) -> Result<Suite, String> {
    Suite::from_name(name)
        .ok_or_else(|| format!("unknown SRTP suite {name:?}: use one of {}", suite_names()))
}

/// The key `key` (base64 of master key and salt) for `suite`, or why not.
pub fn decode_key(suite: Suite, key: &str) -> Result<MasterKey, String> {
    let bytes = BASE64
        .decode(key)
        .map_err(|e| format!("the SRTP key is not base64: {e}"))?;
    MasterKey::new(suite, &bytes).map_err(|e| e.to_string())
}

/// `key`'s master key and salt in base64 (padded).
pub fn encode_key(key: &MasterKey) -> String {
    BASE64.encode(key.bytes())
}

/// A fresh key of `suite` from the operating system's random source.
pub fn generate_key(suite: Suite) -> MasterKey {
    let mut bytes = [0u8; MAX_KEY_LEN];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    MasterKey::from_array(suite, bytes)
}

/// The keys of a stream whose remote sends with `remote`: ours, fresh, of its suite.
pub fn keys_for(remote: MasterKey) -> SrtpKeys {
    SrtpKeys {
        local: generate_key(remote.suite()),
        remote,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_base64() {
        for s in Suite::ALL {
            let k = generate_key(s);
            let text = encode_key(&k);
            assert_eq!(decode_key(s, &text).unwrap(), k);
            assert_eq!(decode_key(s, text.trim_end_matches('=')).unwrap(), k);
            assert_ne!(generate_key(s), k, "fresh keys differ");
        }
    }

    #[test]
    fn bad_keys_say_why() {
        let e = decode_key(Suite::AesCm128HmacSha1_80, "not base64!").unwrap_err();
        assert!(e.contains("base64"), "{e}");
        let short = encode_key(&generate_key(Suite::AeadAes128Gcm));
        let e = decode_key(Suite::AesCm128HmacSha1_80, &short).unwrap_err();
        assert!(e.contains("30-byte"), "{e}");
        let e = suite("F8_128_HMAC_SHA1_80").unwrap_err();
        assert!(e.contains("AES_CM_128_HMAC_SHA1_80"), "{e}");
    }
}
