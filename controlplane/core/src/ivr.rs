//! The conference IVR for one caller, sans-IO: play `enter-code`, collect DTMF digits
//! (`#` ends them, `*` starts over, the inter-digit timeout ends them too), look the code
//! up, ask for a PIN if the profile has one, and either hand the caller to the
//! conference or say why not and hang up. Three wrong attempts (or no input) per stage
//! end the call.
//!
//! Driven like the rest of the core: [`Ivr::handle_digit`], [`Ivr::handle_prompt_done`],
//! [`Ivr::handle_lookup`], [`Ivr::handle_join_refused`] and [`Ivr::handle_timeout`] take
//! `(now, input)`; what to do comes out of [`Ivr::poll_action`], and when to be called
//! next out of [`Ivr::poll_timeout`]. The driver plays prompts on the caller's dataplane
//! core, asks the store through its queue, and joins the caller.

use crate::directory::{Admission, Code, Entry, Key, MAX_CODE_LEN, MAX_PIN_LEN};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Timers and limits of the IVR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IvrSettings {
    /// How long the caller has for the first digit once a prompt has ended.
    pub first_digit: Duration,
    /// How long between digits before the entry counts as ended.
    pub inter_digit: Duration,
    /// Tries per stage (code, PIN) before the call ends.
    pub attempts: u8,
}

impl Default for IvrSettings {
    fn default() -> Self {
        IvrSettings {
            first_digit: Duration::from_secs(10),
            inter_digit: Duration::from_secs(5),
            attempts: 3,
        }
    }
}

/// What the IVR says, by prompt name in the prompt library.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IvrPrompt {
    EnterCode,
    InvalidCode,
    EnterPin,
    InvalidPin,
    Joining,
    Full,
    Locked,
    TryLater,
    Goodbye,
}

impl IvrPrompt {
    /// Every prompt the IVR uses (the library must have them all).
    pub const ALL: [IvrPrompt; 9] = [
        IvrPrompt::EnterCode,
        IvrPrompt::InvalidCode,
        IvrPrompt::EnterPin,
        IvrPrompt::InvalidPin,
        IvrPrompt::Joining,
        IvrPrompt::Full,
        IvrPrompt::Locked,
        IvrPrompt::TryLater,
        IvrPrompt::Goodbye,
    ];

    /// Its name in the prompt library.
    pub fn name(self) -> &'static str {
        match self {
            IvrPrompt::EnterCode => "enter-code",
            IvrPrompt::InvalidCode => "invalid-code",
            IvrPrompt::EnterPin => "enter-pin",
            IvrPrompt::InvalidPin => "invalid-pin",
            IvrPrompt::Joining => "joining",
            IvrPrompt::Full => "conference-full",
            IvrPrompt::Locked => "conference-locked",
            IvrPrompt::TryLater => "try-later",
            IvrPrompt::Goodbye => "ivr-goodbye",
        }
    }
}

/// Why the IVR hung up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IvrEnd {
    /// Every attempt at the code or PIN was wrong.
    TooManyAttempts,
    /// The caller keyed nothing, attempt after attempt.
    NoInput,
    /// The store failed or did not answer.
    StoreUnavailable,
    /// The conference had no room.
    Full,
    /// The conference is locked and the caller is no moderator.
    Locked,
}

impl IvrEnd {
    pub fn as_str(self) -> &'static str {
        match self {
            IvrEnd::TooManyAttempts => "too_many_attempts",
            IvrEnd::NoInput => "no_input",
            IvrEnd::StoreUnavailable => "store_unavailable",
            IvrEnd::Full => "conference_full",
            IvrEnd::Locked => "conference_locked",
        }
    }
}

/// Why the caller could not be joined after all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinRefused {
    Full,
    Locked,
    /// The conference could not be reached or created.
    Unavailable,
}

/// What the driver does next.
#[derive(Clone, Debug, PartialEq)]
pub enum IvrAction {
    /// Play this prompt to the caller (replacing any that plays) and report its end.
    Play(IvrPrompt),
    /// Stop the prompt that plays (the caller started keying).
    StopPrompt,
    /// Look this code up in the store and report the answer.
    Lookup(Code),
    /// Join the caller to the entry's conference, as a moderator or not.
    Join { entry: Box<Entry>, moderator: bool },
    /// End the call.
    Hangup(IvrEnd),
}

