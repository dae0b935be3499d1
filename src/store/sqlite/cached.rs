//! One-shot statements through each connection's statement cache. rusqlite's
//! `Connection::query_row`/`execute` compile the SQL on every call; for the few dozen statements
//! this store runs over and over, that parsing was 42% of the standalone server's instructions
//! under a fan-out load (callgrind, BENCHMARKS.md).

use rusqlite::{Connection, Params, Row};

/// Room for every distinct statement of the store, so none is evicted and recompiled.
pub const CAPACITY: usize = 128;

pub trait CachedSql {
    fn row<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: Params,
        F: FnOnce(&Row<'_>) -> rusqlite::Result<T>;

    fn exec<P: Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
}

impl CachedSql for Connection {
    fn row<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: Params,
        F: FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    {
        self.prepare_cached(sql)?.query_row(params, f)
    }

    fn exec<P: Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }
}
