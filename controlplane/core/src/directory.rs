//! Provisioning: conference codes and the profile a caller joins with. The IVR checks a
//! caller's code and PIN against an [`Entry`]; the REST API creates and changes them; a
//! store keeps them. Every value is validated here, once ([`Entry::from_spec`]) — an
//! entry read back from a store goes through the same check, so a damaged record is an
//! error, never a panic or a half-valid profile.

use crate::json::given;
use crate::sessions::{valid_conference_id, MAX_CONFERENCE_ID_LEN};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Longest conference code (DTMF digits a caller enters, `#` ending them).
pub const MAX_CODE_LEN: usize = 16;
/// Longest PIN.
pub const MAX_PIN_LEN: usize = 12;
/// Longest display name.
pub const MAX_NAME_LEN: usize = 128;
/// Most participants a profile may allow (the conference API's own limit).
pub const MAX_PROFILE_PARTICIPANTS: u16 = 1000;

/// Why a provisioning value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    /// A code that is not 1 to [`MAX_CODE_LEN`] digits.
    #[error("invalid conference code {0:?}: use 1 to 16 digits 0-9")]
    InvalidCode(String),
    /// A PIN that is not 1 to [`MAX_PIN_LEN`] digits.
    #[error("invalid {field}: use 1 to 12 digits 0-9")]
    InvalidPin {
        /// `pin` or `moderator_pin`.
        field: &'static str,
    },
    /// A field whose value is out of range or inconsistent with another.
    #[error("{0}")]
    Invalid(String),
}

