//! The built-in captcha provider: distorted PNG text challenges and spoken
//! digit challenges, with one-time, expiring answers, kept in memory.
//!
//! * An image answer is `length` characters of [`font::ALPHABET`] (25
//!   symbols, no look-alikes); an audio answer is `length` digits `0`–`9`,
//!   read in the challenge's locale ([`audio`]). Both go through the same
//!   check: trimmed, compared case-insensitively and in constant time.
//! * A challenge is consumed by its first check, right or wrong, so an
//!   answer cannot be guessed by repeated tries.
//! * Challenges expire after `ttl`; at most `max_outstanding` exist at once
//!   (503 beyond), and at most `max_outstanding_per_client` of one client
//!   ([`ClientKey`]: an IPv4 address or an IPv6 /64), 429 beyond. The
//!   per-client quota is below the global cap, so one client filling its
//!   quota leaves captchas for everyone else (attacks-and-faults.md D1).
//! * Media are rendered from a random seed kept with the challenge, so every
//!   fetch returns the same bytes. Audio (about 100 kB) is rendered at each
//!   fetch; PNGs (about 15 kB) are kept in a cache of at most
//!   `image_cache_entries`, oldest out first: memory does not grow with the
//!   number of outstanding challenges.
//! * Fetching the image of an audio challenge, or the reverse, is
//!   [`CaptchaError::WrongKind`] and does not consume the challenge.
//! * Expired challenges are swept at each creation, oldest first (amortized
//!   constant time under the lock).
//!
//! State is per process (`captcha.state = memory`, the default on SQLite):
//! several server nodes on one database use [`super::shared::SharedCaptcha`]
//! (`captcha.state = database`), the same challenges kept in the database.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use rand::rngs::StdRng;
use rand::{Rng as _, RngExt as _, SeedableRng as _};
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use super::audio::{self, AudioLocale};
use super::{CaptchaError, CaptchaKind, font};
use crate::client::ClientKey;

/// Image width in pixels.
pub const WIDTH: u32 = 220;
/// Image height in pixels.
pub const HEIGHT: u32 = 80;

/// What a challenge is shown as; both are rendered from `seed`.
enum Form {
    /// A PNG.
    Image { seed: [u8; 32] },
    /// A WAV.
    Audio { locale: AudioLocale, seed: [u8; 32] },
}

struct Challenge {
    answer: Zeroizing<Vec<u8>>,
    expires_unix: i64,
    form: Form,
    client: ClientKey,
}

impl Challenge {
    fn kind(&self) -> CaptchaKind {
        match self.form {
            Form::Image { .. } => CaptchaKind::Image,
            Form::Audio { .. } => CaptchaKind::Audio,
        }
    }
}

/// The challenges and their indexes, under one lock.
#[derive(Default)]
struct Table {
    challenges: HashMap<String, Challenge>,
    /// Expiry times of each client's outstanding challenges.
    per_client: HashMap<ClientKey, Vec<i64>>,
    /// Challenges in creation order (= expiry order, the TTL being fixed),
    /// for the sweep; ids already consumed are skipped.
    by_age: VecDeque<(i64, String)>,
}

impl Table {
    /// Removes a challenge and its per-client slot.
    fn remove(&mut self, id: &str) -> Option<Challenge> {
        let c = self.challenges.remove(id)?;
        if let Some(slots) = self.per_client.get_mut(&c.client) {
            if let Some(i) = slots.iter().position(|e| *e == c.expires_unix) {
                slots.swap_remove(i);
            }
            if slots.is_empty() {
                self.per_client.remove(&c.client);
            }
        }
        Some(c)
    }

    /// Drops the expired challenges, oldest first, and compacts the age
    /// queue when consumed ids make up most of it.
    fn sweep(&mut self, now_unix: i64) -> Vec<String> {
        let mut gone = Vec::new();
        while let Some((expires, _)) = self.by_age.front() {
            if *expires > now_unix {
                break;
            }
            if let Some((_, id)) = self.by_age.pop_front()
                && self.remove(&id).is_some()
            {
                gone.push(id);
            }
        }
        if self.by_age.len() > 2 * self.challenges.len() + 1024 {
            let live = &self.challenges;
            self.by_age.retain(|(_, id)| live.contains_key(id));
        }
        gone
    }
}

