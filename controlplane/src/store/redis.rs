//! The Redis backend: what the embedded store keeps, in a Redis server several
//! appliances share (the cluster's store). Under `prefix`:
//! - `{prefix}:directory` — a hash, conference code → the JSON of its entry's spec;
//! - `{prefix}:directory:codes` — a sorted set of the codes (score 0), for listing in
//!   code order a page at a time (`ZRANGEBYLEX`).
//!
//! Each change is one `MULTI`/`EXEC` transaction. The connection is made on first use
//! and again after any failure, with the configured timeout on connect, read and write,
//! so a dead server costs each request one bounded wait and a [`StoreError::Backend`]
//! naming it — and the store recovers by itself when the server is back.

use super::{Store, StoreError};
use std::time::Duration;
use tutti_control_core::directory::{Code, Entry, EntrySpec};

/// A Redis server holding the store.
pub struct Redis {
    client: redis::Client,
    conn: Option<redis::Connection>,
    timeout: Duration,
    hash: String,
    codes: String,
}

impl Redis {
    /// The store at `url` (`redis://host:port/db`), its keys under `prefix`; each
    /// connect, read and write waits at most `timeout`. Nothing is connected yet.
    pub fn new(url: &str, prefix: &str, timeout: Duration) -> Result<Redis, StoreError> {
        let client = redis::Client::open(url)
            .map_err(|e| StoreError::Backend(format!("redis URL {url:?}: {e}")))?;
        Ok(Redis {
            client,
            conn: None,
            timeout,
            hash: format!("{prefix}:directory"),
            codes: format!("{prefix}:directory:codes"),
        })
    }

    /// Where the server is, for messages.
    fn server(&self) -> String {
        self.client.get_connection_info().addr().to_string()
    }

    fn connection(&mut self) -> Result<&mut redis::Connection, StoreError> {
        if self.conn.is_none() {
            let fail = |e: redis::RedisError| {
                StoreError::Backend(format!("redis at {}: {e}", self.server()))
            };
            let conn = self
                .client
                .get_connection_with_timeout(self.timeout)
                .map_err(fail)?;
            conn.set_read_timeout(Some(self.timeout)).map_err(fail)?;
            conn.set_write_timeout(Some(self.timeout)).map_err(fail)?;
            self.conn = Some(conn);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| StoreError::Backend("redis: not connected".into()))
    }

    /// Run `f` on the connection; any failure drops it (the next request reconnects).
    fn with<T>(
        &mut self,
        f: impl FnOnce(&mut redis::Connection, &str, &str) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        let (hash, codes) = (self.hash.clone(), self.codes.clone());
        let result = f(self.connection()?, &hash, &codes);
        result.map_err(|e| {
            self.conn = None;
            StoreError::Backend(format!("redis at {}: {e}", self.server()))
        })
    }

    fn write(&mut self, entry: &Entry, replace: bool) -> Result<bool, StoreError> {
        let json = serde_json::to_string(&entry.to_spec())
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        let code = entry.code.as_str();
        let set = if replace { "HSET" } else { "HSETNX" };
        let (created, _): (u64, u64) = self.with(|c, hash, codes| {
            redis::pipe()
                .atomic()
                .cmd(set)
                .arg(hash)
                .arg(code)
                .arg(&json)
                .cmd("ZADD")
                .arg(codes)
                .arg(0)
                .arg(code)
                .query(c)
        })?;
        Ok(created == 1)
    }
}

fn decode(code: &str, json: &str) -> Result<Entry, StoreError> {
    let spec: EntrySpec = serde_json::from_str(json).map_err(|e| StoreError::corrupt(code, e))?;
    Entry::from_spec(code, spec).map_err(|e| StoreError::corrupt(code, e))
}

impl Store for Redis {
    fn entry(&mut self, code: &Code) -> Result<Option<Entry>, StoreError> {
        let json: Option<String> =
            self.with(|c, hash, _| redis::cmd("HGET").arg(hash).arg(code.as_str()).query(c))?;
        json.map(|j| decode(code.as_str(), &j)).transpose()
    }

    fn put_entry(&mut self, entry: &Entry) -> Result<bool, StoreError> {
        self.write(entry, true)
    }

    fn insert_entry(&mut self, entry: &Entry) -> Result<bool, StoreError> {
        self.write(entry, false)
    }

