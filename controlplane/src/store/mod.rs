//! Where provisioning (and later call state) is kept: one [`Store`] trait, the embedded
//! backend ([`embedded::Embedded`], redb) for one box, a Redis backend for a cluster
//! later. A store may be slow or down; nobody waits on it directly. Every request goes
//! through the bounded [`queue`] to a worker thread that owns the store, and comes back
//! as an answer or as a clear failure ([`StoreError::Busy`], [`StoreError::Timeout`]).

pub mod embedded;
pub mod queue;
pub mod redis;

use tutti_control_core::directory::{Code, DirectoryError, Entry};

/// Why a store request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The backend failed (I/O, a damaged file, the server gone).
    #[error("the store failed: {0}")]
    Backend(String),
    /// A record that does not read back as a valid value.
    #[error("the store's record for {key:?} is damaged: {reason}")]
    Corrupt {
        /// Its key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The request queue is full: the store is not keeping up.
    #[error("the store is busy ({0} requests queued); try again later")]
    Busy(usize),
    /// No answer in time; a write may or may not have been made.
    #[error("the store did not answer within {0} ms (a change may or may not have been made)")]
    Timeout(u64),
    /// The store's worker has stopped.
    #[error("the store is not running")]
    Closed,
}

impl StoreError {
    /// The error for record `key` that fails to read back as a valid value.
    pub fn corrupt(key: &str, reason: impl ToString) -> StoreError {
        StoreError::Corrupt {
            key: key.to_string(),
            reason: reason.to_string(),
        }
    }
}

impl From<DirectoryError> for StoreError {
    fn from(e: DirectoryError) -> Self {
        StoreError::Backend(e.to_string())
    }
}

/// What a store keeps. Calls run on the store's worker thread (see [`queue`]), one at a
/// time, so they may block.
pub trait Store: Send + 'static {
    /// The entry for `code`, if there is one.
    fn entry(&mut self, code: &Code) -> Result<Option<Entry>, StoreError>;
    /// Create or replace `entry`; whether it was created.
    fn put_entry(&mut self, entry: &Entry) -> Result<bool, StoreError>;
    /// Create `entry` unless its code exists; whether it was created.
    fn insert_entry(&mut self, entry: &Entry) -> Result<bool, StoreError>;
    /// Delete the entry for `code`; whether there was one.
    fn delete_entry(&mut self, code: &Code) -> Result<bool, StoreError>;
    /// Up to `limit` entries in code order, starting after `after`.
    fn entries(&mut self, after: Option<&Code>, limit: usize) -> Result<Vec<Entry>, StoreError>;
}

/// What every backend must do, run by each backend's tests on a fresh, empty store.
#[cfg(test)]
pub(crate) fn conformance(s: &mut dyn Store) {
    let entry = |code: &str, json: &str| {
        Entry::from_spec(code, serde_json::from_str(json).unwrap()).unwrap()
    };
    let code = |c: &str| Code::parse(c).unwrap();
    let e = entry("4711", r#"{"pin": "1234", "name": "Ops bridge"}"#);
    assert_eq!(s.entry(&code("4711")).unwrap(), None);
    assert!(s.insert_entry(&e).unwrap());
    assert!(
        !s.insert_entry(&entry("4711", "{}")).unwrap(),
        "insert does not replace"
    );
    assert_eq!(s.entry(&code("4711")).unwrap(), Some(e));
    let changed = entry("4711", r#"{"pin": "9999", "locked": true}"#);
    assert!(!s.put_entry(&changed).unwrap(), "put replaces");
    assert_eq!(s.entry(&code("4711")).unwrap(), Some(changed));
    assert!(s.delete_entry(&code("4711")).unwrap());
    assert!(!s.delete_entry(&code("4711")).unwrap());
    assert_eq!(s.entry(&code("4711")).unwrap(), None);
    // Listing: code order (bytewise: "10" < "2"), a page at a time.
    for c in ["30", "10", "2", "40"] {
        assert!(s.put_entry(&entry(c, "{}")).unwrap());
    }
    let codes = |v: Vec<Entry>| {
        v.into_iter()
            .map(|e| e.code.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(codes(s.entries(None, 3).unwrap()), ["10", "2", "30"]);
    assert_eq!(codes(s.entries(Some(&code("30")), 3).unwrap()), ["40"]);
    assert_eq!(codes(s.entries(Some(&code("35")), 3).unwrap()), ["40"]);
    assert!(s.entries(Some(&code("40")), 3).unwrap().is_empty());
}