/// A bounded cache of rendered PNGs, oldest out first.
#[derive(Default)]
pub(super) struct ImageCache {
    pngs: HashMap<String, Arc<Vec<u8>>>,
    order: VecDeque<String>,
}

impl ImageCache {
    pub(super) fn get(&self, id: &str) -> Option<Arc<Vec<u8>>> {
        self.pngs.get(id).cloned()
    }

    pub(super) fn insert(&mut self, id: String, png: Arc<Vec<u8>>, capacity: usize) {
        if capacity == 0 || self.pngs.contains_key(&id) {
            return;
        }
        while self.pngs.len() >= capacity {
            match self.order.pop_front() {
                Some(old) => {
                    self.pngs.remove(&old);
                }
                None => break,
            }
        }
        self.order.push_back(id.clone());
        self.pngs.insert(id, png);
        if self.order.len() > 2 * capacity {
            let pngs = &self.pngs;
            self.order.retain(|id| pngs.contains_key(id));
        }
    }

    pub(super) fn remove(&mut self, id: &str) {
        self.pngs.remove(id);
    }
}

/// The built-in provider's state.
pub struct BuiltinCaptcha {
    table: Mutex<Table>,
    images: Mutex<ImageCache>,
    ttl_secs: i64,
    max_outstanding: usize,
    max_per_client: usize,
    image_cache_entries: usize,
    length: usize,
}

impl std::fmt::Debug for BuiltinCaptcha {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuiltinCaptcha")
            .field("ttl_secs", &self.ttl_secs)
            .field("max_outstanding", &self.max_outstanding)
            .field("max_per_client", &self.max_per_client)
            .finish_non_exhaustive()
    }
}

/// The limits of a [`BuiltinCaptcha`].
#[derive(Clone, Copy, Debug)]
pub struct BuiltinLimits {
    /// Seconds a challenge stays valid.
    pub ttl_secs: u64,
    /// Outstanding challenges, all clients together.
    pub max_outstanding: usize,
    /// Outstanding challenges of one client.
    pub max_outstanding_per_client: usize,
    /// Rendered PNGs kept in memory.
    pub image_cache_entries: usize,
    /// Characters (or digits) per answer.
    pub length: usize,
}

