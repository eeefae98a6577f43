//! Radio timing and OS behaviour: who hears whose HELLO, when, and with which
//! RSSI (client-ble.md §1.3–1.8, §6).
//!
//! The simulator does not emit every 100 ms packet. For each pair of phones
//! in range and each time step it calls [`LinkModel::step`], which draws, for
//! every *report period* of each receiver ending inside the step, whether at
//! least one advert was caught:
//!
//! ```text
//! L   = overlap of the report period with the receiver's scan windows
//! n   = number of advertising events of the sender in L   (L / (interval + E[advDelay]), randomly rounded)
//! p   = P(packet RSSI ≥ floor) · (1 − P(collision))      (per event; fading is independent per packet)
//! P(caught) = 1 − (1 − p)ⁿ
//! RSSI of the reported result ~ level + fading | above the floor   (the last caught advert)
//! ```
//!
//! and turns each catch into what the apps do with it (exchange matrix, §1.6):
//!
//! | receiver ← sender | trigger | output [`Via`] |
//! |---|---|---|
//! | Android ← Android | receiver catches the advert | [`Via::Advert`] |
//! | iPhone ← Android | iPhone catches the advert (foreground or background) | [`Via::Advert`] |
//! | Android ← iPhone | the iPhone caught the Android's advert and has not written to it for `ios_connection_interval_s`; connection succeeds | [`Via::IosWrite`], RSSI from the Android's scan cache of the iPhone (≤ 30 s) or a remote-RSSI read |
//! | iPhone ← iPhone | receiver catches the sender's advert: a background sender is only visible to a foreground receiver; payload read over GATT unless cached | [`Via::GattRead`] / [`Via::CachedRead`] |
//! | X ← Android without advertiser | the no-advertiser phone catches X's advert during its 2 s scan, ≥ 45 s since the last exchange; connection succeeds | [`Via::PartialRssiWrite`] (to Androids, and to iPhones of TAC 4.x); it also records X's HELLO: [`Via::Advert`] from an Android, [`Via::GattRead`] from an iPhone |
//!
//! Android without advertiser ↔ Android without advertiser never meet;
//! two background iPhones never meet.
//!
//! # Timing parameters
//!
//! | field | StopCovid 2020 | TAC 2022 | source |
//! |---|---|---|---|
//! | `android_adv_interval_s` | 0.1 | 0.1 | `ADVERTISE_MODE_LOW_LATENCY` ≈ 100 ms (§1.3) |
//! | `adv_delay_max_s` | 0.01 | 0.01 | advDelay 0–10 ms per event (Core Specification Vol 6 Part B §4.4.2.2.1) |
//! | `android_scan_window_s` / `_interval_s` | 1.024 / 4.096 | same | `SCAN_MODE_BALANCED` (§1.4) |
//! | `android_report_delay_s` | 1 | 5 | SDK default 1 s; app config 5 s in 2022 (§1.4) |
//! | `ios_fg_adv_interval_s` / `ios_bg_adv_interval_s` | 0.2 / 1.0 | same | assumption: not controllable, not documented (open question 8) |
//! | `ios_fg_scan_*` | continuous, 1 s reports | same | assumption; iOS stores at most one row per EBID per second (§3.6) |
//! | `ios_bg_scan_window_s` / `_interval_s` / report | 1 / 10 / 10 s | same | assumption: background scans are duty-cycled and duplicates coalesced |
//! | `ios_connection_interval_s` | 10 | 60 | `connectionTimeInterval` (§1.5) |
//! | `ios_payload_cache_s` | 1800 | 180 | iPhone payload cache per peripheral (§1.5) |
//! | `ios_accepts_writes` | false | true | iOS 1.x READ only, TAC 4.x READ + WRITE (§1.5) |
//! | `android_scan_cache_s` | 30 | 30 | Android pairs an iPhone's write with its scan of the same address ≤ 30 s old (§1.6) |
//! | `noadv_cycle_s` / `noadv_scan_s` | 10 / 2 | same | ≥ 8 s between scanner starts, ≥ 2 s scans (§1.7); assumption for the exchange part |
//! | `noadv_min_exchange_interval_s` | 45 | 45 | `maxDelayBetweenExchange` (§1.7) |
//! | `connection_failure_probability` | 0.05 | 0.05 | assumption (GATT 133, timeouts, §1.8) |
//! | `connection_margin_db` | 6 | 6 | assumption: a GATT exchange needs a few dB above the advert floor |
//! | `pdu_airtime_s` | 360 µs | same | ADV_IND on the 1M PHY: (1 + 4 + 2 + 6 + 29 + 3) bytes × 8 µs |
//!
//! # Simplifications (stated, not hidden)
//!
//! * Geometry and shadowing are constant within a step: use steps of about
//!   1 s while people move, longer ones (≤ 10 s) for static groups.
//! * One reception per report period and sender (the TAC batch pre-filter
//!   keeps one result per payload); a HELLO change inside a batch is ignored.
//! * The iPhone's write throttle and payload cache are per pair, not per
//!   remote EBID / peripheral identifier (those rotate every ~15 min).
//! * A catch by the scanner is the time of the exchange it triggers
//!   (connections take ≤ 1–2 s in reality).
//! * Reception times fall inside the step: a report period that began
//!   before `t0` is stamped no earlier than `t0` (bias ≤ one report delay).

