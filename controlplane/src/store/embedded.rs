//! The embedded store: a redb database file in `state_dir` (crash-safe: a change is on
//! disk when its transaction commits), or a non-persistent in-memory one when no
//! `state_dir` is configured. Entries are kept as the JSON of their spec and validated
//! again when read, so a damaged record is a [`StoreError::Corrupt`], never a panic.

use super::{Store, StoreError};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::ops::Bound;
use std::path::Path;
use tutti_control_core::directory::{Code, Entry, EntrySpec};

/// Conference code → the JSON of its [`EntrySpec`].
const DIRECTORY: TableDefinition<&str, &[u8]> = TableDefinition::new("directory");

/// The file in `state_dir` that holds the database.
pub const FILE_NAME: &str = "tutti.redb";

/// A redb database.
pub struct Embedded {
    db: Database,
}

fn backend(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Backend(e.into().to_string())
}

impl Embedded {
    /// Open (or create) the database in directory `state_dir`.
    pub fn open(state_dir: &Path) -> Result<Embedded, StoreError> {
        let path = state_dir.join(FILE_NAME);
        let db = Database::create(&path)
            .map_err(|e| StoreError::Backend(format!("{}: {}", path.display(), backend(e))))?;
        Embedded::init(db)
    }

    /// A database in memory, gone when the process ends.
    pub fn in_memory() -> Result<Embedded, StoreError> {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(backend)?;
        Embedded::init(db)
    }

    /// Make sure every table exists, so readers never meet a missing one.
    fn init(db: Database) -> Result<Embedded, StoreError> {
        let tx = db.begin_write().map_err(backend)?;
        tx.open_table(DIRECTORY).map_err(backend)?;
        tx.commit().map_err(backend)?;
        Ok(Embedded { db })
    }

    /// Write `entry`, replacing what is there only if `replace`; whether it was created.
    fn write(&mut self, entry: &Entry, replace: bool) -> Result<bool, StoreError> {
        let json =
            serde_json::to_vec(&entry.to_spec()).map_err(|e| StoreError::Backend(e.to_string()))?;
        let tx = self.db.begin_write().map_err(backend)?;
        let created = {
            let mut table = tx.open_table(DIRECTORY).map_err(backend)?;
            let exists = table.get(entry.code.as_str()).map_err(backend)?.is_some();
            if exists && !replace {
                return Ok(false);
            }
            table
                .insert(entry.code.as_str(), json.as_slice())
                .map_err(backend)?;
            !exists
        };
        tx.commit().map_err(backend)?;
        Ok(created)
    }
}

fn decode(code: &str, json: &[u8]) -> Result<Entry, StoreError> {
    let spec: EntrySpec = serde_json::from_slice(json).map_err(|e| StoreError::corrupt(code, e))?;
    Entry::from_spec(code, spec).map_err(|e| StoreError::corrupt(code, e))
}

impl Store for Embedded {
    fn entry(&mut self, code: &Code) -> Result<Option<Entry>, StoreError> {
        let tx = self.db.begin_read().map_err(backend)?;
        let table = tx.open_table(DIRECTORY).map_err(backend)?;
        let found = table.get(code.as_str()).map_err(backend)?;
        found.map(|v| decode(code.as_str(), v.value())).transpose()
    }

    fn put_entry(&mut self, entry: &Entry) -> Result<bool, StoreError> {
        self.write(entry, true)
    }

    fn insert_entry(&mut self, entry: &Entry) -> Result<bool, StoreError> {
        self.write(entry, false)
    }

    fn delete_entry(&mut self, code: &Code) -> Result<bool, StoreError> {
        let tx = self.db.begin_write().map_err(backend)?;
        let existed = {
            let mut table = tx.open_table(DIRECTORY).map_err(backend)?;
            let old = table.remove(code.as_str()).map_err(backend)?;
            old.is_some()
        };
        tx.commit().map_err(backend)?;
        Ok(existed)
    }

    fn entries(&mut self, after: Option<&Code>, limit: usize) -> Result<Vec<Entry>, StoreError> {
        let tx = self.db.begin_read().map_err(backend)?;
        let table = tx.open_table(DIRECTORY).map_err(backend)?;
        let start = after.map_or(Bound::Unbounded, |c| Bound::Excluded(c.as_str()));
        let mut out = Vec::new();
        for row in table
            .range::<&str>((start, Bound::Unbounded))
            .map_err(backend)?
            .take(limit)
        {
            let (k, v) = row.map_err(backend)?;
            out.push(decode(k.value(), v.value())?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(code: &str, json: &str) -> Entry {
        Entry::from_spec(code, serde_json::from_str(json).unwrap()).unwrap()
    }

    fn code(s: &str) -> Code {
        Code::parse(s).unwrap()
    }

    #[test]
    fn the_embedded_store_does_what_every_store_does() {
        crate::store::conformance(&mut Embedded::in_memory().unwrap());
    }

    #[test]
    fn entries_survive_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let e = entry("4711", r#"{"pin": "1234", "name": "Ops bridge"}"#);
        Embedded::open(dir.path())
            .unwrap()
            .insert_entry(&e)
            .unwrap();
        let mut s = Embedded::open(dir.path()).unwrap();
        assert_eq!(s.entry(&code("4711")).unwrap(), Some(e));
    }

    #[test]
    fn a_damaged_record_is_an_error_naming_it() {
        let mut s = Embedded::in_memory().unwrap();
        for (k, v) in [("5", &b"{not json"[..]), ("6", br#"{"pin": "x"}"#)] {
            let tx = s.db.begin_write().unwrap();
            tx.open_table(DIRECTORY).unwrap().insert(k, v).unwrap();
            tx.commit().unwrap();
        }
        for k in ["5", "6"] {
            let err = s.entry(&code(k)).unwrap_err();
            assert!(
                matches!(&err, StoreError::Corrupt { key, .. } if key == k),
                "{err}"
            );
        }
        assert!(matches!(
            s.entries(None, 10),
            Err(StoreError::Corrupt { .. })
        ));
    }

    #[test]
    fn an_unusable_state_dir_is_an_error_naming_the_file() {
        let err = Embedded::open(Path::new("/nonexistent/tutti-state"))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("/nonexistent/tutti-state/tutti.redb"), "{err}");
    }
}