impl BuiltinCaptcha {
    /// A provider with the given settings.
    pub fn new(limits: BuiltinLimits) -> Self {
        Self {
            table: Mutex::new(Table::default()),
            images: Mutex::new(ImageCache::default()),
            ttl_secs: i64::try_from(limits.ttl_secs).unwrap_or(i64::MAX / 4),
            max_outstanding: limits.max_outstanding,
            max_per_client: limits.max_outstanding_per_client,
            image_cache_entries: limits.image_cache_entries,
            length: limits.length,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn images(&self) -> std::sync::MutexGuard<'_, ImageCache> {
        self.images
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Creates a challenge of `kind` for `client` and returns its id.
    /// `locale` (a request's `locale`, see [`AudioLocale::from_tag`]) is the
    /// language of an audio challenge; images ignore it.
    ///
    /// Errors: [`CaptchaError::ClientQuota`] when `client` already holds its
    /// quota, [`CaptchaError::Busy`] when the global cap is reached.
    pub fn create(
        &self,
        kind: CaptchaKind,
        locale: &str,
        client: ClientKey,
        now_unix: i64,
    ) -> Result<String, CaptchaError> {
        let mut rng = rand::rng();
        let symbols: &[u8] = match kind {
            CaptchaKind::Image => font::ALPHABET,
            CaptchaKind::Audio => b"0123456789",
        };
        let mut answer = Zeroizing::new(Vec::with_capacity(self.length));
        for _ in 0..self.length {
            answer.push(symbols[rng.random_range(0..symbols.len())]);
        }
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let form = match kind {
            CaptchaKind::Image => Form::Image { seed },
            CaptchaKind::Audio => Form::Audio {
                locale: AudioLocale::from_tag(locale),
                seed,
            },
        };
        let mut id_bytes = [0u8; 16];
        rng.fill_bytes(&mut id_bytes);
        let id = hex::encode(id_bytes);
        let expires_unix = now_unix.saturating_add(self.ttl_secs);
        let gone = {
            let mut t = self.lock();
            let gone = t.sweep(now_unix);
            if let Some(slots) = t.per_client.get_mut(&client) {
                // Expiries of this client left behind by a clock moved back.
                slots.retain(|e| *e > now_unix);
                if slots.len() >= self.max_per_client {
                    let first = slots.iter().copied().min().unwrap_or(expires_unix);
                    let wait = u64::try_from(first - now_unix).unwrap_or(1).max(1);
                    return Err(CaptchaError::ClientQuota {
                        retry_after_secs: wait,
                    });
                }
            }
            if t.challenges.len() >= self.max_outstanding {
                return Err(CaptchaError::Busy);
            }
            t.per_client.entry(client).or_default().push(expires_unix);
            t.by_age.push_back((expires_unix, id.clone()));
            t.challenges.insert(
                id.clone(),
                Challenge {
                    answer,
                    expires_unix,
                    form,
                    client,
                },
            );
            gone
        };
        if !gone.is_empty() {
            let mut images = self.images();
            for id in &gone {
                images.remove(id);
            }
        }
        Ok(id)
    }

    /// The PNG of an image challenge (the same bytes at every fetch).
    pub fn image(&self, id: &str, now_unix: i64) -> Result<Arc<Vec<u8>>, CaptchaError> {
        let (answer, seed) = {
            let t = self.lock();
            let c = live(&t.challenges, id, now_unix)?;
            match c.form {
                Form::Image { seed } => (c.answer.clone(), seed),
                Form::Audio { .. } => {
                    return Err(CaptchaError::WrongKind {
                        challenge: c.kind(),
                    });
                }
            }
        };
        if let Some(png) = self.images().pngs.get(id) {
            return Ok(png.clone());
        }
        // Render outside the locks.
        let png = Arc::new(render_png_with(&answer, &mut StdRng::from_seed(seed))?);
        self.images()
            .insert(id.to_owned(), png.clone(), self.image_cache_entries);
        Ok(png)
    }

    /// The WAV of an audio challenge (the same bytes at every fetch).
    pub fn audio(&self, id: &str, now_unix: i64) -> Result<Vec<u8>, CaptchaError> {
        let (answer, locale, seed) = {
            let t = self.lock();
            let c = live(&t.challenges, id, now_unix)?;
            match c.form {
                Form::Audio { locale, seed } => (c.answer.clone(), locale, seed),
                Form::Image { .. } => {
                    return Err(CaptchaError::WrongKind {
                        challenge: c.kind(),
                    });
                }
            }
        };
        // Render outside the lock.
        Ok(audio::render_wav(
            &answer,
            locale,
            &mut StdRng::from_seed(seed),
        )?)
    }

    /// Checks an answer and consumes the challenge.
    pub fn check(&self, id: &str, answer: &str, now_unix: i64) -> bool {
        let Some(c) = self.lock().remove(id) else {
            return false;
        };
        self.images().remove(id);
        if c.expires_unix <= now_unix {
            return false;
        }
        let given = Zeroizing::new(answer.trim().to_ascii_uppercase().into_bytes());
        given.len() == c.answer.len() && bool::from(given.ct_eq(&c.answer))
    }

    /// Number of outstanding challenges (for metrics).
    pub fn outstanding(&self) -> usize {
        self.lock().challenges.len()
    }

    /// Number of PNGs held in memory.
    pub fn cached_images(&self) -> usize {
        self.images().pngs.len()
    }

    /// Test hook: the answer of a challenge, without consuming it.
    #[cfg(any(test, feature = "testing"))]
    #[doc(hidden)]
    pub fn peek_answer(&self, id: &str) -> Option<String> {
        self.lock()
            .challenges
            .get(id)
            .map(|c| String::from_utf8_lossy(&c.answer).into_owned())
    }
}

/// The unexpired challenge `id`.
fn live<'m>(
    map: &'m HashMap<String, Challenge>,
    id: &str,
    now_unix: i64,
) -> Result<&'m Challenge, CaptchaError> {
    map.get(id)
        .filter(|c| c.expires_unix > now_unix)
        .ok_or(CaptchaError::NotFound)
}