use rand::Rng;
use serde::Deserialize;

use crate::calibration::{self, Gains, Os};
use crate::channel::{Antenna, Channel, LinkGeometry, RadioHardware, Shadowing};
use crate::math::{bernoulli, uniform, uniform01};

/// The BLE stack a phone runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Platform {
    /// An Android phone.
    Android {
        /// Whether it can advertise (false: TAC ≥ 2.2.4 "without advertiser" mode).
        advertiser: bool,
    },
    /// An iPhone.
    Ios,
}

impl Platform {
    /// An Android with LE advertising.
    pub const ANDROID: Self = Self::Android { advertiser: true };
    /// An Android without LE advertising.
    pub const ANDROID_NO_ADVERTISER: Self = Self::Android { advertiser: false };
    /// An iPhone.
    pub const IOS: Self = Self::Ios;

    /// The OS, for calibration lookup.
    pub fn os(self) -> Os {
        match self {
            Self::Android { .. } => Os::Android,
            Self::Ios => Os::Ios,
        }
    }
}

/// Which generation of the apps to reproduce.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
pub enum AppEra {
    /// StopCovid 1.x (June–October 2020): `"stopcovid-2020"`.
    #[default]
    #[serde(rename = "stopcovid-2020")]
    Stopcovid2020,
    /// TousAntiCovid 4.x (2022): `"tac-2022"`.
    #[serde(rename = "tac-2022")]
    Tac2022,
}

/// Timing and behaviour parameters (see the module table for sources).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkTiming {
    /// Android advertising interval (s).
    pub android_adv_interval_s: f64,
    /// Maximum random advDelay added to each advertising event (s).
    pub adv_delay_max_s: f64,
    /// iPhone advertising interval, app in foreground (s).
    pub ios_fg_adv_interval_s: f64,
    /// iPhone advertising interval, app in background (s).
    pub ios_bg_adv_interval_s: f64,
    /// Android scan window (s).
    pub android_scan_window_s: f64,
    /// Android scan interval (s).
    pub android_scan_interval_s: f64,
    /// Android batch report delay (s, > 0).
    pub android_report_delay_s: f64,
    /// iPhone foreground scan window (s).
    pub ios_fg_scan_window_s: f64,
    /// iPhone foreground scan interval (s).
    pub ios_fg_scan_interval_s: f64,
    /// Period at which a foreground iPhone records a peer at most once (s).
    pub ios_fg_report_period_s: f64,
    /// iPhone background scan window (s).
    pub ios_bg_scan_window_s: f64,
    /// iPhone background scan interval (s).
    pub ios_bg_scan_interval_s: f64,
    /// Period at which a background iPhone records a peer at most once (s).
    pub ios_bg_report_period_s: f64,
    /// An iPhone writes to a given Android at most once per this (s).
    pub ios_connection_interval_s: f64,
    /// An iPhone reuses a payload read from another iPhone for this long (s).
    pub ios_payload_cache_s: f64,
    /// Whether iPhones accept 19-byte writes (TAC 4.x).
    pub ios_accepts_writes: bool,
    /// Age limit of the Android's scan of an iPhone used for that iPhone's write (s).
    pub android_scan_cache_s: f64,
    /// Cycle of a no-advertiser Android: scan, then exchanges (s).
    pub noadv_cycle_s: f64,
    /// Scan duration at the start of each no-advertiser cycle (s).
    pub noadv_scan_s: f64,
    /// A no-advertiser Android skips a peer exchanged with less than this ago (s).
    pub noadv_min_exchange_interval_s: f64,
    /// Probability that a GATT connection fails for reasons other than signal.
    pub connection_failure_probability: f64,
    /// Margin above the sensitivity floor a GATT exchange needs (dB).
    pub connection_margin_db: f64,
    /// Air time of one advertising PDU (s), for collisions.
    pub pdu_airtime_s: f64,
}

