//! The built-in captcha provider: distorted PNG text challenges and spoken
//! digit challenges, with one-time, expiring answers, kept in memory.
//!
//! * An image answer is `length` characters of [`font::ALPHABET`] (31
//!   symbols, no look-alikes); an audio answer is `length` digits `0`–`9`,
//!   read in the challenge's locale ([`audio`]). Both go through the same
//!   check: trimmed, compared case-insensitively and in constant time.
//! * A challenge is consumed by its first check, right or wrong, so an
//!   answer cannot be guessed by repeated tries.
//! * Challenges expire after `ttl`; at most `max_outstanding` exist at once.
//! * The image is rendered on the first fetch and cached with the challenge.
//!   The audio (about 100 kB) is not cached: it is rendered at each fetch
//!   from a random seed kept with the challenge, so every fetch returns the
//!   same bytes.
//! * Fetching the image of an audio challenge, or the reverse, is
//!   [`CaptchaError::WrongKind`] and does not consume the challenge.
//!
//! State is per process: several server instances behind one address need
//! the external provider (or sticky routing).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rand::rngs::StdRng;
use rand::{Rng as _, RngExt as _, SeedableRng as _};
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use super::audio::{self, AudioLocale};
use super::{CaptchaError, CaptchaKind, font};

/// Image width in pixels.
pub const WIDTH: u32 = 220;
/// Image height in pixels.
pub const HEIGHT: u32 = 80;

/// What a challenge is shown as.
enum Form {
    /// A PNG, rendered on the first fetch.
    Image { png: Option<Arc<Vec<u8>>> },
    /// A WAV, rendered at each fetch from `seed`.
    Audio { locale: AudioLocale, seed: [u8; 32] },
}

struct Challenge {
    answer: Zeroizing<Vec<u8>>,
    expires_unix: i64,
    form: Form,
}

impl Challenge {
    fn kind(&self) -> CaptchaKind {
        match self.form {
            Form::Image { .. } => CaptchaKind::Image,
            Form::Audio { .. } => CaptchaKind::Audio,
        }
    }
}

/// The built-in provider's state.
pub struct BuiltinCaptcha {
    challenges: Mutex<HashMap<String, Challenge>>,
    ttl_secs: i64,
    max_outstanding: usize,
    length: usize,
}

impl std::fmt::Debug for BuiltinCaptcha {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuiltinCaptcha")
            .field("ttl_secs", &self.ttl_secs)
            .field("max_outstanding", &self.max_outstanding)
            .finish_non_exhaustive()
    }
}