fn digits(s: &str, max: usize) -> bool {
    (1..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

/// A conference code: what a caller keys in at the `enter-code` prompt.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(into = "String")]
pub struct Code(String);

impl Code {
    /// `s` if it is 1 to [`MAX_CODE_LEN`] digits.
    pub fn parse(s: &str) -> Result<Code, DirectoryError> {
        if digits(s, MAX_CODE_LEN) {
            Ok(Code(s.to_string()))
        } else {
            Err(DirectoryError::InvalidCode(s.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<Code> for String {
    fn from(c: Code) -> String {
        c.0
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A DTMF key: `0`–`9`, `*`, `#`, `A`–`D`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(char);

impl Key {
    /// The key `c` stands for, if it is one.
    pub fn new(c: char) -> Option<Key> {
        matches!(c, '0'..='9' | '*' | '#' | 'A'..='D').then_some(Key(c))
    }

    pub fn as_char(self) -> char {
        self.0
    }
}

impl Serialize for Key {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
        let s = String::deserialize(d)?;
        let mut chars = s.chars();
        match (chars.next().and_then(Key::new), chars.next()) {
            (Some(k), None) => Ok(k),
            _ => Err(serde::de::Error::custom(format!(
                "invalid key {s:?}: use one of 0-9, *, #, A-D"
            ))),
        }
    }
}

/// What a key does during the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyAction {
    /// Mute or unmute yourself.
    MuteToggle,
    /// Lower, reset or raise how loud others hear you.
    TalkVolumeDown,
    TalkVolumeZero,
    TalkVolumeUp,
    /// Lower, reset or raise how loud you hear the conference.
    ListenVolumeDown,
    ListenVolumeZero,
    ListenVolumeUp,
    /// Leave the conference.
    Hangup,
    /// Moderators only: lock the conference to new callers, or unlock it.
    LockToggle,
    /// Moderators only: mute every other participant, or unmute them.
    MuteAllToggle,
}

impl KeyAction {
    /// Every action.
    pub const ALL: [KeyAction; 10] = [
        KeyAction::MuteToggle,
        KeyAction::TalkVolumeDown,
        KeyAction::TalkVolumeZero,
        KeyAction::TalkVolumeUp,
        KeyAction::ListenVolumeDown,
        KeyAction::ListenVolumeZero,
        KeyAction::ListenVolumeUp,
        KeyAction::Hangup,
        KeyAction::LockToggle,
        KeyAction::MuteAllToggle,
    ];

    /// Its name in JSON.
    pub fn as_str(self) -> &'static str {
        use KeyAction::*;
        match self {
            MuteToggle => "mute_toggle",
            TalkVolumeDown => "talk_volume_down",
            TalkVolumeZero => "talk_volume_zero",
            TalkVolumeUp => "talk_volume_up",
            ListenVolumeDown => "listen_volume_down",
            ListenVolumeZero => "listen_volume_zero",
            ListenVolumeUp => "listen_volume_up",
            Hangup => "hangup",
            LockToggle => "lock_toggle",
            MuteAllToggle => "mute_all_toggle",
        }
    }

    /// Whether only a moderator may have this key.
    pub fn moderator_only(self) -> bool {
        matches!(self, KeyAction::LockToggle | KeyAction::MuteAllToggle)
    }
}

/// A keypad map.
pub type Keys = BTreeMap<Key, KeyAction>;

/// The participants' keys when a profile names none: FreeSWITCH's conference defaults
/// for the actions tutti has (0 mute; 1/2/3 talk volume down/zero/up; 4/5/6 listen
/// volume down/zero/up; # hang up).
pub fn default_keys() -> Keys {
    use KeyAction::*;
    [
        ('0', MuteToggle),
        ('1', TalkVolumeDown),
        ('2', TalkVolumeZero),
        ('3', TalkVolumeUp),
        ('4', ListenVolumeDown),
        ('5', ListenVolumeZero),
        ('6', ListenVolumeUp),
        ('#', Hangup),
    ]
    .into_iter()
    .filter_map(|(c, a)| Some((Key::new(c)?, a)))
    .collect()
}

/// The moderators' keys when a profile names none: the participants' plus `*` lock
/// toggle and `8` mute-all toggle.
pub fn default_moderator_keys() -> Keys {
    let mut keys = default_keys();
    keys.extend(
        [
            ('*', KeyAction::LockToggle),
            ('8', KeyAction::MuteAllToggle),
        ]
        .into_iter()
        .filter_map(|(c, a)| Some((Key::new(c)?, a))),
    );
    keys
}

/// What callers are told.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Announce {
    /// "You are the first participant" to the first caller.
    pub first_participant: bool,
    /// The number of participants to each caller who joins.
    pub count: bool,
    /// A tone to everyone when somebody joins or leaves.
    pub join_leave_tones: bool,
}

impl Default for Announce {
    fn default() -> Self {
        Announce {
            first_participant: true,
            count: false,
            join_leave_tones: true,
        }
    }
}

/// A provisioning entry as a client writes it: every field but the code optional, and
/// left out (not `null`) for its default.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntrySpec {
    /// The conference to join (default: the code itself).
    #[serde(
        default,
        deserialize_with = "given",
        skip_serializing_if = "Option::is_none"
    )]
    pub conference: Option<String>,
    #[serde(
        default,
        deserialize_with = "given",
        skip_serializing_if = "Option::is_none"
    )]
    pub name: Option<String>,
    #[serde(
        default,
        deserialize_with = "given",
        skip_serializing_if = "Option::is_none"
    )]
    pub pin: Option<String>,
    #[serde(
        default,
        deserialize_with = "given",
        skip_serializing_if = "Option::is_none"
    )]
    pub moderator_pin: Option<String>,
    #[serde(
        default,
        deserialize_with = "given",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_participants: Option<u16>,
    #[serde(
        default,
        deserialize_with = "given",
        skip_serializing_if = "Option::is_none"
    )]
    pub wait_for_moderator: Option<bool>,
    #[serde(
        default,
        deserialize_with = "given",
        skip_serializing_if = "Option::is_none"
    )]
    pub end_with_moderator: Option<bool>,
    #[serde(
        default,
        deserialize_with = "given",
        skip_serializing_if = "Option::is_none"
    )]
    pub locked: Option<bool>,
    #[serde(
        default,
        deserialize_with = "given",
        skip_serializing_if = "Option::is_none"
    )]
    pub announce: Option<Announce>,
    #[serde(
        default,
        deserialize_with = "given",
        skip_serializing_if = "Option::is_none"
    )]
    pub keys: Option<Keys>,
    #[serde(
        default,
        deserialize_with = "given",
        skip_serializing_if = "Option::is_none"
    )]
    pub moderator_keys: Option<Keys>,
}

/// A validated provisioning entry: a code and the profile of its conference.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Entry {
    pub code: Code,
    /// The conference callers with this code join.
    pub conference: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Callers must key it in after the code (unless they key the moderator PIN).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pin: Option<String>,
    /// Keying it makes the caller a moderator.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub moderator_pin: Option<String>,
    /// Callers beyond this many hear "the conference is full".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_participants: Option<u16>,
    /// Participants hear music on hold until a moderator joins.
    pub wait_for_moderator: bool,
    /// The conference ends when its last moderator leaves.
    pub end_with_moderator: bool,
    /// New callers are refused ("the conference is locked") until a moderator unlocks.
    pub locked: bool,
    pub announce: Announce,
    pub keys: Keys,
    pub moderator_keys: Keys,
}

/// Who a caller is, by the PIN they keyed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    Participant,
    Moderator,
    /// The PIN matches neither.
    Refused,
}

