//! Releases held answers at their deadlines, to tens of microseconds.
//!
//! The privacy layer ([`super::privacy`]) holds every marked answer until a
//! deadline drawn at the request's arrival. Tokio's timer cannot release it
//! there: it counts whole milliseconds, and a parked worker wakes a whole
//! number of them after it went to sleep, so the release falls at a
//! sub-millisecond phase set by what the worker did last, not by the
//! deadline. What the worker did last depends on the traffic just before
//! (a phone's dummy `/status` follows the previous phone's real one, its
//! real one follows its own dummy): on the Zen 3 VM of 2026-12-07 a
//! 1-nearest-neighbour on the time told them apart at 0.61 – 0.63, with
//! the time's sub-millisecond part bunched at different phases for each.
//! Spinning through the last millisecond, as the layer did before, only
//! helps when the worker wakes before it, and costs up to a millisecond of
//! CPU per marked request.
//!
//! One thread per process waits on a condition variable until the earliest
//! deadline (the kernel's high-resolution timers: its lateness is the
//! scheduler's, a few to tens of microseconds, unrelated to any grid) and
//! wakes the held tasks through one-shot channels. Tokio has no such timer.
//! Small crates put Linux's `timerfd` under tokio (`tokio-timerfd`,
//! `tokio-timerd`, `tokio-hrtime`: a descriptor per timer, or a queue of
//! their own over one), each kept by one person; this is a hundred lines of
//! the standard library without `unsafe`, one thread for every held answer.

use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Instant;

use tokio::sync::oneshot;

/// The held answers, earliest deadline first (ties in arrival order), with
/// the channels that wake their tasks.
#[derive(Default)]
struct Queue {
    held: BTreeMap<(Instant, u64), oneshot::Sender<()>>,
    /// Arrival counter: the second half of the keys.
    seq: u64,
}

/// The release thread's shared state.
#[derive(Default)]
struct Timer {
    queue: Mutex<Queue>,
    /// Signalled when a deadline earlier than every held one arrives.
    earlier: Condvar,
}