impl BuiltinCaptcha {
    /// A provider with the given settings.
    pub fn new(ttl_secs: u64, max_outstanding: usize, length: usize) -> Self {
        Self {
            challenges: Mutex::new(HashMap::new()),
            ttl_secs: i64::try_from(ttl_secs).unwrap_or(i64::MAX / 4),
            max_outstanding,
            length,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Challenge>> {
        self.challenges
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Creates a challenge of `kind` and returns its id. `locale` (a
    /// request's `locale`, see [`AudioLocale::from_tag`]) is the language
    /// of an audio challenge; images ignore it.
    pub fn create(
        &self,
        kind: CaptchaKind,
        locale: &str,
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
        let form = match kind {
            CaptchaKind::Image => Form::Image { png: None },
            CaptchaKind::Audio => {
                let mut seed = [0u8; 32];
                rng.fill_bytes(&mut seed);
                Form::Audio {
                    locale: AudioLocale::from_tag(locale),
                    seed,
                }
            }
        };
        let mut id_bytes = [0u8; 16];
        rng.fill_bytes(&mut id_bytes);
        let id = hex::encode(id_bytes);
        let mut map = self.lock();
        if map.len() >= self.max_outstanding {
            map.retain(|_, c| c.expires_unix > now_unix);
            if map.len() >= self.max_outstanding {
                return Err(CaptchaError::Busy);
            }
        }
        map.insert(
            id.clone(),
            Challenge {
                answer,
                expires_unix: now_unix.saturating_add(self.ttl_secs),
                form,
            },
        );
        Ok(id)
    }

    /// The PNG of an image challenge.
    pub fn image(&self, id: &str, now_unix: i64) -> Result<Arc<Vec<u8>>, CaptchaError> {
        let answer = {
            let map = self.lock();
            let c = live(&map, id, now_unix)?;
            match &c.form {
                Form::Image { png: Some(png) } => return Ok(png.clone()),
                Form::Image { png: None } => c.answer.clone(),
                Form::Audio { .. } => {
                    return Err(CaptchaError::WrongKind {
                        challenge: c.kind(),
                    });
                }
            }
        };
        // Render outside the lock.
        let png = Arc::new(render_png(&answer)?);
        let mut map = self.lock();
        if let Some(Challenge {
            form: Form::Image { png: slot },
            ..
        }) = map.get_mut(id)
        {
            *slot = Some(png.clone());
        }
        Ok(png)
    }

    /// The WAV of an audio challenge (the same bytes at every fetch).
    pub fn audio(&self, id: &str, now_unix: i64) -> Result<Vec<u8>, CaptchaError> {
        let (answer, locale, seed) = {
            let map = self.lock();
            let c = live(&map, id, now_unix)?;
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
        if c.expires_unix <= now_unix {
            return false;
        }
        let given = Zeroizing::new(answer.trim().to_ascii_uppercase().into_bytes());
        given.len() == c.answer.len() && bool::from(given.ct_eq(&c.answer))
    }

    /// Number of outstanding challenges (for metrics).
    pub fn outstanding(&self) -> usize {
        self.lock().len()
    }

    /// Test hook: the answer of a challenge, without consuming it.
    #[doc(hidden)]
    pub fn peek_answer(&self, id: &str) -> Option<String> {
        self.lock()
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

/// Renders `text` as a distorted grayscale PNG.
pub fn render_png(text: &[u8]) -> Result<Vec<u8>, CaptchaError> {
    let (w, h) = (WIDTH as usize, HEIGHT as usize);
    let mut rng = rand::rng();
    // Light, noisy background.
    let mut px: Vec<u8> = (0..w * h).map(|_| rng.random_range(200..=255u8)).collect();
    let dark = |px: &mut Vec<u8>, x: i64, y: i64, v: u8| {
        if (0..w as i64).contains(&x) && (0..h as i64).contains(&y) {
            // In range by the check above.
            #[allow(clippy::cast_sign_loss, clippy::cast_possible_truncation)]
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

    #[test]
    fn one_time_expiring_answers() {
        let c = BuiltinCaptcha::new(60, 10, 6);
        let id = c.create(CaptchaKind::Image, "fr", 1000).unwrap();
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

        let id = c.create(CaptchaKind::Image, "fr", 1000).unwrap();
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

        let id = c.create(CaptchaKind::Image, "fr", 1000).unwrap();
        let answer = c.peek_answer(&id).unwrap();
        assert!(matches!(c.image(&id, 1060), Err(CaptchaError::NotFound)));
        assert!(!c.check(&id, &answer, 1060), "expired");
        assert!(!c.check("nope", "x", 0));
    }

    #[test]
    fn audio_challenges() {
        let c = BuiltinCaptcha::new(60, 10, 6);
        let id = c.create(CaptchaKind::Audio, "fr", 1000).unwrap();
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
        let img = c.create(CaptchaKind::Image, "fr", 1000).unwrap();
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
        let other = c.create(CaptchaKind::Audio, "fr", 1000).unwrap();
        let id = c.create(CaptchaKind::Audio, "fr", 1000).unwrap();
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
        let en = c.create(CaptchaKind::Audio, "en-GB", 1000).unwrap();
        let de = c.create(CaptchaKind::Audio, "de", 1000).unwrap();
        let map = c.lock();
        for (id, want) in [(&en, AudioLocale::En), (&de, AudioLocale::Fr)] {
            assert!(matches!(map[id.as_str()].form, Form::Audio { locale, .. } if locale == want));
        }
    }

    #[test]
    fn bounded_outstanding() {
        let c = BuiltinCaptcha::new(60, 3, 4);
        for _ in 0..3 {
            c.create(CaptchaKind::Image, "fr", 0).unwrap();
        }
        assert!(matches!(
            c.create(CaptchaKind::Image, "fr", 10),
            Err(CaptchaError::Busy)
        ));
        // Once they expire, room is made.
        assert!(c.create(CaptchaKind::Audio, "en", 61).is_ok());
        assert_eq!(c.outstanding(), 1);
    }
}