fn check_keys(keys: &Keys, field: &str, moderator: bool) -> Result<(), DirectoryError> {
    if let Some((k, a)) = keys.iter().find(|(_, a)| a.moderator_only() && !moderator) {
        return Err(DirectoryError::Invalid(format!(
            "{field}: key {:?} is {}, which only moderators may have (put it in \
             moderator_keys)",
            k.as_char(),
            a.as_str()
        )));
    }
    Ok(())
}

impl Entry {
    /// The entry for `code` from what a client wrote, or why it is not acceptable.
    pub fn from_spec(code: &str, spec: EntrySpec) -> Result<Entry, DirectoryError> {
        let code = Code::parse(code)?;
        let conference = spec.conference.unwrap_or_else(|| code.0.clone());
        if !valid_conference_id(&conference) {
            return Err(DirectoryError::Invalid(format!(
                "invalid conference {conference:?}: use 1 to {MAX_CONFERENCE_ID_LEN} \
                 characters of A-Z, a-z, 0-9, '.', '_' and '-'"
            )));
        }
        if let Some(name) = &spec.name {
            if name.is_empty()
                || name.chars().count() > MAX_NAME_LEN
                || name.contains(char::is_control)
            {
                return Err(DirectoryError::Invalid(format!(
                    "name: use 1 to {MAX_NAME_LEN} characters without control characters"
                )));
            }
        }
        for (field, pin) in [("pin", &spec.pin), ("moderator_pin", &spec.moderator_pin)] {
            if pin.as_deref().is_some_and(|p| !digits(p, MAX_PIN_LEN)) {
                return Err(DirectoryError::InvalidPin { field });
            }
        }
        if let Some(n) = spec.max_participants {
            if !(1..=MAX_PROFILE_PARTICIPANTS).contains(&n) {
                return Err(DirectoryError::Invalid(format!(
                    "max_participants: use 1 to {MAX_PROFILE_PARTICIPANTS}"
                )));
            }
        }
        let wait_for_moderator = spec.wait_for_moderator.unwrap_or(false);
        let end_with_moderator = spec.end_with_moderator.unwrap_or(false);
        if spec.moderator_pin.is_none() {
            for (field, set) in [
                ("wait_for_moderator", wait_for_moderator),
                ("end_with_moderator", end_with_moderator),
            ] {
                if set {
                    return Err(DirectoryError::Invalid(format!(
                        "{field} needs a moderator_pin (nobody could become a moderator)"
                    )));
                }
            }
        }
        let keys = spec.keys.unwrap_or_else(default_keys);
        check_keys(&keys, "keys", false)?;
        let moderator_keys = spec.moderator_keys.unwrap_or_else(default_moderator_keys);
        check_keys(&moderator_keys, "moderator_keys", true)?;
        Ok(Entry {
            code,
            conference,
            name: spec.name,
            pin: spec.pin,
            moderator_pin: spec.moderator_pin,
            max_participants: spec.max_participants,
            wait_for_moderator,
            end_with_moderator,
            locked: spec.locked.unwrap_or(false),
            announce: spec.announce.unwrap_or_default(),
            keys,
            moderator_keys,
        })
    }

    /// The spec that gives this entry back through [`Entry::from_spec`] (what a store
    /// keeps).
    pub fn to_spec(&self) -> EntrySpec {
        EntrySpec {
            conference: Some(self.conference.clone()),
            name: self.name.clone(),
            pin: self.pin.clone(),
            moderator_pin: self.moderator_pin.clone(),
            max_participants: self.max_participants,
            wait_for_moderator: Some(self.wait_for_moderator),
            end_with_moderator: Some(self.end_with_moderator),
            locked: Some(self.locked),
            announce: Some(self.announce.clone()),
            keys: Some(self.keys.clone()),
            moderator_keys: Some(self.moderator_keys.clone()),
        }
    }

    /// Whether the caller who keyed `pin` (nothing when the entry asks for none) gets in,
    /// and as whom.
    pub fn admit(&self, pin: Option<&str>) -> Admission {
        match (pin, &self.pin, &self.moderator_pin) {
            (Some(p), _, Some(m)) if p == m => Admission::Moderator,
            (Some(p), Some(want), _) if p == want => Admission::Participant,
            (None, None, _) => Admission::Participant,
            _ => Admission::Refused,
        }
    }

