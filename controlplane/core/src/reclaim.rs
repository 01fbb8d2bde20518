//! Call-manager leases and orphan reclamation: [`Reclaim`], the lease table and one
//! orphan watch per conference, with the steps the dataplane was too busy to take, and
//! the reclamation counts. [`crate::Control`] runs the procedure on its timers and the
//! dataplane's events (`control/reclaim.rs`).

use crate::error::ControlError;
use crate::leases::Leases;
use crate::orphan::{Action, ConferenceWatch, OrphanConfig, PromptTable, Reason};
use std::collections::HashMap;
use tutti_dataplane::clock::Instant;
use tutti_dataplane::conference::{ConfKey, PartKey};

/// The lease table, one orphan watch per conference, and the reclamation steps the
/// dataplane was too busy to take (retried on the next poll).
#[derive(Debug)]
pub struct Reclaim {
    config: OrphanConfig,
    pub(crate) prompts: PromptTable,
    pub(crate) leases: Leases,
    pub(crate) watches: HashMap<ConfKey, ConferenceWatch>,
    pub(crate) retry: Vec<(ConfKey, Action)>,
}

impl Reclaim {
    /// No leases and no conferences yet.
    pub fn new(config: OrphanConfig, prompts: PromptTable) -> Self {
        Reclaim {
            leases: Leases::new(config.lease_misses),
            config,
            prompts,
            watches: HashMap::new(),
            retry: Vec::new(),
        }
    }

    /// The reclamation timers.
    pub fn config(&self) -> &OrphanConfig {
        &self.config
    }

    /// The lease table.
    pub fn leases(&self) -> &Leases {
        &self.leases
    }

    /// Whether conference `key` is orphaned.
    pub fn is_orphaned(&self, key: ConfKey) -> bool {
        self.watches.get(&key).is_some_and(|w| w.is_orphaned())
    }

    /// How many conferences are orphaned.
    pub fn orphaned(&self) -> usize {
        self.watches.values().filter(|w| w.is_orphaned()).count()
    }

    pub fn conference_created(&mut self, key: ConfKey) {
        self.watches
            .insert(key, ConferenceWatch::new(self.config, self.prompts));
    }

    pub fn conference_removed(&mut self, key: ConfKey) {
        self.watches.remove(&key);
        self.retry.retain(|(k, _)| *k != key);
    }

    pub fn participant_added(&mut self, conf: ConfKey, part: PartKey, now: Instant) {
        if let Some(w) = self.watches.get_mut(&conf) {
            w.add_participant(part, now);
        }
    }

    pub fn participant_removed(&mut self, conf: ConfKey, part: PartKey) {
        if let Some(w) = self.watches.get_mut(&conf) {
            w.remove_participant(part);
        }
    }

    pub fn hold_changed(&mut self, conf: ConfKey, part: PartKey, hold: bool) {
        if let Some(w) = self.watches.get_mut(&conf) {
            w.set_hold(part, hold);
        }
    }
}

/// Reclamation counts, by reason (read at scrape time).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReclaimCounts {
    reclaimed: [u64; Reason::ALL.len()],
    deleted: [u64; Reason::ALL.len()],
}

impl ReclaimCounts {
    /// Conferences released for `reason`.
    pub fn reclaimed(&self, reason: Reason) -> u64 {
        self.reclaimed[reason as usize]
    }

    /// Participants deleted for `reason`.
    pub fn deleted(&self, reason: Reason) -> u64 {
        self.deleted[reason as usize]
    }

    /// Count one participant deleted by reclamation.
    pub fn participant_deleted(&mut self, reason: Reason) {
        self.deleted[reason as usize] += 1;
    }

    /// Count one conference released, with the participants it still had.
    pub fn conference_released(&mut self, reason: Reason, participants: usize) {
        self.reclaimed[reason as usize] += 1;
        self.deleted[reason as usize] += u64::try_from(participants).unwrap_or(u64::MAX);
    }
}

/// Longest call-manager name.
pub const MAX_OWNER_LEN: usize = 128;

/// Check a call manager's name (`what` names the field in the error).
pub fn check_name(what: &str, owner: &str) -> Result<(), ControlError> {
    if owner.is_empty()
        || owner.chars().count() > MAX_OWNER_LEN
        || owner.chars().any(char::is_control)
    {
        return Err(ControlError::Invalid(format!(
            "{what} must be 1 to {MAX_OWNER_LEN} characters without control characters"
        )));
    }
    Ok(())
}