/// What is being collected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Code,
    Pin,
}

/// What happens when a non-interruptible prompt ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Then {
    Ask(Stage),
    Join { moderator: bool },
    Hangup(IvrEnd),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    /// The stage's question plays; digits barge in.
    Asking(Stage),
    /// Collecting digits until `#`, the deadline, or too many.
    Collecting(Stage, Instant),
    /// Waiting for the store.
    LookingUp,
    /// A prompt that is not interrupted plays; then this.
    Saying(Then),
    /// Handed over or hung up: nothing more to do.
    Done,
}

/// One caller in the conference IVR.
#[derive(Debug)]
pub struct Ivr {
    settings: IvrSettings,
    state: State,
    digits: String,
    code_tries: u8,
    pin_tries: u8,
    entry: Option<Entry>,
    actions: VecDeque<IvrAction>,
}

impl Ivr {
    /// A caller just answered: the IVR starts with `enter-code`.
    pub fn new(settings: IvrSettings) -> Ivr {
        let mut ivr = Ivr {
            settings,
            state: State::Done,
            digits: String::with_capacity(MAX_CODE_LEN + 1),
            code_tries: 0,
            pin_tries: 0,
            entry: None,
            actions: VecDeque::new(),
        };
        ivr.ask(Stage::Code);
        ivr
    }

    fn ask(&mut self, stage: Stage) {
        self.digits.clear();
        self.state = State::Asking(stage);
        self.actions.push_back(IvrAction::Play(match stage {
            Stage::Code => IvrPrompt::EnterCode,
            Stage::Pin => IvrPrompt::EnterPin,
        }));
    }

    fn say(&mut self, prompt: IvrPrompt, then: Then) {
        self.state = State::Saying(then);
        self.actions.push_back(IvrAction::Play(prompt));
    }

    fn hang_up_after_goodbye(&mut self, end: IvrEnd) {
        self.say(IvrPrompt::Goodbye, Then::Hangup(end));
    }

    /// A wrong or empty entry at `stage`.
    fn failed(&mut self, stage: Stage, empty: bool) {
        let tries = match stage {
            Stage::Code => &mut self.code_tries,
            Stage::Pin => &mut self.pin_tries,
        };
        *tries += 1;
        let last = *tries >= self.settings.attempts;
        if last {
            let end = if empty {
                IvrEnd::NoInput
            } else {
                IvrEnd::TooManyAttempts
            };
            self.hang_up_after_goodbye(end);
        } else if empty {
            self.ask(stage);
        } else {
            let prompt = match stage {
                Stage::Code => IvrPrompt::InvalidCode,
                Stage::Pin => IvrPrompt::InvalidPin,
            };
            self.say(prompt, Then::Ask(stage));
        }
    }

    /// The caller ended an entry at `stage` (`#`, the timeout, or too many digits).
    fn submit(&mut self, stage: Stage) {
        let digits = std::mem::take(&mut self.digits);
        match stage {
            Stage::Code if digits.is_empty() => self.failed(stage, true),
            Stage::Code => match Code::parse(&digits) {
                Ok(code) => {
                    self.state = State::LookingUp;
                    self.actions.push_back(IvrAction::Lookup(code));
                }
                Err(_) => self.failed(stage, false),
            },
            Stage::Pin => {
                // Nothing keyed is an answer too where the profile has only a moderator
                // PIN: the caller joins as a participant.
                let pin = (!digits.is_empty()).then_some(digits.as_str());
                match self.entry.as_ref().map(|e| e.admit(pin)) {
                    Some(Admission::Moderator) => self.admit(true),
                    Some(Admission::Participant) => self.admit(false),
                    Some(Admission::Refused) | None => self.failed(stage, pin.is_none()),
                }
            }
        }
    }