    /// Whether callers must key a PIN after the code.
    pub fn asks_pin(&self) -> bool {
        self.pin.is_some() || self.moderator_pin.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> EntrySpec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn defaults_fill_an_entry_named_by_its_code() {
        let e = Entry::from_spec("4711", EntrySpec::default()).unwrap();
        assert_eq!(e.conference, "4711");
        assert!(!e.wait_for_moderator && !e.locked && !e.asks_pin());
        assert_eq!(e.keys, default_keys());
        assert_eq!(e.keys[&Key::new('0').unwrap()], KeyAction::MuteToggle);
        assert_eq!(
            e.moderator_keys[&Key::new('*').unwrap()],
            KeyAction::LockToggle
        );
        assert!(e.announce.first_participant);
        assert_eq!(e.admit(None), Admission::Participant);
    }

    #[test]
    fn codes_and_pins_are_digits_within_bounds() {
        for bad in ["", "12a", "12345678901234567", "１２"] {
            assert!(matches!(
                Entry::from_spec(bad, EntrySpec::default()),
                Err(DirectoryError::InvalidCode(_))
            ));
        }
        assert!(Entry::from_spec("1234567890123456", EntrySpec::default()).is_ok());
        let e = Entry::from_spec("1", spec(r#"{"pin": "12x"}"#));
        assert_eq!(e, Err(DirectoryError::InvalidPin { field: "pin" }));
        let e = Entry::from_spec("1", spec(r#"{"moderator_pin": "1234567890123"}"#));
        assert_eq!(
            e,
            Err(DirectoryError::InvalidPin {
                field: "moderator_pin"
            })
        );
    }

    #[test]
    fn inconsistent_profiles_are_refused_with_the_reason() {
        let cases = [
            (r#"{"wait_for_moderator": true}"#, "needs a moderator_pin"),
            (r#"{"end_with_moderator": true}"#, "needs a moderator_pin"),
            (r#"{"max_participants": 0}"#, "max_participants"),
            (r#"{"conference": "a b"}"#, "invalid conference"),
            (r#"{"name": ""}"#, "name"),
            (r#"{"keys": {"5": "mute_all_toggle"}}"#, "only moderators"),
        ];
        for (json, why) in cases {
            let err = Entry::from_spec("77", spec(json)).unwrap_err().to_string();
            assert!(err.contains(why), "{json}: {err}");
        }
    }

    #[test]
    fn bad_keys_and_fields_do_not_parse() {
        for json in [
            r#"{"keys": {"x": "hangup"}}"#,
            r#"{"keys": {"12": "hangup"}}"#,
            r#"{"keys": {"1": "explode"}}"#,
            r#"{"colour": "red"}"#,
            r#"{"announce": {"count": true, "loud": true}}"#,
            r#"{"pin": null}"#,
            r#"{"max_participants": null}"#,
        ] {
            assert!(serde_json::from_str::<EntrySpec>(json).is_err(), "{json}");
        }
    }

    #[test]
    fn the_pin_decides_who_is_a_moderator() {
        let e = Entry::from_spec(
            "9",
            spec(r#"{"pin": "1111", "moderator_pin": "2222", "wait_for_moderator": true}"#),
        )
        .unwrap();
        assert!(e.asks_pin());
        assert_eq!(e.admit(Some("1111")), Admission::Participant);
        assert_eq!(e.admit(Some("2222")), Admission::Moderator);
        assert_eq!(e.admit(Some("3333")), Admission::Refused);
        assert_eq!(e.admit(None), Admission::Refused);
        // Only a moderator PIN: everyone else gets in without one.
        let m = Entry::from_spec("9", spec(r#"{"moderator_pin": "2222"}"#)).unwrap();
        assert_eq!(m.admit(None), Admission::Participant);
        assert_eq!(m.admit(Some("2222")), Admission::Moderator);
        assert_eq!(m.admit(Some("1")), Admission::Refused);
        // The same PIN for both: everyone who keys it is a moderator.
        let same = Entry::from_spec("9", spec(r#"{"pin": "5", "moderator_pin": "5"}"#)).unwrap();
        assert_eq!(same.admit(Some("5")), Admission::Moderator);
    }

    #[test]
    fn an_entry_round_trips_through_its_spec_and_json() {
        let e = Entry::from_spec(
            "31337",
            spec(
                r#"{"conference": "board", "name": "Board call", "pin": "12",
                    "moderator_pin": "34", "max_participants": 20, "locked": true,
                    "announce": {"count": true}, "keys": {"0": "mute_toggle"}}"#,
            ),
        )
        .unwrap();
        assert!(e.announce.first_participant && e.announce.count);
        assert_eq!(Entry::from_spec("31337", e.to_spec()).unwrap(), e);
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["code"], "31337");
        assert_eq!(json["keys"]["0"], "mute_toggle");
        assert_eq!(json["moderator_keys"]["8"], "mute_all_toggle");
        for a in KeyAction::ALL {
            assert_eq!(serde_json::to_value(a).unwrap(), a.as_str());
        }
    }
}