impl LinkTiming {
    /// Parameters for an app generation.
    pub fn for_era(era: AppEra) -> Self {
        let base = Self {
            android_adv_interval_s: 0.1,
            adv_delay_max_s: 0.01,
            ios_fg_adv_interval_s: 0.2,
            ios_bg_adv_interval_s: 1.0,
            android_scan_window_s: 1.024,
            android_scan_interval_s: 4.096,
            android_report_delay_s: 1.0,
            ios_fg_scan_window_s: 1.0,
            ios_fg_scan_interval_s: 1.0,
            ios_fg_report_period_s: 1.0,
            ios_bg_scan_window_s: 1.0,
            ios_bg_scan_interval_s: 10.0,
            ios_bg_report_period_s: 10.0,
            ios_connection_interval_s: 10.0,
            ios_payload_cache_s: 1800.0,
            ios_accepts_writes: false,
            android_scan_cache_s: 30.0,
            noadv_cycle_s: 10.0,
            noadv_scan_s: 2.0,
            noadv_min_exchange_interval_s: 45.0,
            connection_failure_probability: 0.05,
            connection_margin_db: 6.0,
            pdu_airtime_s: 360e-6,
        };
        match era {
            AppEra::Stopcovid2020 => base,
            AppEra::Tac2022 => Self {
                android_report_delay_s: 5.0,
                ios_connection_interval_s: 60.0,
                ios_payload_cache_s: 180.0,
                ios_accepts_writes: true,
                ..base
            },
        }
    }

    /// Checks ranges: periods positive, windows within intervals, probabilities in [0, 1].
    pub fn validate(&self) -> Result<(), &'static str> {
        let positive = [
            self.android_adv_interval_s,
            self.ios_fg_adv_interval_s,
            self.ios_bg_adv_interval_s,
            self.android_scan_interval_s,
            self.android_report_delay_s,
            self.ios_fg_scan_interval_s,
            self.ios_fg_report_period_s,
            self.ios_bg_scan_interval_s,
            self.ios_bg_report_period_s,
            self.noadv_cycle_s,
        ];
        if !positive.iter().all(|v| v.is_finite() && *v >= 0.01) {
            return Err("intervals and periods must be at least 10 ms");
        }
        let windows = [
            (self.android_scan_window_s, self.android_scan_interval_s),
            (self.ios_fg_scan_window_s, self.ios_fg_scan_interval_s),
            (self.ios_bg_scan_window_s, self.ios_bg_scan_interval_s),
            (self.noadv_scan_s, self.noadv_cycle_s),
        ];
        if !windows
            .iter()
            .all(|(w, i)| w.is_finite() && *w >= 0.0 && w <= i)
        {
            return Err("scan windows must lie within their interval");
        }
        let others = [
            self.adv_delay_max_s,
            self.ios_connection_interval_s,
            self.ios_payload_cache_s,
            self.android_scan_cache_s,
            self.noadv_min_exchange_interval_s,
            self.connection_margin_db,
            self.pdu_airtime_s,
        ];
        if !others.iter().all(|v| v.is_finite() && *v >= 0.0) {
            return Err("durations and margins must be finite and non-negative");
        }
        if !(0.0..=1.0).contains(&self.connection_failure_probability) {
            return Err("connection failure probability must be in [0, 1]");
        }
        Ok(())
    }
}