    /// The caller may join (as a moderator or not) unless the conference is locked.
    fn admit(&mut self, moderator: bool) {
        let locked = self.entry.as_ref().is_some_and(|e| e.locked);
        if locked && !moderator {
            self.say(IvrPrompt::Locked, Then::Hangup(IvrEnd::Locked));
        } else {
            self.say(IvrPrompt::Joining, Then::Join { moderator });
        }
    }

    /// The caller keyed `key` (RFC 4733 or in-band: the driver reports each digit once).
    pub fn handle_digit(&mut self, now: Instant, key: Key) {
        let stage = match self.state {
            State::Asking(stage) => {
                self.actions.push_back(IvrAction::StopPrompt);
                stage
            }
            State::Collecting(stage, _) => stage,
            // Digits while the IVR talks or waits are not an entry.
            State::LookingUp | State::Saying(_) | State::Done => return,
        };
        match key.as_char() {
            '#' => return self.submit(stage),
            '*' => self.digits.clear(),
            c => self.digits.push(c),
        }
        let max = match stage {
            Stage::Code => MAX_CODE_LEN,
            Stage::Pin => MAX_PIN_LEN,
        };
        if self.digits.len() > max {
            // Longer than any code or PIN can be: wrong, no need to wait for `#`.
            self.digits.clear();
            return self.failed(stage, false);
        }
        self.state = State::Collecting(stage, now + self.settings.inter_digit);
    }

    /// The prompt the IVR asked for last has ended (played out or stopped).
    pub fn handle_prompt_done(&mut self, now: Instant) {
        match self.state {
            State::Asking(stage) => {
                self.state = State::Collecting(stage, now + self.settings.first_digit);
            }
            State::Saying(then) => match then {
                Then::Ask(stage) => self.ask(stage),
                Then::Join { moderator } => {
                    self.state = State::Done;
                    if let Some(entry) = self.entry.take() {
                        self.actions.push_back(IvrAction::Join {
                            entry: Box::new(entry),
                            moderator,
                        });
                    }
                }
                Then::Hangup(end) => {
                    self.state = State::Done;
                    self.actions.push_back(IvrAction::Hangup(end));
                }
            },
            State::Collecting(..) | State::LookingUp | State::Done => {}
        }
    }

    /// The store's answer to the last [`IvrAction::Lookup`]: the entry, none, or `Err`
    /// when the store failed, was busy or did not answer.
    pub fn handle_lookup(&mut self, _now: Instant, answer: Result<Option<Entry>, ()>) {
        if self.state != State::LookingUp {
            return;
        }
        match answer {
            Err(()) => self.say(IvrPrompt::TryLater, Then::Hangup(IvrEnd::StoreUnavailable)),
            Ok(None) => self.failed(Stage::Code, false),
            Ok(Some(entry)) => {
                let asks_pin = entry.asks_pin();
                self.entry = Some(entry);
                if asks_pin {
                    self.ask(Stage::Pin);
                } else {
                    self.admit(false);
                }
            }
        }
    }

    /// The join the IVR asked for failed: say why and hang up.
    pub fn handle_join_refused(&mut self, _now: Instant, why: JoinRefused) {
        let (prompt, end) = match why {
            JoinRefused::Full => (IvrPrompt::Full, IvrEnd::Full),
            JoinRefused::Locked => (IvrPrompt::Locked, IvrEnd::Locked),
            JoinRefused::Unavailable => (IvrPrompt::TryLater, IvrEnd::StoreUnavailable),
        };
        self.say(prompt, Then::Hangup(end));
    }

