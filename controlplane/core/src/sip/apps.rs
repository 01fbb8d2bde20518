//! Applications by dialled number (DNIS): the Request-URI user (else the To user) of a
//! new INVITE selects what answers it: `conf-<id>` joins conference `<id>` directly (as
//! before applications existed); a number in `applications:` runs its application;
//! any other number runs the configured default, else gets 404.
//!
//! The applications' call logic is sans-IO: an [`AppCall`] takes the media events of
//! its caller and says what to do next ([`AppAction`]); the user agent carries it out.
//! Every application call is a one-participant conference of its own on the answering
//! appliance (`app-<tag>`), deleted with the call.

use super::{conference_of, Refusal};
use std::collections::BTreeMap;

/// What a dialled number runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum App {
    /// The conference IVR: enter a code, join its conference.
    Conference,
    /// Play `prompt`, then hang up (or play it again until the caller hangs up, if
    /// `looped`).
    Announcement { prompt: String, looped: bool },
    /// The caller hears themselves (a line test).
    Echo,
}

impl App {
    /// Its name in the configuration (`app:`).
    pub fn name(&self) -> &'static str {
        match self {
            App::Conference => "conference",
            App::Announcement { .. } => "announcement",
            App::Echo => "echo",
        }
    }
}

/// The `applications:` table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applications {
    /// By dialled number (the user part, exactly).
    pub numbers: BTreeMap<String, App>,
    /// For numbers not in the table (else 404).
    pub default: Option<App>,
}

/// Where a new call goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// Join conference `<id>` (`conf-<id>`).
    Join(String),
    /// Run an application.
    App(App),
}

impl Applications {
    /// The route of a call to `request_user` (the Request-URI user), else `to_user`
    /// (the To URI's user).
    pub fn route(
        &self,
        request_user: Option<&str>,
        to_user: Option<&str>,
    ) -> Result<Route, Refusal> {
        let dialled = request_user.filter(|u| !u.is_empty()).or(to_user);
        if let Some(app) = dialled.and_then(|n| self.numbers.get(n)) {
            return Ok(Route::App(app.clone()));
        }
        match conference_of(dialled) {
            Ok(conf) => Ok(Route::Join(conf.to_string())),
            Err(r) => self.default.clone().map(Route::App).ok_or(match dialled {
                Some(n) if !n.starts_with("conf-") && !self.numbers.is_empty() => {
                    Refusal::new(404, "No application for this number")
                }
                _ => r,
            }),
        }
    }
}

/// What an application call does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppAction {
    /// Play this prompt (by name) to the caller and report its end.
    Play(String),
    /// End the call (BYE), for this reason.
    Hangup(&'static str),
}

/// One caller in an application (announcement or echo).
#[derive(Debug)]
pub struct AppCall {
    app: App,
    done: bool,
}

impl AppCall {
    /// A call to `app`, answered: what to do first.
    pub fn start(app: App) -> (AppCall, Option<AppAction>) {
        let first = match &app {
            App::Announcement { prompt, .. } => Some(AppAction::Play(prompt.clone())),
            App::Echo | App::Conference => None,
        };
        (AppCall { app, done: false }, first)
    }

    /// The application it runs.
    pub fn app(&self) -> &App {
        &self.app
    }

    /// Whether the caller hears their own input.
    pub fn echo(&self) -> bool {
        self.app == App::Echo
    }

    /// The prompt played last has ended (`completed`: played out, not cut short).
    pub fn handle_prompt_done(&mut self, completed: bool) -> Option<AppAction> {
        if self.done {
            return None;
        }
        match &self.app {
            App::Announcement { prompt, looped } if *looped && completed => {
                Some(AppAction::Play(prompt.clone()))
            }
            App::Announcement { .. } => {
                self.done = true;
                Some(AppAction::Hangup("announcement_done"))
            }
            App::Echo | App::Conference => None,
        }
    }

    /// A prompt could not be played (unknown name, the dataplane refused).
    pub fn handle_play_failed(&mut self) -> Option<AppAction> {
        (!std::mem::replace(&mut self.done, true)).then_some(AppAction::Hangup("prompt_failed"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Applications {
        let mut numbers = BTreeMap::new();
        numbers.insert("100".to_string(), App::Echo);
        numbers.insert(
            "200".to_string(),
            App::Announcement {
                prompt: "goodbye".into(),
                looped: false,
            },
        );
        numbers.insert("300".to_string(), App::Conference);
        Applications {
            numbers,
            default: None,
        }
    }

    #[test]
    fn the_request_uri_user_then_the_to_user_selects_the_application() {
        let t = table();
        assert_eq!(t.route(Some("100"), Some("300")), Ok(Route::App(App::Echo)));
        assert_eq!(t.route(None, Some("300")), Ok(Route::App(App::Conference)));
        assert_eq!(t.route(Some(""), Some("100")), Ok(Route::App(App::Echo)));
        assert_eq!(t.route(Some("conf-7"), None), Ok(Route::Join("7".into())));
        let r = t.route(Some("555"), Some("100")).unwrap_err();
        assert_eq!(
            (r.code, r.reason.as_str()),
            (404, "No application for this number")
        );
        assert_eq!(t.route(Some("conf-a/b"), None).unwrap_err().code, 404);
        assert_eq!(t.route(None, None).unwrap_err().code, 404);
        // Without applications, only conf-<id> is known (as before).
        let none = Applications::default();
        assert_eq!(none.route(Some("100"), None).unwrap_err().code, 404);
        assert_eq!(
            none.route(Some("conf-x"), None),
            Ok(Route::Join("x".into()))
        );
    }

    #[test]
    fn unknown_numbers_run_the_default() {
        let t = Applications {
            default: Some(App::Echo),
            ..table()
        };
        assert_eq!(t.route(Some("555"), None), Ok(Route::App(App::Echo)));
        assert_eq!(t.route(None, None), Ok(Route::App(App::Echo)));
        assert_eq!(t.route(Some("conf-9"), None), Ok(Route::Join("9".into())));
    }

    #[test]
    fn an_announcement_plays_then_hangs_up_or_loops() {
        let once = App::Announcement {
            prompt: "welcome".into(),
            looped: false,
        };
        let (mut c, first) = AppCall::start(once);
        assert_eq!(first, Some(AppAction::Play("welcome".into())));
        assert!(!c.echo());
        assert_eq!(
            c.handle_prompt_done(true),
            Some(AppAction::Hangup("announcement_done"))
        );
        assert_eq!(c.handle_prompt_done(true), None, "once only");

        let looped = App::Announcement {
            prompt: "moh".into(),
            looped: true,
        };
        let (mut c, _) = AppCall::start(looped);
        for _ in 0..3 {
            assert_eq!(
                c.handle_prompt_done(true),
                Some(AppAction::Play("moh".into()))
            );
        }
        // Cut short (replaced, stopped): the loop ends too.
        assert_eq!(
            c.handle_prompt_done(false),
            Some(AppAction::Hangup("announcement_done"))
        );
        let (mut c, _) = AppCall::start(App::Announcement {
            prompt: "nope".into(),
            looped: true,
        });
        assert_eq!(
            c.handle_play_failed(),
            Some(AppAction::Hangup("prompt_failed"))
        );
        assert_eq!(c.handle_play_failed(), None);
        assert_eq!(c.handle_prompt_done(true), None);
    }

    #[test]
    fn echo_only_echoes() {
        let (mut c, first) = AppCall::start(App::Echo);
        assert_eq!(first, None);
        assert!(c.echo());
        assert_eq!(c.handle_prompt_done(true), None);
        assert_eq!(c.app().name(), "echo");
    }
}