impl Default for LinkTiming {
    fn default() -> Self {
        Self::for_era(AppEra::default())
    }
}

/// The static radio identity of one phone.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Device {
    /// BLE stack.
    pub platform: Platform,
    /// True radio figures (ground truth).
    pub hardware: RadioHardware,
    /// Gains the app found in its calibration table (byte 17 = `app_gains.tx`).
    pub app_gains: Gains,
    /// Phase of the scan windows, fraction of the scan interval in [0, 1).
    pub scan_phase: f64,
    /// Phase of the report periods, fraction of the period in [0, 1).
    pub report_phase: f64,
}

impl Device {
    /// A device with random scan and report phases.
    pub fn new<R: Rng + ?Sized>(
        platform: Platform,
        hardware: RadioHardware,
        app_gains: Gains,
        rng: &mut R,
    ) -> Self {
        Self {
            platform,
            hardware,
            app_gains,
            scan_phase: uniform01(rng),
            report_phase: uniform01(rng),
        }
    }
}

/// One side of a pair at the current step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct End<'a> {
    /// Identifier reported in [`Reception`]s (the simulator's person id).
    pub id: u32,
    /// The phone.
    pub device: &'a Device,
    /// Position, heading and placement.
    pub antenna: Antenna,
    /// iPhones only: app in the foreground (or iOS power-save mode). Ignored for Androids.
    pub foreground: bool,
}

/// How the Android obtained the RSSI for an iPhone's write.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum WriteRssiSource {
    /// Its scan of the iPhone's advert at `scanned_at` (≤ `android_scan_cache_s` old).
    CachedScan {
        /// Time of that scan (s).
        scanned_at: f64,
    },
    /// No recent scan: remote RSSI read on the GATT connection.
    RemoteRssiRead,
}

/// How a HELLO reached the receiver.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Via {
    /// Service data of an Android advert caught by a scan.
    Advert,
    /// An iPhone wrote its 18-byte payload into the receiving Android's characteristic.
    IosWrite {
        /// Where the RSSI came from.
        rssi_source: WriteRssiSource,
    },
    /// A no-advertiser Android wrote a 19-byte payload carrying a partial
    /// RSSI; the receiver finishes it with its own TX gain. `raw_rssi` is
    /// the writer's measurement of the receiver's advert.
    PartialRssiWrite {
        /// Byte 18: writer's raw RSSI − writer's RX gain.
        partial_rssi: i8,
    },
    /// The receiver read the sender's characteristic now: ask the sender for
    /// a fresh payload.
    GattRead,
    /// An iPhone reused the payload it read from this sender at `read_at`.
    CachedRead {
        /// Time of the GATT read whose payload is reused (s).
        read_at: f64,
    },
}

/// One HELLO recorded by a receiver.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Reception {
    /// Reception time (simulation seconds).
    pub t: f64,
    /// Sender's id (from [`End::id`]).
    pub sender: u32,
    /// Receiver's id.
    pub receiver: u32,
    /// Raw RSSI (dBm) associated with the record.
    pub raw_rssi: i8,
    /// Byte 17 of the sender's payload: its app TX gain.
    pub sender_tx_gain: i8,
    /// Mechanism.
    pub via: Via,
}

impl Reception {
    /// The calibrated RSSI the receiving app stores (§2.2), given the
    /// receiver's own app gains.
    pub fn calibrated_rssi(&self, receiver_app_gains: Gains) -> i32 {
        match self.via {
            Via::PartialRssiWrite { partial_rssi } => {
                calibration::finish_partial(i32::from(partial_rssi), receiver_app_gains.tx)
            }
            _ => calibration::calibrate(
                i32::from(self.raw_rssi),
                self.sender_tx_gain,
                receiver_app_gains.rx,
            ),
        }
    }
}

