//! Each reception of a step handed to the SDKs: the sender's builds the payload that was on air, the receiver's records it.

use rand::RngExt as _;
use rayon::prelude::*;
use robert_client::ReceiveError;
use robert_core::ebid::Ebid;
use robert_core::time::{EPOCH_DURATION_SECS, NtpSeconds};
use robert_radio::channel::EnvironmentKind;
use robert_radio::link::{HELLO_REFRESH_S, Reception, Via, advert_payload_built_at};
use robert_radio::scenario::World;

use crate::options::Delivery;
use crate::phones::SimPhone;
use crate::result::RssiSample;

use super::Sim;

impl Sim<'_> {
    /// Hands every reception of a step to the receiving SDK: payloads are
    /// built (sequentially: senders' caches), then receivers record them,
    /// in parallel over receivers when the step is large.
    pub(super) fn deliver(&mut self, buf: &[Reception], places: &[u32]) {
        let world = self.world;
        let mut items = std::mem::take(&mut self.items);
        items.clear();
        for (r, &place) in buf.iter().zip(places) {
            self.counts.radio_receptions += 1;
            match r.via {
                Via::Advert => self.counts.via_advert += 1,
                Via::IosWrite { .. } => self.counts.via_ios_write += 1,
                Via::PartialRssiWrite { .. } => self.counts.via_partial_rssi_write += 1,
                Via::GattRead => self.counts.via_gatt_read += 1,
                Via::CachedRead { .. } => self.counts.via_cached_read += 1,
            }
            let (s, rcv) = (r.sender as usize, r.receiver as usize);
            if s == rcv || s >= self.phones.len() || rcv >= self.phones.len() {
                continue;
            }
            let env = self.place_env.get(place as usize).copied().unwrap_or(0);
            let receiver_gains = world
                .population
                .person(r.receiver)
                .map(|p| p.device.app_gains);
            self.sample_rssi(r, env, receiver_gains);
            if self.is_positive[rcv] {
                *self
                    .heard_by_positive
                    .entry((r.receiver, r.sender, place))
                    .or_default() += 1;
                if self.opts.record {
                    let key = (r.receiver, r.sender, self.time.ntp(r.t).get());
                    if !self.oracle.contains_key(&key)
                        && let Some(f) = oracle_facts(world, r, place)
                    {
                        self.oracle.insert(key, f);
                    }
                }
            } else if self.opts.delivery == Delivery::PositivesOnly {
                self.counts.hellos_not_stored += 1;
                continue;
            }
            // The payload the sender's SDK built for this exchange.
            let (built_at, advert) = match r.via {
                Via::Advert => {
                    let epoch_start = (r.t / 900.0).floor() * 900.0;
                    let started = self.registered_at[s].unwrap_or(0.0).min(r.t);
                    (
                        advert_payload_built_at(r.t, epoch_start, started, HELLO_REFRESH_S),
                        true,
                    )
                }
                Via::CachedRead { read_at } => (read_at, false),
                _ => (r.t, false),
            };
            let built_ntp = self.time.ntp(built_at);
            // An iPhone reusing a payload it read earlier gets the very bytes
            // it read (the sender may have purged that EBID since).
            let cached = match r.via {
                Via::CachedRead { .. } => self.gatt_reads.get(&(r.sender, r.receiver)).copied(),
                _ => None,
            };
            let payload = match cached {
                Some(p) => p,
                None => {
                    let sender = &mut self.phones[s];
                    let before = if advert {
                        sender.advert.at
                    } else {
                        sender.fresh.at
                    };
                    let Some(payload) = sender.payload_at(built_ntp, advert) else {
                        self.counts.hellos_unavailable += 1;
                        continue;
                    };
                    if before != built_ntp.get() {
                        self.counts.hellos_built += 1;
                        self.ebid_owner.insert(
                            payload_ebid(&payload),
                            (r.sender, built_ntp.get() / EPOCH_DURATION_SECS),
                        );
                    }
                    payload
                }
            };
            if matches!(r.via, Via::GattRead) {
                self.gatt_reads.insert((r.sender, r.receiver), payload);
            }
            let tx = match (r.via, receiver_gains) {
                // The 19-byte write carries a partial RSSI that the receiver
                // finishes with its own TX gain; the SDK takes (raw, sender
                // TX gain), so pass the TX gain that yields the same value.
                (Via::PartialRssiWrite { partial_rssi }, Some(g)) => {
                    let target =
                        robert_radio::calibration::finish_partial(i32::from(partial_rssi), g.tx);
                    robert_radio::calibration::saturate_i8(
                        i32::from(r.raw_rssi) - i32::from(g.rx) - target,
                    )
                }
                _ => r.sender_tx_gain,
            };
            let mut hello = [0u8; 16];
            hello.copy_from_slice(&payload[..16]);
            items.push(Item {
                receiver: r.receiver,
                at: self.time.ntp(r.t).get(),
                hello,
                raw: i16::from(r.raw_rssi),
                tx,
            });
        }
        let tally = if items.len() >= PARALLEL_MIN_ITEMS {
            // Counting sort by receiver (stable: each sender's HELLOs stay in
            // time order), then one task per receiving phone.
            let n = self.phones.len();
            let mut starts = std::mem::take(&mut self.starts);
            starts.clear();
            starts.resize(n + 1, 0);
            for it in &items {
                starts[it.receiver as usize + 1] += 1;
            }
            for i in 0..n {
                starts[i + 1] += starts[i];
            }
            let mut sorted = std::mem::take(&mut self.sorted);
            sorted.clear();
            sorted.resize(items.len(), Item::default());
            let mut next = starts.clone();
            for it in &items {
                let slot = &mut next[it.receiver as usize];
                sorted[*slot] = *it;
                *slot += 1;
            }
            let tally = self
                .phones
                .par_iter_mut()
                .enumerate()
                .filter(|(i, _)| starts[*i] < starts[*i + 1])
                .map(|(i, p)| receive_all(p, &sorted[starts[i]..starts[i + 1]]))
                .reduce(Tally::default, Tally::add);
            self.starts = starts;
            self.sorted = sorted;
            tally
        } else {
            let mut t = Tally::default();
            for it in &items {
                t = t.add(receive_all(
                    &mut self.phones[it.receiver as usize],
                    std::slice::from_ref(it),
                ));
            }
            t
        };
        self.counts.hellos_recorded += tally.recorded;
        self.counts.hellos_duplicate += tally.duplicate;
        self.counts.hellos_stale += tally.stale;
        self.counts.hellos_other_rejected += tally.other;
        self.items = items;
    }

    pub(super) fn sample_rssi(
        &mut self,
        r: &Reception,
        env: usize,
        gains: Option<robert_radio::calibration::Gains>,
    ) {
        let cap = self.opts.rssi_samples_per_environment;
        if cap == 0 {
            return;
        }
        let Some((seen, samples)) = self.reservoirs.get_mut(env) else {
            return;
        };
        *seen += 1;
        let slot = if samples.len() < cap {
            None
        } else {
            let j = self.sample_rng.random_range(0..*seen);
            match usize::try_from(j) {
                Ok(j) if j < cap => Some(j),
                _ => return,
            }
        };
        let pose = |id: u32| {
            self.world
                .population
                .person(id)
                .and_then(|p| p.trajectory.pose_at(r.t))
        };
        let (Some(a), Some(b), Some(g)) = (pose(r.sender), pose(r.receiver), gains) else {
            return;
        };
        let sample = RssiSample {
            environment: EnvironmentKind::ALL
                .get(env)
                .map_or("outdoor", |k| k.name()),
            distance_m: a.position.distance(b.position) as f32,
            rssi_raw: r.raw_rssi,
            rssi_calibrated: i16::try_from(r.calibrated_rssi(g)).unwrap_or(i16::MIN),
            via: via_name(&r.via),
        };
        match slot {
            None => samples.push(sample),
            Some(j) => samples[j] = sample,
        }
    }
}

