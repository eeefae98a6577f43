//! The SQLite writer: one connection, one task, group commit.
//!
//! SQLite admits one writer at a time, and with `synchronous=FULL` every
//! commit waits for an `fsync` (about 4 ms on the development VM's disk, i.e.
//! at most ~250 commits/s). The writer therefore takes every write request
//! queued when it becomes free (up to `group_max`), runs each in its own
//! savepoint inside ONE `BEGIN IMMEDIATE` transaction, commits once, and only
//! then answers each request. A failing request rolls back its savepoint
//! only; a failing commit fails every request of the group. No request is
//! answered `Ok` before its data is durable.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;

use sqlx::sqlite::SqliteConnection;
use sqlx::{Connection as _, Sqlite, Transaction};
use tokio::sync::{mpsc, oneshot};

use crate::StoreError;

/// A boxed future borrowing the connection.
pub(crate) type BoxFuture<'c, T> = Pin<Box<dyn Future<Output = T> + Send + 'c>>;

type AnyResult = Result<Box<dyn Any + Send>, StoreError>;
type JobFn = Box<dyn for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, AnyResult> + Send>;

struct Job {
    run: JobFn,
    reply: oneshot::Sender<AnyResult>,
}

/// Handle to the writer task.
#[derive(Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}

/// Pins the closure's signature so that its returned future may borrow the connection.
fn job_fn<F>(f: F) -> F
where
    F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, AnyResult> + Send + 'static,
{
    f
}

impl Writer {
    /// Starts the writer task on `conn`.
    pub(crate) fn spawn(conn: SqliteConnection, group_max: usize) -> Self {
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(writer_loop(conn, rx, group_max.max(1)));
        Self { tx }
    }

    /// Runs `f` in a write transaction and returns its result once committed.
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, StoreError>>
            + Send
            + 'static,
    {
        let run: JobFn = Box::new(job_fn(move |conn| {
            Box::pin(async move { f(conn).await.map(|v| Box::new(v) as Box<dyn Any + Send>) })
        }));
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job { run, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        let value = rx.await.map_err(|_| StoreError::Closed)??;
        value
            .downcast::<T>()
            .map(|b| *b)
            .map_err(|_| StoreError::Corrupt("writer returned a value of another type"))
    }
}

async fn writer_loop(mut conn: SqliteConnection, mut rx: mpsc::Receiver<Job>, group_max: usize) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < group_max {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        run_group(&mut conn, jobs).await;
    }
    if let Err(e) = conn.close().await {
        tracing::warn!(error = %e, "closing the SQLite writer connection failed");
    }
}

async fn run_group(conn: &mut SqliteConnection, jobs: Vec<Job>) {
    let mut tx = match conn.begin_with("BEGIN IMMEDIATE").await {
        Ok(tx) => tx,
        Err(e) => {
            let e = StoreError::from(e);
            for job in jobs {
                let _ = job.reply.send(Err(e.clone()));
            }
            return;
        }
    };
    let single = jobs.len() == 1;
    let mut done: Vec<(oneshot::Sender<AnyResult>, AnyResult)> = Vec::with_capacity(jobs.len());
    let mut jobs = jobs.into_iter();
    let mut fatal: Option<StoreError> = None;
    for job in jobs.by_ref() {
        let result = if single {
            (job.run)(&mut tx).await
        } else {
            match run_in_savepoint(&mut tx, job.run).await {
                Ok(result) => result,
                Err(e) => {
                    // The savepoint could not be opened or rolled back: the
                    // transaction's state is unknown, abandon the group.
                    let _ = job.reply.send(Err(e.clone()));
                    fatal = Some(e);
                    break;
                }
            }
        };
        done.push((job.reply, result));
    }
    if single && done.iter().any(|(_, r)| r.is_err()) {
        if let Err(e) = tx.rollback().await {
            tracing::warn!(error = %e, "SQLite rollback failed");
        }
        for (reply, result) in done {
            let _ = reply.send(result);
        }
        return;
    }
    let outcome = match fatal {
        Some(e) => {
            let _ = tx.rollback().await;
            Err(e)
        }
        None => tx.commit().await.map_err(StoreError::from),
    };
    match outcome {
        Ok(()) => {
            for (reply, result) in done {
                let _ = reply.send(result);
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "SQLite group commit failed");
            for (reply, _) in done {
                let _ = reply.send(Err(e.clone()));
            }
            for job in jobs {
                let _ = job.reply.send(Err(e.clone()));
            }
        }
    }
}

/// Runs one job in a savepoint; `Err` only when the savepoint itself fails.
async fn run_in_savepoint(
    tx: &mut Transaction<'_, Sqlite>,
    run: JobFn,
) -> Result<AnyResult, StoreError> {
    let mut sp = sqlx::Connection::begin(&mut **tx).await?;
    let result = run(&mut sp).await;
    if result.is_ok() {
        sp.commit().await?;
    } else {
        sp.rollback().await?;
    }
    Ok(result)
}