/// Per-direction memory of a pair.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct DirState {
    /// Receiver iPhone's last GATT read of the sender iPhone.
    ios_read_at: Option<f64>,
    /// Sender iPhone's last write into the receiver Android.
    ios_write_at: Option<f64>,
    /// Receiver Android's last scan of the sender iPhone (time, raw RSSI).
    scan_cache: Option<(f64, i8)>,
}

/// Memory of one unordered pair, kept by the simulator between steps
/// (e.g. in a map keyed by the ordered ids).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PairLink {
    shadowing: Shadowing,
    /// `dirs[0]`: lower id sends, higher id receives; `dirs[1]`: the reverse.
    dirs: [DirState; 2],
    /// Last successful exchange initiated by a no-advertiser member of the pair.
    noadv_exchange_at: Option<f64>,
}

impl PairLink {
    /// Current shadowing (dB).
    pub fn shadowing_db(&self) -> f64 {
        self.shadowing.value_db()
    }
}

/// Conditions around the pair during the step.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepContext {
    /// Other advertisers audible at the receivers, for collisions (0: ignore).
    pub audible_advertisers: u32,
}

/// What a phone transmits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AdvertKind {
    AndroidServiceData,
    IosServiceUuid,
    IosOverflow,
}

/// A receiver's scan schedule.
#[derive(Clone, Copy, Debug)]
struct Schedule {
    window: f64,
    interval: f64,
    scan_offset: f64,
    report: f64,
    report_offset: f64,
}

/// A catch: the receiver's scanner reported the sender's advert.
#[derive(Clone, Copy, Debug)]
struct Catch {
    t: f64,
    /// 0: `a` sent, 1: `b` sent.
    sender: usize,
    rssi: i8,
}

impl Catch {
    const EMPTY: Self = Self {
        t: 0.0,
        sender: 0,
        rssi: 0,
    };
}

/// Catches kept on the stack per step (enough for 15 s steps with 1 s reports).
const INLINE_CATCHES: usize = 32;

/// Channel plus timing: everything needed to step pairs in one environment.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkModel {
    /// The radio channel.
    pub channel: Channel,
    /// OS timing.
    pub timing: LinkTiming,
}

impl LinkModel {
    /// Builds a model.
    pub fn new(channel: Channel, timing: LinkTiming) -> Self {
        Self { channel, timing }
    }

    fn advert(&self, e: &End<'_>) -> Option<(AdvertKind, f64)> {
        let t = &self.timing;
        let delay = t.adv_delay_max_s / 2.0;
        match e.device.platform {
            Platform::Android { advertiser: true } => Some((
                AdvertKind::AndroidServiceData,
                t.android_adv_interval_s + delay,
            )),
            Platform::Android { advertiser: false } => None,
            Platform::Ios if e.foreground => {
                Some((AdvertKind::IosServiceUuid, t.ios_fg_adv_interval_s + delay))
            }
            Platform::Ios => Some((AdvertKind::IosOverflow, t.ios_bg_adv_interval_s + delay)),
        }
    }

    fn schedule(&self, e: &End<'_>) -> Schedule {
        let t = &self.timing;
        let d = e.device;
        let (window, interval, report) = match d.platform {
            Platform::Android { advertiser: true } => (
                t.android_scan_window_s,
                t.android_scan_interval_s,
                t.android_report_delay_s,
            ),
            Platform::Android { advertiser: false } => {
                let off = d.scan_phase * t.noadv_cycle_s;
                return Schedule {
                    window: t.noadv_scan_s,
                    interval: t.noadv_cycle_s,
                    scan_offset: off,
                    report: t.noadv_cycle_s,
                    // Reports (and exchanges) at the end of each scan.
                    report_offset: off + t.noadv_scan_s,
                };
            }
            Platform::Ios if e.foreground => (
                t.ios_fg_scan_window_s,
                t.ios_fg_scan_interval_s,
                t.ios_fg_report_period_s,
            ),
            Platform::Ios => (
                t.ios_bg_scan_window_s,
                t.ios_bg_scan_interval_s,
                t.ios_bg_report_period_s,
            ),
        };
        Schedule {
            window,
            interval,
            scan_offset: d.scan_phase * interval,
            report,
            report_offset: d.report_phase * report,
        }
    }