    fn delete_entry(&mut self, code: &Code) -> Result<bool, StoreError> {
        let (removed, _): (u64, u64) = self.with(|c, hash, codes| {
            redis::pipe()
                .atomic()
                .cmd("HDEL")
                .arg(hash)
                .arg(code.as_str())
                .cmd("ZREM")
                .arg(codes)
                .arg(code.as_str())
                .query(c)
        })?;
        Ok(removed == 1)
    }

    fn entries(&mut self, after: Option<&Code>, limit: usize) -> Result<Vec<Entry>, StoreError> {
        let start = after.map_or_else(|| "-".to_string(), |c| format!("({c}"));
        let page: Vec<String> = self.with(|c, _, codes| {
            redis::cmd("ZRANGEBYLEX")
                .arg(codes)
                .arg(&start)
                .arg("+")
                .arg("LIMIT")
                .arg(0)
                .arg(limit)
                .query(c)
        })?;
        if page.is_empty() {
            return Ok(Vec::new());
        }
        let values: Vec<Option<String>> =
            self.with(|c, hash, _| redis::cmd("HMGET").arg(hash).arg(&page).query(c))?;
        // A code deleted between the two reads is left out.
        page.iter()
            .zip(values)
            .filter_map(|(code, json)| json.map(|j| decode(code, &j)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::process::{Child, Command, Stdio};
    use std::time::Instant;

    /// A redis-server (Debian's) on a free loopback port, without persistence, stopped
    /// by PID when dropped.
    struct Server {
        child: Child,
        port: u16,
    }

    impl Server {
        fn start(port: u16) -> Server {
            let child = Command::new("redis-server")
                .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
                .stdout(Stdio::null())
                .spawn()
                .expect("redis-server (Debian package redis-server; scripts/test installs it)");
            let server = Server { child, port };
            let deadline = Instant::now() + Duration::from_secs(10);
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(Instant::now() < deadline, "redis-server did not start");
                std::thread::sleep(Duration::from_millis(20));
            }
            server
        }

        fn url(&self) -> String {
            format!("redis://127.0.0.1:{}/0", self.port)
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port")
    }

    #[test]
    fn the_redis_store_does_what_every_store_does() {
        let server = Server::start(free_port());
        let mut s = Redis::new(&server.url(), "t1", Duration::from_secs(2)).unwrap();
        crate::store::conformance(&mut s);
        // Another prefix is another store on the same server.
        let mut other = Redis::new(&server.url(), "t2", Duration::from_secs(2)).unwrap();
        assert!(other.entries(None, 10).unwrap().is_empty());
    }

    #[test]
    fn a_dead_server_is_an_error_naming_it_and_the_store_recovers() {
        let port = free_port();
        let server = Server::start(port);
        let mut s = Redis::new(&server.url(), "t", Duration::from_millis(500)).unwrap();
        let e = Entry::from_spec("77", EntrySpec::default()).unwrap();
        assert!(s.put_entry(&e).unwrap());
        drop(server);
        let err = s.entry(&e.code).unwrap_err();
        assert!(
            matches!(&err, StoreError::Backend(m) if m.contains(&format!("127.0.0.1:{port}"))),
            "{err}"
        );
        let err = s.entry(&e.code).unwrap_err();
        assert!(
            matches!(err, StoreError::Backend(_)),
            "reconnecting fails too: {err}"
        );
        let _back = Server::start(port);
        assert_eq!(
            s.entry(&e.code).unwrap(),
            None,
            "a fresh server, reached again"
        );
        assert!(s.put_entry(&e).unwrap());
    }

    #[test]
    fn a_damaged_record_is_an_error_naming_it() {
        let server = Server::start(free_port());
        let mut s = Redis::new(&server.url(), "t", Duration::from_secs(2)).unwrap();
        let _: () = s
            .with(|c, hash, codes| {
                redis::pipe()
                    .cmd("HSET")
                    .arg(hash)
                    .arg("5")
                    .arg("{not json")
                    .ignore()
                    .cmd("ZADD")
                    .arg(codes)
                    .arg(0)
                    .arg("5")
                    .ignore()
                    .query(c)
            })
            .unwrap();
        let err = s.entry(&Code::parse("5").unwrap()).unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt { key, .. } if key == "5"),
            "{err}"
        );
        assert!(matches!(
            s.entries(None, 10),
            Err(StoreError::Corrupt { .. })
        ));
        let err = Redis::new("http://nowhere", "t", Duration::from_secs(1))
            .err()
            .unwrap();
        assert!(err.to_string().contains("redis URL"), "{err}");
    }
}
