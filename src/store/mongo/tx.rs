//! Transactions with retries, and the mapping of driver errors to [`AppError`].

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use mongodb::ClientSession;
use mongodb::error::{
    Error, ErrorKind, TRANSIENT_TRANSACTION_ERROR, UNKNOWN_TRANSACTION_COMMIT_RESULT, WriteFailure,
};
use rand::Rng;

use crate::error::{AppError, AppResult};
use crate::ops::metrics as metric;

/// Why a transaction body stopped: the database failed (maybe worth a retry), the rules
/// refused (never retried: the refusal is the answer), or the body bet on something that turned
/// out false and has changed its mind (run again at once; the body must not bet twice).
#[derive(Debug)]
pub(super) enum TxError {
    Db(Error),
    App(AppError),
    Again,
}

impl From<Error> for TxError {
    fn from(e: Error) -> Self {
        TxError::Db(e)
    }
}

impl From<AppError> for TxError {
    fn from(e: AppError) -> Self {
        TxError::App(e)
    }
}

pub(super) type TxResult<T> = Result<T, TxError>;

/// Server error code of a command or write error, if the failure carries one.
pub(super) fn code(e: &Error) -> Option<i32> {
    match e.kind.as_ref() {
        ErrorKind::Command(c) => Some(c.code),
        ErrorKind::Write(WriteFailure::WriteError(w)) => Some(w.code),
        ErrorKind::Write(WriteFailure::WriteConcernError(w)) => Some(w.code),
        ErrorKind::InsertMany(m) => m
            .write_errors
            .as_ref()
            .and_then(|w| w.first())
            .map(|w| w.code)
            .or(m.write_concern_error.as_ref().map(|w| w.code)),
        _ => None,
    }
}

pub(super) const DUPLICATE_KEY: i32 = 11000;
const WRITE_CONFLICT: i32 = 112;

pub(super) fn is_duplicate_key(e: &Error) -> bool {
    code(e) == Some(DUPLICATE_KEY)
}

/// Worth running the whole transaction again: another transaction won a write conflict, or the
/// server says the failure was transient (elections, a dropped connection mid-transaction).
fn is_transient(e: &Error) -> bool {
    e.contains_label(TRANSIENT_TRANSACTION_ERROR) || code(e) == Some(WRITE_CONFLICT)
}

/// Server codes meaning "the database is not answering as a primary right now".
const UNAVAILABLE_CODES: &[i32] = &[
    6,     // HostUnreachable
    7,     // HostNotFound
    50,    // MaxTimeMSExpired
    89,    // NetworkTimeout
    91,    // ShutdownInProgress
    189,   // PrimarySteppedDown
    262,   // ExceededTimeLimit
    9001,  // SocketException
    10107, // NotWritablePrimary
    11600, // InterruptedAtShutdown
    11602, // InterruptedDueToReplStateChange
    13435, // NotPrimaryNoSecondaryOk
    13436, // NotPrimaryOrSecondary
];

/// Connection, server selection and time-outs are 503 `unavailable` (the client may retry);
/// anything else is a bug or data problem and stays internal (logged, 500).
pub(super) fn db_error(e: Error) -> AppError {
    let unavailable = match e.kind.as_ref() {
        ErrorKind::ServerSelection { .. }
        | ErrorKind::Io(_)
        | ErrorKind::ConnectionPoolCleared { .. }
        | ErrorKind::DnsResolve { .. }
        | ErrorKind::Shutdown => true,
        ErrorKind::Write(WriteFailure::WriteConcernError(_)) => true,
        // A conflict or election that outlasted the retry budget: busy, not broken.
        _ => is_transient(&e) || code(&e).is_some_and(|c| UNAVAILABLE_CODES.contains(&c)),
    };
    if unavailable {
        tracing::warn!(error = %e, "mongodb unavailable");
        AppError::Unavailable("mongodb".into())
    } else {
        AppError::Internal(anyhow::Error::new(e).context("mongodb"))
    }
}

pub(super) fn tx_error(e: TxError) -> AppError {
    match e {
        TxError::Db(e) => db_error(e),
        TxError::App(e) => e,
        TxError::Again => AppError::Internal(anyhow::anyhow!("transaction asked to run again")),
    }
}