    /// Whether a receiver's scanner reports this kind of advert.
    fn visible(kind: AdvertKind, receiver: &End<'_>) -> bool {
        match (kind, receiver.device.platform) {
            (AdvertKind::IosOverflow, Platform::Ios) => receiver.foreground,
            _ => true,
        }
    }

    fn connection_ok<R: Rng + ?Sized>(&self, level_min: f64, rng: &mut R) -> bool {
        let p = (1.0 - self.timing.connection_failure_probability)
            * self
                .channel
                .packet_probability(level_min, self.timing.connection_margin_db);
        bernoulli(rng, p)
    }

    /// Advances one pair by `[t0, t0 + dt)` and appends the receptions, in
    /// time order, to `out`. `a` and `b` may be given in either order; the
    /// pair state must always be the one of this unordered pair.
    #[expect(
        clippy::too_many_arguments,
        reason = "a step needs the pair, both ends, the interval, context and RNG"
    )]
    pub fn step<R: Rng + ?Sized>(
        &self,
        link: &mut PairLink,
        a: &End<'_>,
        b: &End<'_>,
        t0: f64,
        dt: f64,
        ctx: &StepContext,
        rng: &mut R,
        out: &mut Vec<Reception>,
    ) {
        if dt <= 0.0 || a.id == b.id {
            return;
        }
        let ends: [&End<'_>; 2] = if a.id <= b.id { [a, b] } else { [b, a] };
        let geom = LinkGeometry::between(&self.channel.env, &ends[0].antenna, &ends[1].antenna);
        let shadow = link
            .shadowing
            .advance(&self.channel.env, t0, geom.distance_m, rng);
        // levels[s]: sender s → receiver 1 − s.
        let levels = [
            self.channel.level_dbm(
                &ends[0].device.hardware,
                &ends[1].device.hardware,
                &geom,
                shadow,
            ),
            self.channel.level_dbm(
                &ends[1].device.hardware,
                &ends[0].device.hardware,
                &geom,
                shadow,
            ),
        ];
        let collision = if ctx.audible_advertisers == 0 {
            0.0
        } else {
            1.0 - (-2.0 * f64::from(ctx.audible_advertisers) * self.timing.pdu_airtime_s
                / self.timing.android_adv_interval_s)
                .exp()
        };

        // Catches of this step: inline (no allocation) unless a long step
        // with short report periods overflows the array.
        let mut inline = [Catch::EMPTY; INLINE_CATCHES];
        let mut n_inline = 0usize;
        let mut spill: Vec<Catch> = Vec::new();
        for s in 0..2 {
            let (sender, receiver) = (ends[s], ends[1 - s]);
            let Some((kind, adv_interval)) = self.advert(sender) else {
                continue;
            };
            if !Self::visible(kind, receiver) {
                continue;
            }
            let p_packet = self.channel.packet_probability(levels[s], 0.0) * (1.0 - collision);
            if p_packet <= 1e-12 {
                continue;
            }
            let sched = self.schedule(receiver);
            let mut k = ((t0 - sched.report_offset) / sched.report).ceil();
            loop {
                let end = sched.report_offset + k * sched.report;
                if end >= t0 + dt {
                    break;
                }
                k += 1.0;
                if end < t0 {
                    continue;
                }
                let (overlap, last) = window_overlap(end - sched.report, end, &sched);
                let Some((q0, q1)) = last else { continue };
                let n = (overlap / adv_interval + uniform01(rng)).floor();
                if n < 1.0 {
                    continue;
                }
                let p_caught = 1.0 - (1.0 - p_packet).powf(n);
                if bernoulli(rng, p_caught) {
                    // A batch straddling the step start is stamped no earlier
                    // than t0: the pair may not have been together before.
                    let t = uniform(rng, q0, q1).max(t0);
                    let rssi = self.channel.sample_received_rssi(levels[s], rng);
                    let c = Catch { t, sender: s, rssi };
                    if spill.is_empty() && n_inline < INLINE_CATCHES {
                        inline[n_inline] = c;
                        n_inline += 1;
                    } else {
                        if spill.is_empty() {
                            spill.extend_from_slice(&inline[..n_inline]);
                        }
                        spill.push(c);
                    }
                }
            }
        }
        let catches: &mut [Catch] = if spill.is_empty() {
            &mut inline[..n_inline]
        } else {
            &mut spill
        };
        catches.sort_by(|x, y| x.t.total_cmp(&y.t).then(x.sender.cmp(&y.sender)));

        let first = out.len();
        let level_min = levels[0].min(levels[1]);
        for &c in catches.iter() {
            self.handle_catch(link, ends, levels, level_min, c, rng, out);
        }
        if out.len() - first > 1 {
            out[first..].sort_by(|x, y| x.t.total_cmp(&y.t));
        }
    }

    #[expect(clippy::too_many_arguments, reason = "internal helper of step")]
    fn handle_catch<R: Rng + ?Sized>(
        &self,
        link: &mut PairLink,
        ends: [&End<'_>; 2],
        levels: [f64; 2],
        level_min: f64,
        c: Catch,
        rng: &mut R,
        out: &mut Vec<Reception>,
    ) {
        let s = c.sender;
        let r = 1 - s;
        let (sender, receiver) = (ends[s], ends[r]);
        let rec = |t: f64, from: &End<'_>, to: &End<'_>, raw_rssi: i8, via: Via| Reception {
            t,
            sender: from.id,
            receiver: to.id,
            raw_rssi,
            sender_tx_gain: from.device.app_gains.tx,
            via,
        };
        // The receiver, a non-advertising Android, writes its payload into
        // the sender with the partial RSSI it measured.
        let partial_write = || {
            let partial = calibration::saturate_i8(calibration::partial_rssi(
                i32::from(c.rssi),
                receiver.device.app_gains.rx,
            ));
            let via = Via::PartialRssiWrite {
                partial_rssi: partial,
            };
            rec(c.t, receiver, sender, c.rssi, via)
        };
        match (sender.device.platform, receiver.device.platform) {
            (Platform::Android { advertiser: true }, Platform::Android { advertiser }) => {
                out.push(rec(c.t, sender, receiver, c.rssi, Via::Advert));
                if !advertiser
                    && self.noadv_eligible(link, c.t)
                    && self.connection_ok(level_min, rng)
                {
                    link.noadv_exchange_at = Some(c.t);
                    out.push(partial_write());
                }
            }
            (Platform::Android { advertiser: true }, Platform::Ios) => {
                out.push(rec(c.t, sender, receiver, c.rssi, Via::Advert));
                // The iPhone (receiver here) writes its payload into the Android.
                let dir = &mut link.dirs[r];
                let due = dir
                    .ios_write_at
                    .is_none_or(|w| c.t - w >= self.timing.ios_connection_interval_s);
                if due && self.connection_ok(level_min, rng) {
                    let dir = &mut link.dirs[r];
                    dir.ios_write_at = Some(c.t);
                    let (raw, source) = match dir.scan_cache {
                        Some((at, rssi)) if c.t - at <= self.timing.android_scan_cache_s => {
                            (rssi, WriteRssiSource::CachedScan { scanned_at: at })
                        }
                        _ => (
                            self.channel.sample_received_rssi(levels[r], rng),
                            WriteRssiSource::RemoteRssiRead,
                        ),
                    };
                    out.push(rec(
                        c.t,
                        receiver,
                        sender,
                        raw,
                        Via::IosWrite {
                            rssi_source: source,
                        },
                    ));
                }
            }
            (Platform::Ios, Platform::Android { advertiser }) => {
                link.dirs[s].scan_cache = Some((c.t, c.rssi));
                if !advertiser
                    && self.noadv_eligible(link, c.t)
                    && self.connection_ok(level_min, rng)
                {
                    link.noadv_exchange_at = Some(c.t);
                    // Read the iPhone's payload with the remote RSSI.
                    let remote = self.channel.sample_received_rssi(levels[s], rng);
                    out.push(rec(c.t, sender, receiver, remote, Via::GattRead));
                    if self.timing.ios_accepts_writes {
                        out.push(partial_write());
                    }
                }
            }
            (Platform::Ios, Platform::Ios) => {
                let dir = &mut link.dirs[s];
                match dir.ios_read_at {
                    Some(at) if c.t - at < self.timing.ios_payload_cache_s => {
                        out.push(rec(
                            c.t,
                            sender,
                            receiver,
                            c.rssi,
                            Via::CachedRead { read_at: at },
                        ));
                    }
                    _ => {
                        if self.connection_ok(level_min, rng) {
                            link.dirs[s].ios_read_at = Some(c.t);
                            out.push(rec(c.t, sender, receiver, c.rssi, Via::GattRead));
                        }
                    }
                }
            }
            // A phone without advertiser is never caught.
            (Platform::Android { advertiser: false }, _) => {}
        }
    }

    fn noadv_eligible(&self, link: &PairLink, t: f64) -> bool {
        link.noadv_exchange_at
            .is_none_or(|at| t - at >= self.timing.noadv_min_exchange_interval_s)
    }

    /// Expected number of advert catches per minute for a receiver scanning a
    /// sender whose every packet arrives (`p_packet = 1`): useful to check
    /// the timing model. Computed by averaging over one hour of schedule.
    pub fn catches_per_minute_ideal(&self, sender: &End<'_>, receiver: &End<'_>) -> f64 {
        let Some((kind, adv)) = self.advert(sender) else {
            return 0.0;
        };
        if !Self::visible(kind, receiver) {
            return 0.0;
        }
        let sched = self.schedule(receiver);
        let horizon = 3600.0;
        let mut k = (-sched.report_offset / sched.report).ceil();
        let mut expected = 0.0;
        loop {
            let end = sched.report_offset + k * sched.report;
            if end >= horizon {
                break;
            }
            k += 1.0;
            if end < 0.0 {
                continue;
            }
            let (overlap, _) = window_overlap(end - sched.report, end, &sched);
            if overlap / adv >= 1.0 {
                expected += 1.0;
            } else {
                expected += overlap / adv;
            }
        }
        expected / 60.0
    }
}

/// Total overlap of `[p0, p1)` with the scan windows
/// `[off + k·I, off + k·I + W)`, and the last overlapping piece.
fn window_overlap(p0: f64, p1: f64, s: &Schedule) -> (f64, Option<(f64, f64)>) {
    if s.window <= 0.0 || p1 <= p0 {
        return (0.0, None);
    }
    if s.window >= s.interval {
        return (p1 - p0, Some((p0, p1)));
    }
    let mut k = ((p0 - s.scan_offset - s.window) / s.interval).floor();
    let mut total = 0.0;
    let mut last = None;
    loop {
        let w0 = s.scan_offset + k * s.interval;
        if w0 >= p1 {
            break;
        }
        let lo = w0.max(p0);
        let hi = (w0 + s.window).min(p1);
        if hi > lo {
            total += hi - lo;
            last = Some((lo, hi));
        }
        k += 1.0;
    }
    (total, last)
}

/// When the payload on air at `t` was built (§1.3): Android restarts
/// advertising every `refresh_s` (30 s) and at each epoch start, so the HELLO
/// time field lags by up to `refresh_s`.
///
/// `epoch_start` is the start of the epoch containing `t`, `started_at` when
/// the proximity service started; all in the same time base.
pub fn advert_payload_built_at(t: f64, epoch_start: f64, started_at: f64, refresh_s: f64) -> f64 {
    let base = epoch_start.max(started_at);
    if t < base || refresh_s <= 0.0 {
        return base.min(t);
    }
    base + ((t - base) / refresh_s).floor() * refresh_s
}

/// Android's payload refresh period (`HELLO_REFRESH_MAX_DELAY_MS`, 30 s).
pub const HELLO_REFRESH_S: f64 = 30.0;

#[cfg(test)]
mod tests;