/// Renders `text` as a distorted grayscale PNG, with fresh randomness.
pub fn render_png(text: &[u8]) -> Result<Vec<u8>, CaptchaError> {
    let mut seed = [0u8; 32];
    rand::rng().fill_bytes(&mut seed);
    render_png_with(text, &mut StdRng::from_seed(seed))
}

/// Renders `text` as a distorted grayscale PNG, its distortions drawn from
/// `rng` (the same seed gives the same bytes).
pub(super) fn render_png_with(text: &[u8], rng: &mut StdRng) -> Result<Vec<u8>, CaptchaError> {
    let (w, h) = (WIDTH as usize, HEIGHT as usize);
    // Light, noisy background.
    let mut px: Vec<u8> = (0..w * h).map(|_| rng.random_range(200..=255u8)).collect();
    let dark = |px: &mut Vec<u8>, x: i64, y: i64, v: u8| {
        if (0..w as i64).contains(&x) && (0..h as i64).contains(&y) {
            // In range by the check above.
            let i = y as usize * w + x as usize;
            px[i] = px[i].min(v);
        }
    };
    let n = text.len().max(1);
    let cell = (w - 20) / n;
    let scale = 5i64.min(i64::try_from(cell).unwrap_or(5) / 6).max(2);
    for (i, &c) in text.iter().enumerate() {
        let g = font::glyph(c);
        let x0 = 10 + i64::try_from(i * cell).unwrap_or(0) + rng.random_range(-3..=3i64);
        let y0 = (i64::try_from(h).unwrap_or(80) - 7 * scale) / 2 + rng.random_range(-8..=8i64);
        // Shear each glyph a little.
        let shear: i64 = rng.random_range(-2..=2);
        let ink: u8 = rng.random_range(0..90);
        for (row, bits) in g.iter().enumerate() {
            let row = i64::try_from(row).unwrap_or(0);
            for col in 0..5i64 {
                if bits >> (4 - col) & 1 == 0 {
                    continue;
                }
                for dy in 0..scale {
                    for dx in 0..scale {
                        let y = y0 + row * scale + dy;
                        let x = x0
                            + col * scale
                            + dx
                            + shear * (7 * scale - row * scale) / (7 * scale / 2);
                        if rng.random_range(0..10u8) < 9 {
                            dark(&mut px, x, y, ink);
                        }
                    }
                }
            }
        }
    }
    // Strike-through curves and speckles.
    for _ in 0..4 {
        let mut y = rng.random_range(10..(h as i64 - 10)) * 256;
        let slope: i64 = rng.random_range(-96..=96);
        let v: u8 = rng.random_range(40..140);
        for x in 0..w as i64 {
            y += slope + rng.random_range(-64..=64);
            dark(&mut px, x, y / 256, v);
            dark(&mut px, x, y / 256 + 1, v);
        }
    }
    for _ in 0..(w * h / 40) {
        let x = rng.random_range(0..w as i64);
        let y = rng.random_range(0..h as i64);
        dark(&mut px, x, y, rng.random_range(0..160));
    }
    let mut out = Vec::with_capacity(w * h / 2);
    {
        let mut enc = png::Encoder::new(&mut out, WIDTH, HEIGHT);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().map_err(|_| CaptchaError::Render)?;
        writer
            .write_image_data(&px)
            .map_err(|_| CaptchaError::Render)?;
        writer.finish().map_err(|_| CaptchaError::Render)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: ClientKey = ClientKey::V4([192, 0, 2, 1]);

    fn provider(ttl_secs: u64, max_outstanding: usize, length: usize) -> BuiltinCaptcha {
        BuiltinCaptcha::new(BuiltinLimits {
            ttl_secs,
            max_outstanding,
            max_outstanding_per_client: usize::MAX,
            image_cache_entries: 100,
            length,
        })
    }

    #[test]
    fn one_time_expiring_answers() {
        let c = provider(60, 10, 6);
        let id = c.create(CaptchaKind::Image, "fr", ME, 1000).unwrap();
        assert_eq!(id.len(), 32);
        let answer = c.peek_answer(&id).unwrap();
        assert_eq!(answer.len(), 6);
        assert!(answer.bytes().all(|b| font::ALPHABET.contains(&b)));
        let png = c.image(&id, 1001).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert!(
            Arc::ptr_eq(&png, &c.image(&id, 1002).unwrap()),
            "rendered once"
        );
        assert!(
            c.check(&id, &answer.to_lowercase(), 1003),
            "case-insensitive"
        );
        assert!(!c.check(&id, &answer, 1004), "one-time");
        assert!(matches!(c.image(&id, 1004), Err(CaptchaError::NotFound)));

        let id = c.create(CaptchaKind::Image, "fr", ME, 1000).unwrap();
        let wrong = c.peek_answer(&id).unwrap().replace(|_| true, "Z");
        let wrong = if wrong == c.peek_answer(&id).unwrap() {
            "222222".into()
        } else {
            wrong
        };
        assert!(!c.check(&id, &wrong, 1001));
        assert!(
            c.peek_answer(&id).is_none(),
            "a wrong answer consumes it too"
        );

        let id = c.create(CaptchaKind::Image, "fr", ME, 1000).unwrap();
        let answer = c.peek_answer(&id).unwrap();
        assert!(matches!(c.image(&id, 1060), Err(CaptchaError::NotFound)));
        assert!(!c.check(&id, &answer, 1060), "expired");
        assert!(!c.check("nope", "x", 0));
    }

    #[test]
    fn audio_challenges() {
        let c = provider(60, 10, 6);
        let id = c.create(CaptchaKind::Audio, "fr", ME, 1000).unwrap();
        let answer = c.peek_answer(&id).unwrap();
        assert_eq!(answer.len(), 6);
        assert!(answer.bytes().all(|b| b.is_ascii_digit()), "{answer:?}");
        let wav = c.audio(&id, 1001).unwrap();
        assert_eq!((&wav[..4], &wav[8..12]), (&b"RIFF"[..], &b"WAVE"[..]));
        assert_eq!(wav, c.audio(&id, 1002).unwrap(), "same bytes at each fetch");
        // The image of an audio challenge, and the reverse, are refused
        // without consuming the challenge.
        assert!(matches!(
            c.image(&id, 1002),
            Err(CaptchaError::WrongKind {
                challenge: CaptchaKind::Audio
            })
        ));
        let img = c.create(CaptchaKind::Image, "fr", ME, 1000).unwrap();
        assert!(matches!(
            c.audio(&img, 1002),
            Err(CaptchaError::WrongKind {
                challenge: CaptchaKind::Image
            })
        ));
        assert!(c.image(&img, 1002).is_ok());
        // The same check as images: trimmed, one-time.
        assert!(c.check(&id, &format!(" {answer}\n"), 1003));
        assert!(!c.check(&id, &answer, 1004), "one-time");
        assert!(matches!(c.audio(&id, 1004), Err(CaptchaError::NotFound)));

        // Another challenge reads other digits, or the same differently.
        let other = c.create(CaptchaKind::Audio, "fr", ME, 1000).unwrap();
        let id = c.create(CaptchaKind::Audio, "fr", ME, 1000).unwrap();
        assert_ne!(c.audio(&other, 1001).unwrap(), c.audio(&id, 1001).unwrap());
        // A wrong answer consumes it.
        let answer = c.peek_answer(&id).unwrap();
        let wrong: String = answer
            .bytes()
            .map(|b| char::from(b'0' + (b - b'0' + 1) % 10))
            .collect();
        assert!(!c.check(&id, &wrong, 1001));
        assert!(c.peek_answer(&id).is_none());
        // Expiry.
        assert!(matches!(c.audio(&other, 1060), Err(CaptchaError::NotFound)));
        assert!(!c.check(&other, "000000", 1060));

        // English, and unknown locales fall back to French.
        let en = c.create(CaptchaKind::Audio, "en-GB", ME, 1000).unwrap();
        let de = c.create(CaptchaKind::Audio, "de", ME, 1000).unwrap();
        let t = c.lock();
        for (id, want) in [(&en, AudioLocale::En), (&de, AudioLocale::Fr)] {
            assert!(
                matches!(t.challenges[id.as_str()].form, Form::Audio { locale, .. } if locale == want)
            );
        }
    }

    #[test]
    fn bounded_outstanding() {
        let c = provider(60, 3, 4);
        for _ in 0..3 {
            c.create(CaptchaKind::Image, "fr", ME, 0).unwrap();
        }
        assert!(matches!(
            c.create(CaptchaKind::Image, "fr", ME, 10),
            Err(CaptchaError::Busy)
        ));
        // Once they expire, room is made.
        assert!(c.create(CaptchaKind::Audio, "en", ME, 61).is_ok());
        assert_eq!(c.outstanding(), 1);
    }

    /// D1: one client fills its quota; others still get challenges; the
    /// global cap stays out of one client's reach; its slots come back as
    /// its challenges are answered or expire.
    #[test]
    fn per_client_quota() {
        let c = BuiltinCaptcha::new(BuiltinLimits {
            ttl_secs: 60,
            max_outstanding: 10,
            max_outstanding_per_client: 3,
            image_cache_entries: 100,
            length: 6,
        });
        let other = ClientKey::V4([198, 51, 100, 9]);
        let mine: Vec<String> = (0..3)
            .map(|i| c.create(CaptchaKind::Image, "fr", ME, 1000 + i).unwrap())
            .collect();
        assert!(matches!(
            c.create(CaptchaKind::Audio, "fr", ME, 1010),
            Err(CaptchaError::ClientQuota {
                retry_after_secs: 50
            })
        ));
        assert!(c.create(CaptchaKind::Image, "fr", other, 1010).is_ok());
        // Answering (even wrongly) frees a slot.
        assert!(!c.check(&mine[0], "nope", 1011));
        assert!(c.create(CaptchaKind::Image, "fr", ME, 1012).is_ok());
        assert!(c.create(CaptchaKind::Image, "fr", ME, 1012).is_err());
        // Expiry frees them all.
        assert!(c.create(CaptchaKind::Image, "fr", ME, 1080).is_ok());
        assert_eq!(c.outstanding(), 1, "expired ones are swept");
        assert_eq!(c.lock().per_client.len(), 1);
    }

    #[test]
    fn image_cache_is_bounded_and_fetches_are_stable() {
        let c = BuiltinCaptcha::new(BuiltinLimits {
            ttl_secs: 60,
            max_outstanding: 1000,
            max_outstanding_per_client: 999,
            image_cache_entries: 4,
            length: 6,
        });
        let ids: Vec<String> = (0..20)
            .map(|_| c.create(CaptchaKind::Image, "fr", ME, 1000).unwrap())
            .collect();
        let first: Vec<Arc<Vec<u8>>> = ids.iter().map(|id| c.image(id, 1001).unwrap()).collect();
        assert_eq!(c.cached_images(), 4);
        // Evicted images render again to the same bytes.
        for (id, png) in ids.iter().zip(&first) {
            assert_eq!(&c.image(id, 1002).unwrap(), png);
        }
        assert!(c.cached_images() <= 4);
        // A consumed challenge leaves the cache.
        let last = ids.last().unwrap();
        assert!(c.image(last, 1002).is_ok());
        let before = c.cached_images();
        c.check(last, "x", 1003);
        assert_eq!(c.cached_images(), before - 1);
    }
}