/// Bounded retries with jittered exponential backoff: a handful of milliseconds at first, never
/// more than 100 ms between attempts, and at most [`Retry::BUDGET`] in all, after which the last
/// error is returned (as `unavailable` when it is a conflict: the group is too busy right now).
pub(super) struct Retry {
    started: Instant,
    attempt: u32,
}

impl Retry {
    const BUDGET: Duration = Duration::from_secs(10);
    const MAX_ATTEMPTS: u32 = 200;

    pub(super) fn new() -> Self {
        Self {
            started: Instant::now(),
            attempt: 0,
        }
    }

    /// Sleeps before the next attempt; false when the budget is spent.
    async fn wait(&mut self) -> bool {
        if self.attempt >= Self::MAX_ATTEMPTS || self.started.elapsed() >= Self::BUDGET {
            return false;
        }
        let ceiling = (2.0 * 1.5f64.powi(self.attempt.min(20) as i32)).min(100.0);
        let ms = rand::thread_rng().gen_range(ceiling / 2.0..=ceiling);
        self.attempt += 1;
        metrics::counter!(metric::STORE_TX_RETRIES).increment(1);
        tokio::time::sleep(Duration::from_micros((ms * 1000.0) as u64)).await;
        true
    }
}

/// Ends one attempt of a transaction: commits on success (retrying a commit whose result is
/// unknown, which the server makes idempotent), aborts on failure. `Continue` means run the
/// whole transaction again.
pub(super) async fn finish<T>(
    s: &mut ClientSession,
    result: TxResult<T>,
    retry: &mut Retry,
) -> ControlFlow<AppResult<T>> {
    match result {
        Ok(value) => {
            let mut commit_attempts = 0;
            loop {
                match s.commit_transaction().await {
                    Ok(()) => return ControlFlow::Break(Ok(value)),
                    Err(e)
                        if e.contains_label(UNKNOWN_TRANSACTION_COMMIT_RESULT)
                            && commit_attempts < 3 =>
                    {
                        commit_attempts += 1;
                        tokio::time::sleep(Duration::from_millis(10 * commit_attempts)).await;
                    }
                    Err(e) if is_transient(&e) && retry.wait().await => {
                        return ControlFlow::Continue(());
                    }
                    Err(e) => return ControlFlow::Break(Err(db_error(e))),
                }
            }
        }
        Err(e) => {
            // The server may have aborted already (any error inside a transaction does); the
            // driver then answers the abort locally. Its own failure changes nothing.
            let _ = s.abort_transaction().await;
            match e {
                TxError::Db(e) if is_transient(&e) && retry.wait().await => {
                    ControlFlow::Continue(())
                }
                TxError::Again => {
                    metrics::counter!(metric::STORE_TX_RETRIES).increment(1);
                    ControlFlow::Continue(())
                }
                e => ControlFlow::Break(Err(tx_error(e))),
            }
        }
    }
}

/// Runs `$body` (an expression producing a `TxResult` future that uses the session `$s`) in a
/// transaction, retried as a whole on transient errors. A macro rather than a function taking a
/// closure: the body borrows the session mutably, which async closures cannot yet express with
/// the `Send` bound the trait needs.
macro_rules! transaction {
    ($store:expr, |$s:ident| $body:expr) => {{
        let store = &$store;
        let mut retry = $crate::store::mongo::tx::Retry::new();
        let mut session = store
            .client
            .start_session()
            .await
            .map_err($crate::store::mongo::tx::db_error)?;
        loop {
            if let Err(e) = session
                .start_transaction()
                .with_options(store.tx_options.clone())
                .await
            {
                break Err($crate::store::mongo::tx::db_error(e));
            }
            let result = {
                let $s = &mut session;
                $body.await
            };
            match $crate::store::mongo::tx::finish(&mut session, result, &mut retry).await {
                std::ops::ControlFlow::Break(r) => break r,
                std::ops::ControlFlow::Continue(()) => continue,
            }
        }
    }};
}

pub(super) use transaction;