fn via_name(via: &Via) -> &'static str {
    match via {
        Via::Advert => "advert",
        Via::IosWrite { .. } => "ios-write",
        Via::PartialRssiWrite { .. } => "partial-rssi-write",
        Via::GattRead => "gatt-read",
        Via::CachedRead { .. } => "cached-read",
    }
}

/// Below this many HELLOs in a step, receivers are served sequentially: on
/// the 2-core reference machine the parallel path only pays off for large
/// steps (the demo town, with up to ~3,000 HELLOs per step, runs as fast
/// sequentially).
const PARALLEL_MIN_ITEMS: usize = 8192;

/// A HELLO to hand to a receiving SDK.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Item {
    receiver: u32,
    /// Reception second (NTP).
    at: u64,
    hello: [u8; 16],
    raw: i16,
    tx: i8,
}

/// Outcomes of `receive_hello` calls.
#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    recorded: u64,
    duplicate: u64,
    stale: u64,
    other: u64,
}

impl Tally {
    fn add(self, o: Self) -> Self {
        Self {
            recorded: self.recorded + o.recorded,
            duplicate: self.duplicate + o.duplicate,
            stale: self.stale + o.stale,
            other: self.other + o.other,
        }
    }
}

/// The true plan distance (cm) and noiseless model level (tenths of dB)
/// of a reception in `place` (recording only; see
/// [`crate::recording::GroupRecord::distance_cm`]).
fn oracle_facts(world: &World, r: &Reception, place: u32) -> Option<crate::recording::OracleFacts> {
    // A reception reported after one of the two left (end of a step,
    // a batched report): the last geometry before it.
    let pose = |id: u32| {
        let p = world.population.person(id)?;
        [0.0, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0]
            .into_iter()
            .find_map(|back| p.trajectory.pose_at(r.t - back))
    };
    let (a, b) = (pose(r.sender)?, pose(r.receiver)?);
    let env = world.population.places.get(place as usize)?.environment;
    let d = a.position.distance(b.position);
    let level =
        world.anchor_db - (env.path_loss_db(d) - robert_radio::channel::FREE_SPACE_LOSS_1M_DB);
    Some((
        (d * 100.0).round().clamp(0.0, f64::from(u16::MAX - 1)) as u16,
        (level * 10.0)
            .round()
            .clamp(f64::from(i16::MIN + 1), f64::from(i16::MAX)) as i16,
    ))
}

/// One phone records its HELLOs of the step, in order.
fn receive_all(phone: &mut SimPhone, items: &[Item]) -> Tally {
    let mut t = Tally::default();
    for it in items {
        match phone
            .at(NtpSeconds(it.at))
            .receive_hello(&it.hello, it.raw, it.tx)
        {
            Ok(()) => t.recorded += 1,
            Err(ReceiveError::Duplicate) => t.duplicate += 1,
            Err(ReceiveError::StaleTime) => t.stale += 1,
            Err(_) => t.other += 1,
        }
    }
    t
}

fn payload_ebid(payload: &[u8; 18]) -> u64 {
    let mut e = [0u8; 8];
    e.copy_from_slice(&payload[1..9]);
    u64::from_be_bytes(e)
}

pub(super) fn ebid_key(e: &Ebid) -> u64 {
    u64::from_be_bytes(e.0)
}