    /// Run the timer if it is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let State::Collecting(stage, deadline) = self.state {
            if now >= deadline {
                self.submit(stage);
            }
        }
    }

    /// When [`Ivr::handle_timeout`] is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Collecting(_, deadline) => Some(deadline),
            _ => None,
        }
    }

    /// The next thing to do.
    pub fn poll_action(&mut self) -> Option<IvrAction> {
        self.actions.pop_front()
    }

    /// Whether the IVR is finished with the caller (joined or hung up).
    pub fn is_done(&self) -> bool {
        self.state == State::Done && self.actions.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::EntrySpec;

    fn entry(json: &str) -> Entry {
        Entry::from_spec("4711", serde_json::from_str::<EntrySpec>(json).unwrap()).unwrap()
    }

    struct Call {
        ivr: Ivr,
        now: Instant,
    }

    impl Call {
        fn new() -> Call {
            Call {
                ivr: Ivr::new(IvrSettings::default()),
                now: Instant::now(),
            }
        }
        fn actions(&mut self) -> Vec<IvrAction> {
            std::iter::from_fn(|| self.ivr.poll_action()).collect()
        }
        fn keys(&mut self, s: &str) {
            for c in s.chars() {
                self.now += Duration::from_millis(300);
                self.ivr.handle_digit(self.now, Key::new(c).unwrap());
            }
        }
        fn prompt_done(&mut self) {
            self.now += Duration::from_secs(2);
            self.ivr.handle_prompt_done(self.now);
        }
        /// Advance to the pending deadline and run it.
        fn time_out(&mut self) {
            self.now = self.ivr.poll_timeout().expect("a deadline");
            self.ivr.handle_timeout(self.now);
        }
    }

    use IvrAction::*;
    use IvrPrompt::*;

    #[test]
    fn a_right_code_joins_after_the_joining_prompt() {
        let mut c = Call::new();
        assert_eq!(c.actions(), [Play(EnterCode)]);
        c.prompt_done();
        assert_eq!(c.ivr.poll_timeout(), Some(c.now + Duration::from_secs(10)));
        c.keys("4711#");
        assert_eq!(c.actions(), [Lookup(Code::parse("4711").unwrap())]);
        assert_eq!(
            c.ivr.poll_timeout(),
            None,
            "no timer while the store answers"
        );
        c.ivr.handle_lookup(c.now, Ok(Some(entry("{}"))));
        assert_eq!(c.actions(), [Play(Joining)]);
        c.keys("9");
        assert!(c.actions().is_empty(), "digits during joining are no entry");
        c.prompt_done();
        assert_eq!(
            c.actions(),
            [Join {
                entry: Box::new(entry("{}")),
                moderator: false
            }]
        );
        assert!(c.ivr.is_done());
    }

    #[test]
    fn keying_barges_in_and_star_starts_over_and_the_timeout_ends_the_entry() {
        let mut c = Call::new();
        c.actions();
        c.keys("12");
        assert_eq!(
            c.actions(),
            [StopPrompt],
            "the first digit stops enter-code"
        );
        c.keys("*47");
        c.time_out();
        assert_eq!(c.actions(), [Lookup(Code::parse("47").unwrap())]);
    }

    #[test]
    fn three_wrong_codes_end_the_call() {
        let mut c = Call::new();
        c.actions();
        c.prompt_done();
        for round in 0..2 {
            c.keys("99#");
            assert_eq!(c.actions(), [Lookup(Code::parse("99").unwrap())], "{round}");
            c.ivr.handle_lookup(c.now, Ok(None));
            assert_eq!(c.actions(), [Play(InvalidCode)]);
            c.prompt_done();
            assert_eq!(c.actions(), [Play(EnterCode)]);
            c.prompt_done();
        }
        c.keys("99#");
        c.actions();
        c.ivr.handle_lookup(c.now, Ok(None));
        assert_eq!(c.actions(), [Play(Goodbye)]);
        c.prompt_done();
        assert_eq!(c.actions(), [Hangup(IvrEnd::TooManyAttempts)]);
        assert!(c.ivr.is_done());
    }

    #[test]
    fn silence_reprompts_then_hangs_up_as_no_input() {
        let mut c = Call::new();
        c.actions();
        for _ in 0..2 {
            c.prompt_done();
            c.time_out();
            assert_eq!(c.actions(), [Play(EnterCode)]);
        }
        c.prompt_done();
        c.time_out();
        assert_eq!(c.actions(), [Play(Goodbye)]);
        c.prompt_done();
        assert_eq!(c.actions(), [Hangup(IvrEnd::NoInput)]);
    }

    #[test]
    fn a_code_longer_than_any_is_wrong_at_once() {
        let mut c = Call::new();
        c.actions();
        c.prompt_done();
        c.keys(&"1".repeat(MAX_CODE_LEN));
        assert!(c.actions().is_empty());
        c.keys("1");
        assert_eq!(c.actions(), [Play(InvalidCode)]);
    }

    #[test]
    fn pins_decide_moderators_and_wrong_pins_count_separately() {
        let mut c = Call::new();
        c.actions();
        c.prompt_done();
        c.keys("4711#");
        c.actions();
        let e = entry(r#"{"pin": "1234", "moderator_pin": "9876"}"#);
        c.ivr.handle_lookup(c.now, Ok(Some(e.clone())));
        assert_eq!(c.actions(), [Play(EnterPin)]);
        c.prompt_done();
        c.keys("0000#");
        assert_eq!(c.actions(), [Play(InvalidPin)]);
        c.prompt_done();
        assert_eq!(c.actions(), [Play(EnterPin)]);
        c.prompt_done();
        c.keys("9876#");
        assert_eq!(c.actions(), [Play(Joining)]);
        c.prompt_done();
        assert_eq!(
            c.actions(),
            [Join {
                entry: Box::new(e),
                moderator: true
            }]
        );
    }

    #[test]
    fn only_a_moderator_pin_lets_others_in_without_one() {
        let mut c = Call::new();
        c.actions();
        c.prompt_done();
        c.keys("4711#");
        c.actions();
        c.ivr
            .handle_lookup(c.now, Ok(Some(entry(r#"{"moderator_pin": "9876"}"#))));
        assert_eq!(c.actions(), [Play(EnterPin)]);
        c.prompt_done();
        c.time_out();
        assert_eq!(c.actions(), [Play(Joining)]);
        c.prompt_done();
        assert!(matches!(
            c.actions()[..],
            [Join {
                moderator: false,
                ..
            }]
        ));
    }

    #[test]
    fn a_locked_conference_admits_moderators_only() {
        let locked = entry(r#"{"pin": "1", "moderator_pin": "2", "locked": true}"#);
        for (pin, moderator) in [("1#", false), ("2#", true)] {
            let mut c = Call::new();
            c.actions();
            c.prompt_done();
            c.keys("4711#");
            c.actions();
            c.ivr.handle_lookup(c.now, Ok(Some(locked.clone())));
            c.actions();
            c.prompt_done();
            c.keys(pin);
            let want = if moderator { Joining } else { Locked };
            assert_eq!(c.actions(), [Play(want)]);
            c.prompt_done();
            let last = c.actions();
            if moderator {
                assert!(matches!(
                    last[..],
                    [Join {
                        moderator: true,
                        ..
                    }]
                ));
            } else {
                assert_eq!(last, [Hangup(IvrEnd::Locked)]);
            }
        }
    }

    #[test]
    fn a_failing_store_or_a_full_conference_is_said_and_ends_the_call() {
        let mut c = Call::new();
        c.actions();
        c.keys("4711#");
        c.actions();
        c.ivr.handle_lookup(c.now, Err(()));
        assert_eq!(c.actions(), [Play(TryLater)]);
        c.prompt_done();
        assert_eq!(c.actions(), [Hangup(IvrEnd::StoreUnavailable)]);

        let mut c = Call::new();
        c.actions();
        c.keys("4711#");
        c.actions();
        c.ivr.handle_lookup(c.now, Ok(Some(entry("{}"))));
        c.prompt_done();
        c.actions();
        c.ivr.handle_join_refused(c.now, JoinRefused::Full);
        assert_eq!(c.actions(), [Play(Full)]);
        c.prompt_done();
        assert_eq!(c.actions(), [Hangup(IvrEnd::Full)]);
    }

    #[test]
    fn late_answers_and_stray_inputs_change_nothing() {
        let mut c = Call::new();
        c.actions();
        c.ivr.handle_lookup(c.now, Ok(Some(entry("{}"))));
        c.ivr.handle_timeout(c.now + Duration::from_secs(3600));
        assert!(c.actions().is_empty());
        c.prompt_done();
        c.ivr.handle_timeout(c.now);
        assert!(c.actions().is_empty(), "not due yet");
        assert_eq!(IvrPrompt::ALL.len(), 9);
    }
}