impl Timer {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic while holding the lock leaves a valid map (every
        // operation on it is a single insertion or split).
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The release thread: wakes every task whose deadline has passed, then
    /// sleeps until the next one (or until an earlier one is added).
    fn run(&self) {
        let mut queue = self.lock();
        loop {
            let now = Instant::now();
            let later = queue.held.split_off(&(now, u64::MAX));
            let due = std::mem::replace(&mut queue.held, later);
            if !due.is_empty() {
                // Woken outside the lock: a wake may write to the runtime's
                // event descriptor.
                drop(queue);
                for wake in due.into_values() {
                    // The task is gone (its client went away): nothing to do.
                    let _ = wake.send(());
                }
                queue = self.lock();
                continue;
            }
            queue = match queue.held.first_key_value().map(|(k, _)| k.0 - now) {
                None => self
                    .earlier
                    .wait(queue)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(wait) => {
                    self.earlier
                        .wait_timeout(queue, wait)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
    }

    fn hold(&self, at: Instant) -> oneshot::Receiver<()> {
        let (wake, woken) = oneshot::channel();
        let mut queue = self.lock();
        let earliest = queue.held.first_key_value().is_none_or(|(k, _)| at < k.0);
        queue.seq += 1;
        let key = (at, queue.seq);
        queue.held.insert(key, wake);
        drop(queue);
        if earliest {
            self.earlier.notify_one();
        }
        woken
    }
}

/// The process's release thread, started on first use; `None` if the
/// thread could not be started.
fn timer() -> Option<&'static Timer> {
    static TIMER: OnceLock<Option<&'static Timer>> = OnceLock::new();
    *TIMER.get_or_init(|| {
        // Leaked once per process: the thread lives as long as it.
        let timer: &'static Timer = Box::leak(Box::default());
        std::thread::Builder::new()
            .name("robert-release".into())
            .spawn(move || timer.run())
            .ok()
            .map(|_| timer)
    })
}

/// Completes at `at`, to the scheduler's precision rather than tokio's
/// millisecond: at once if `at` has passed. Cancel-safe (a dropped wait
/// leaves an entry that expires at `at`). On the real clock: under tokio's
/// paused test clock the wait still takes real time, and the runtime,
/// idle meanwhile, may advance its paused timers past it.
pub async fn release_at(at: Instant) {
    if at <= Instant::now() {
        return;
    }
    // An error means the thread dropped the channel, which it does not do;
    // tokio's timer is the fallback then, and without the thread.
    let woken = match timer() {
        Some(timer) => timer.hold(at).await.is_ok(),
        None => false,
    };
    if !woken {
        tokio::time::sleep_until(at.into()).await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_earliest_deadline_is_released_first_ties_in_arrival_order() {
        let timer = Timer::default();
        let start = Instant::now();
        let offsets_ms = [9u64, 3, 6, 3, 12, 1];
        let mut woken: Vec<_> = offsets_ms
            .iter()
            .map(|&ms| timer.hold(start + Duration::from_millis(ms)))
            .collect();
        let mut order = Vec::new();
        while let Some(((at, seq), wake)) = timer.lock().held.pop_first() {
            order.push(((at - start).as_millis(), seq));
            wake.send(()).unwrap();
        }
        assert_eq!(order, [(1, 6), (3, 2), (3, 4), (6, 3), (9, 1), (12, 5)]);
        for w in &mut woken {
            assert_eq!(w.try_recv(), Ok(()));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_answer_is_released_before_its_deadline() {
        let start = Instant::now();
        let tasks: Vec<_> = (0..24u64)
            .map(|i| {
                // Out of order, some equal, over 0 – 7 ms.
                let at = start + Duration::from_micros((i * 7_919) % 7_000);
                tokio::spawn(async move {
                    release_at(at).await;
                    Instant::now() >= at
                })
            })
            .collect();
        for t in tasks {
            assert!(t.await.unwrap(), "released before its deadline");
        }
    }

    #[tokio::test]
    async fn a_past_deadline_releases_at_once_and_a_dropped_wait_is_harmless() {
        tokio::time::timeout(Duration::from_secs(5), release_at(Instant::now()))
            .await
            .unwrap();
        // A wait abandoned before its deadline, then a later one: the
        // abandoned entry expires without a receiver.
        let soon = Instant::now() + Duration::from_millis(20);
        assert!(
            tokio::time::timeout(Duration::from_micros(100), release_at(soon))
                .await
                .is_err()
        );
        let later = Instant::now() + Duration::from_millis(30);
        release_at(later).await;
        assert!(Instant::now() >= later);
    }

    /// How bunched the sub-millisecond phases of `waits` are: the length
    /// of their mean vector on the unit circle, 1 when all are equal, near 0
    /// when they are spread (about 1/√n at random).
    fn phase_concentration(waits: &[Duration]) -> f64 {
        let (mut x, mut y) = (0.0, 0.0);
        for w in waits {
            let angle = std::f64::consts::TAU * (w.as_nanos() % 1_000_000) as f64 / 1e6;
            x += angle.cos();
            y += angle.sin();
        }
        x.hypot(y) / waits.len() as f64
    }

    /// The weakness this thread fixes: holds spread over a millisecond's
    /// phases must take times spread alike. On tokio's timer they do not:
    /// it wakes a whole number of milliseconds after the worker went to
    /// sleep, so the time from a request's arrival to its release bunches
    /// at one sub-millisecond phase (concentration 0.9 – 1 here, against
    /// 0.0 – 0.1 for this thread, on the Zen 3 VM).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn release_times_keep_the_holds_sub_millisecond_phase() {
        let mut taken = Vec::new();
        for i in 0..64u32 {
            let arrived = Instant::now();
            // 2 ms plus a phase of 0, 1/64, 2/64... of a millisecond.
            let hold = Duration::from_micros(2_000) + Duration::from_micros(1_000) * i / 64;
            release_at(arrived + hold).await;
            taken.push(arrived.elapsed());
        }
        let bunched = phase_concentration(&taken);
        assert!(bunched < 0.5, "release phases bunched: {bunched:.2}");
    }
}
