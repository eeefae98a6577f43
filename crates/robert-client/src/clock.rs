//! The phone's clock, injectable so that a simulator can run thousands of
//! phones on virtual time.
//!
//! The SDK never reads the system time directly: every decision (current
//! EBID, HELLO time, request time, retention, schedules, notification hours)
//! asks the [`Clock`] given to [`crate::Phone`]. The clocks are the
//! workspace's one clock (`robert-clock`), shared with the server and the
//! code service: [`SystemClock`] (UTC), [`OffsetClock`] (the system clock
//! shifted, with a settable UTC offset: `robert phone --clock-offset`) and
//! [`ManualClock`] (clones share one time, so one clock can drive many
//! phones).

pub use robert_clock::{Clock, ManualClock, OffsetClock, SystemClock};
