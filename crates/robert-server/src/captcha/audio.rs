//! Audio challenges of the built-in provider: the answer's digits read one
//! by one, for users who cannot read the image.
//!
//! The digit recordings (`assets/captcha-audio/{fr,en}/{0..9}.wav`, 8 kHz
//! mono 16-bit PCM, generated once with espeak-ng, see the README there) are
//! embedded in the binary and parsed on first use. A rendering:
//!
//! * opens with 0.3–0.6 s of lead-in, then reads each digit at a random
//!   speed (±12 %, which moves the pitch as much) and loudness, separated
//!   by random gaps of 0.35–0.9 s, and ends with 0.3–0.5 s of tail;
//! * is mixed with low, coloured background noise whose level drifts
//!   slowly, plus a faint hum of random pitch.
//!
//! This stops trivial machine reading (exact template matching, fixed
//! silences), not a determined attacker: the recordings are public, so an
//! audio challenge is weaker than an image one. It exists for
//! accessibility.
//!
//! The randomness comes from the `rng` passed in; the built-in provider
//! seeds it per challenge so that fetching the audio again returns the same
//! bytes (repeated fetches cannot be averaged to remove the noise) without
//! keeping the rendering in memory.

use std::sync::OnceLock;

use rand::{Rng, RngExt as _};

/// Sample rate of the recordings and of the rendered WAV, in Hz.
pub const SAMPLE_RATE: u32 = 8000;

/// `Content-Type` of a rendering.
pub const CONTENT_TYPE: &str = "audio/wav";

/// Language an audio challenge is read in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum AudioLocale {
    /// French, the default.
    #[default]
    Fr,
    /// English.
    En,
}

impl AudioLocale {
    /// Every supported locale.
    pub const ALL: [Self; 2] = [Self::Fr, Self::En];

    /// The locale of a request's `locale` (a BCP 47 or POSIX tag such as
    /// `fr`, `en-GB`, `en_US`): its primary language if supported, French
    /// otherwise.
    pub fn from_tag(tag: &str) -> Self {
        let primary = tag
            .trim()
            .split(['-', '_', '.', '@'])
            .next()
            .unwrap_or_default();
        if primary.eq_ignore_ascii_case("en") {
            Self::En
        } else {
            Self::Fr
        }
    }

    /// The locale's code (`fr`, `en`).
    pub fn code(self) -> &'static str {
        match self {
            Self::Fr => "fr",
            Self::En => "en",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::Fr => 0,
            Self::En => 1,
        }
    }

    /// The embedded WAV of each digit, `0` to `9`.
    fn assets(self) -> &'static [&'static [u8]; 10] {
        match self {
            Self::Fr => &FR,
            Self::En => &EN,
        }
    }
}

macro_rules! digits {
    ($loc:literal) => {
        [
            include_bytes!(concat!("../../assets/captcha-audio/", $loc, "/0.wav")).as_slice(),
            include_bytes!(concat!("../../assets/captcha-audio/", $loc, "/1.wav")).as_slice(),
            include_bytes!(concat!("../../assets/captcha-audio/", $loc, "/2.wav")).as_slice(),
            include_bytes!(concat!("../../assets/captcha-audio/", $loc, "/3.wav")).as_slice(),
            include_bytes!(concat!("../../assets/captcha-audio/", $loc, "/4.wav")).as_slice(),
            include_bytes!(concat!("../../assets/captcha-audio/", $loc, "/5.wav")).as_slice(),
            include_bytes!(concat!("../../assets/captcha-audio/", $loc, "/6.wav")).as_slice(),
            include_bytes!(concat!("../../assets/captcha-audio/", $loc, "/7.wav")).as_slice(),
            include_bytes!(concat!("../../assets/captcha-audio/", $loc, "/8.wav")).as_slice(),
            include_bytes!(concat!("../../assets/captcha-audio/", $loc, "/9.wav")).as_slice(),
        ]
    };
}

static FR: [&[u8]; 10] = digits!("fr");
static EN: [&[u8]; 10] = digits!("en");

/// Why a WAV could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WavError {
    /// No `RIFF`…`WAVE` header.
    #[error("not a RIFF/WAVE file")]
    NotWave,
    /// A chunk runs past the end of the file.
    #[error("truncated chunk")]
    Truncated,
    /// No `fmt ` chunk before the `data` chunk.
    #[error("no fmt chunk before the data chunk")]
    MissingFmt,
    /// No `data` chunk.
    #[error("no data chunk")]
    MissingData,
    /// Not mono 16-bit integer PCM at [`SAMPLE_RATE`].
    #[error("unsupported format: {0}")]
    Unsupported(&'static str),
    /// No samples.
    #[error("no samples")]
    Empty,
}

/// An embedded digit recording is unusable (a build defect: the unit tests
/// parse every asset).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("captcha audio asset {locale}/{digit}.wav: {source}")]
pub struct AssetError {
    /// The locale's code.
    pub locale: &'static str,
    /// The digit.
    pub digit: u8,
    /// What is wrong with it.
    pub source: WavError,
}

/// Why an audio challenge could not be rendered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AudioError {
    /// An embedded recording is unusable.
    #[error(transparent)]
    Asset(#[from] AssetError),
    /// The text to read holds something other than ASCII digits.
    #[error("only digits can be read aloud")]
    NotADigit,
}

/// Reads mono 16-bit little-endian PCM at [`SAMPLE_RATE`] from a WAV file;
/// other chunks (`LIST`, `fact`…) are skipped.
pub fn parse_wav(bytes: &[u8]) -> Result<Vec<i16>, WavError> {
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(WavError::NotWave);
    }
    let mut rest = &bytes[12..];
    let mut format_ok = false;
    while rest.len() >= 8 {
        let (id, size) = (&rest[..4], le_u32(&rest[4..8]));
        let size = usize::try_from(size).map_err(|_| WavError::Truncated)?;
        let body = rest.get(8..8 + size).ok_or(WavError::Truncated)?;
        match id {
            b"fmt " => {
                check_fmt(body)?;
                format_ok = true;
            }
            b"data" => {
                if !format_ok {
                    return Err(WavError::MissingFmt);
                }
                if size % 2 != 0 {
                    return Err(WavError::Truncated);
                }
                if size == 0 {
                    return Err(WavError::Empty);
                }
                return Ok(body
                    .chunks_exact(2)
                    .map(|s| i16::from_le_bytes([s[0], s[1]]))
                    .collect());
            }
            _ => {}
        }
        // Chunks are padded to an even length.
        let next = 8 + size + (size & 1);
        rest = rest.get(next..).unwrap_or_default();
    }
    Err(WavError::MissingData)
}

fn le_u16(b: &[u8]) -> u16 {
    u16::from_le_bytes([b[0], b[1]])
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn check_fmt(fmt: &[u8]) -> Result<(), WavError> {
    if fmt.len() < 16 {
        return Err(WavError::Truncated);
    }
    let tag = le_u16(&fmt[0..2]);
    // WAVE_FORMAT_EXTENSIBLE carries the real tag in its sub-format GUID.
    let tag = if tag == 0xFFFE && fmt.len() >= 26 {
        le_u16(&fmt[24..26])
    } else {
        tag
    };
    if tag != 1 {
        return Err(WavError::Unsupported("not integer PCM"));
    }
    if le_u16(&fmt[2..4]) != 1 {
        return Err(WavError::Unsupported("not mono"));
    }
    if le_u32(&fmt[4..8]) != SAMPLE_RATE {
        return Err(WavError::Unsupported("sample rate is not 8000 Hz"));
    }
    if le_u16(&fmt[12..14]) != 2 || le_u16(&fmt[14..16]) != 16 {
        return Err(WavError::Unsupported("not 16-bit"));
    }
    Ok(())
}

/// A WAV file (canonical 44-byte header) of mono 16-bit PCM at
/// [`SAMPLE_RATE`].
pub fn encode_wav(samples: &[i16]) -> Vec<u8> {
    // Renderings last seconds, far below the 4 GiB a RIFF size can express.
    let data_len = u32::try_from(samples.len() * 2).unwrap_or(u32::MAX - 36);
    let mut out = Vec::with_capacity(44 + samples.len() * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&SAMPLE_RATE.to_le_bytes());
    out.extend_from_slice(&(SAMPLE_RATE * 2).to_le_bytes()); // byte rate
    out.extend_from_slice(&2u16.to_le_bytes()); // block align
    out.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

/// The digit recordings of a locale, as samples in [-1, 1].
type Voice = [Vec<f32>; 10];

fn load(locale: AudioLocale) -> Result<Voice, AssetError> {
    let mut voice: Voice = Default::default();
    for (digit, (slot, bytes)) in (0u8..).zip(voice.iter_mut().zip(locale.assets())) {
        let samples = parse_wav(bytes).map_err(|source| AssetError {
            locale: locale.code(),
            digit,
            source,
        })?;
        *slot = samples
            .into_iter()
            .map(|s| f32::from(s) / 32768.0)
            .collect();
    }
    Ok(voice)
}

/// The parsed recordings of a locale (parsed once per process).
fn voice(locale: AudioLocale) -> Result<&'static Voice, AssetError> {
    static VOICES: [OnceLock<Result<Voice, AssetError>>; 2] = [OnceLock::new(), OnceLock::new()];
    VOICES[locale.index()]
        .get_or_init(|| load(locale))
        .as_ref()
        .map_err(Clone::clone)
}

/// Checks that every embedded recording parses.
pub fn validate_assets() -> Result<(), AssetError> {
    for locale in AudioLocale::ALL {
        voice(locale)?;
    }
    Ok(())
}

/// Samples in `secs_lo..secs_hi` seconds, drawn at random.
fn random_len<R: Rng + ?Sized>(rng: &mut R, secs_lo: f32, secs_hi: f32) -> usize {
    let secs = rng.random_range(secs_lo..secs_hi);
    // Positive and a few seconds at most.
    (secs * SAMPLE_RATE as f32) as usize
}

/// Appends `src` played `speed` times faster (linear interpolation, so the
/// pitch moves with the speed) and scaled by `gain`.
fn push_varispeed(out: &mut Vec<f32>, src: &[f32], speed: f32, gain: f32) {
    let last = src.len().saturating_sub(1);
    let mut pos = 0.0f32;
    // Recordings hold under a million samples: exact in f32 up to 2^24.
    let end = last as f32;
    while pos <= end {
        // `pos` is non-negative and at most `last`.
        let i = pos as usize;
        let frac = pos - i as f32;
        let a = src[i];
        let b = src[(i + 1).min(last)];
        out.push(gain * (a + (b - a) * frac));
        pos += speed;
    }
}

/// Renders the WAV of an answer made of ASCII digits (anything else is
/// [`AudioError::NotADigit`]).
pub fn render_wav<R: Rng + ?Sized>(
    digits: &[u8],
    locale: AudioLocale,
    rng: &mut R,
) -> Result<Vec<u8>, AudioError> {
    let voice = voice(locale)?;
    let mut track: Vec<f32> = Vec::with_capacity(SAMPLE_RATE as usize * (1 + digits.len()));
    track.resize(random_len(rng, 0.3, 0.6), 0.0);
    for (i, &c) in digits.iter().enumerate() {
        if i > 0 {
            let gap = random_len(rng, 0.35, 0.9);
            track.resize(track.len() + gap, 0.0);
        }
        let recording = c
            .checked_sub(b'0')
            .and_then(|d| voice.get(usize::from(d)))
            .ok_or(AudioError::NotADigit)?;
        let speed = rng.random_range(0.88f32..1.12);
        let gain = rng.random_range(0.75f32..1.0);
        push_varispeed(&mut track, recording, speed, gain);
    }
    let tail = random_len(rng, 0.3, 0.5);
    track.resize(track.len() + tail, 0.0);

    // Background: white noise through a one-pole low-pass (random colour),
    // its level drifting between about 0.5 and 1.5 times a random base, plus
    // a faint hum whose pitch is random.
    let base = rng.random_range(0.01f32..0.02);
    let pole = rng.random_range(0.3f32..0.75);
    let hum_amp = rng.random_range(0.003f32..0.008);
    let hum_step = std::f32::consts::TAU * rng.random_range(80.0f32..220.0) / SAMPLE_RATE as f32;
    let (mut lp, mut level, mut phase) =
        (0.0f32, 1.0f32, rng.random_range(0.0..std::f32::consts::TAU));
    let out: Vec<i16> = track
        .iter()
        .map(|&s| {
            let white: f32 = rng.random_range(-1.0f32..1.0);
            lp = pole * lp + (1.0 - pole) * white;
            level = (level + rng.random_range(-0.002f32..0.002)).clamp(0.5, 1.5);
            phase = (phase + hum_step) % std::f32::consts::TAU;
            let mixed = s + base * level * lp * 2.0 + hum_amp * phase.sin();
            // Clamped into i16's range first.
            (mixed.clamp(-1.0, 1.0) * 32767.0).round() as i16
        })
        .collect();
    Ok(encode_wav(&out))
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng as _;
    use rand::rngs::StdRng;

    use super::*;

    #[test]
    fn every_digit_asset_parses() {
        validate_assets().unwrap();
        for locale in AudioLocale::ALL {
            for (d, bytes) in locale.assets().iter().enumerate() {
                let samples = parse_wav(bytes).unwrap();
                // Between 0.1 s and 1.5 s of speech, not silence.
                assert!(
                    (800..12_000).contains(&samples.len()),
                    "{}/{d}: {} samples",
                    locale.code(),
                    samples.len()
                );
                let peak = samples.iter().map(|s| s.unsigned_abs()).max().unwrap();
                assert!(peak > 10_000, "{}/{d}: peak {peak}", locale.code());
            }
            // The two locales are different recordings.
        }
        assert_ne!(FR[7], EN[7]);
        let total: usize = FR.iter().chain(EN.iter()).map(|b| b.len()).sum();
        assert!(total < 300_000, "assets weigh {total} bytes");
    }

    #[test]
    fn wav_header_is_valid() {
        let wav = render_wav(b"0123456789", AudioLocale::Fr, &mut rand::rng()).unwrap();
        assert_eq!(&wav[0..4], b"RIFF");
        assert_eq!(le_u32(&wav[4..8]) as usize, wav.len() - 8);
        assert_eq!(&wav[8..16], b"WAVEfmt ");
        assert_eq!(le_u32(&wav[16..20]), 16);
        assert_eq!(le_u16(&wav[20..22]), 1, "PCM");
        assert_eq!(le_u16(&wav[22..24]), 1, "mono");
        assert_eq!(le_u32(&wav[24..28]), 8000);
        assert_eq!(le_u32(&wav[28..32]), 16_000);
        assert_eq!(le_u16(&wav[32..34]), 2);
        assert_eq!(le_u16(&wav[34..36]), 16);
        assert_eq!(&wav[36..40], b"data");
        assert_eq!(le_u32(&wav[40..44]) as usize, wav.len() - 44);
        // Our own parser reads it back.
        assert_eq!(parse_wav(&wav).unwrap().len(), (wav.len() - 44) / 2);
    }

    #[test]
    fn length_grows_with_digit_count() {
        // Bounds: a digit lasts 0.19–0.61 s after the speed change, gaps
        // 0.35–0.9 s, lead-in + tail 0.6–1.1 s. So 1 digit < 1.8 s <
        // 2.4 s < 4 digits < 6.2 s < 6.7 s < 12 digits, whatever the draws.
        for locale in AudioLocale::ALL {
            for _ in 0..10 {
                let mut rng = rand::rng();
                let one = render_wav(b"7", locale, &mut rng).unwrap().len();
                let four = render_wav(b"7777", locale, &mut rng).unwrap().len();
                let twelve = render_wav(b"777777777777", locale, &mut rng).unwrap().len();
                assert!(one < four && four < twelve, "{one} {four} {twelve}");
                let secs = (one - 44) as f32 / 16_000.0;
                assert!((0.6..1.8).contains(&secs), "{secs}");
            }
        }
    }

    #[test]
    fn renderings_differ_but_are_reproducible_from_a_seed() {
        let a = render_wav(b"123456", AudioLocale::Fr, &mut rand::rng()).unwrap();
        let b = render_wav(b"123456", AudioLocale::Fr, &mut rand::rng()).unwrap();
        assert_ne!(a, b, "same digits, different audio");
        let seeded = |seed| {
            render_wav(
                b"123456",
                AudioLocale::En,
                &mut StdRng::from_seed([seed; 32]),
            )
            .unwrap()
        };
        assert_eq!(seeded(1), seeded(1));
        assert_ne!(seeded(1), seeded(2));
    }

    #[test]
    fn speech_stands_above_the_noise() {
        // The loudest 50 ms window (speech) is far louder than the lead-in
        // (noise only): intelligible.
        let wav = render_wav(b"5", AudioLocale::Fr, &mut rand::rng()).unwrap();
        let s = parse_wav(&wav).unwrap();
        let rms = |w: &[i16]| {
            (w.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / w.len() as f64).sqrt()
        };
        let noise = rms(&s[..2000]);
        let speech = s.chunks(400).map(rms).fold(0.0, f64::max);
        assert!(noise > 50.0, "there is background noise: {noise}");
        assert!(speech > 5.0 * noise, "speech {speech} vs noise {noise}");
    }

    #[test]
    fn locales_and_rejections() {
        assert_eq!(AudioLocale::from_tag("fr"), AudioLocale::Fr);
        assert_eq!(AudioLocale::from_tag("en"), AudioLocale::En);
        assert_eq!(AudioLocale::from_tag("EN-gb"), AudioLocale::En);
        assert_eq!(AudioLocale::from_tag("en_US.UTF-8"), AudioLocale::En);
        assert_eq!(AudioLocale::from_tag("de"), AudioLocale::Fr);
        assert_eq!(AudioLocale::from_tag(""), AudioLocale::Fr);
        assert_eq!(AudioLocale::from_tag("eng"), AudioLocale::Fr);
        let en = render_wav(b"1", AudioLocale::En, &mut StdRng::from_seed([3; 32])).unwrap();
        let fr = render_wav(b"1", AudioLocale::Fr, &mut StdRng::from_seed([3; 32])).unwrap();
        assert_ne!(en, fr);

        assert_eq!(
            render_wav(b"12A", AudioLocale::Fr, &mut rand::rng()),
            Err(AudioError::NotADigit)
        );
        assert_eq!(parse_wav(b"RIFF\0\0\0\0WAVX"), Err(WavError::NotWave));
        let good = encode_wav(&[1, 2, 3]);
        assert_eq!(parse_wav(&good), Ok(vec![1, 2, 3]));
        assert_eq!(parse_wav(&good[..good.len() - 1]), Err(WavError::Truncated));
        let mut stereo = good.clone();
        stereo[22] = 2;
        assert_eq!(parse_wav(&stereo), Err(WavError::Unsupported("not mono")));
        let mut rate = good.clone();
        rate[24..28].copy_from_slice(&22_050u32.to_le_bytes());
        assert!(matches!(parse_wav(&rate), Err(WavError::Unsupported(_))));
        assert_eq!(parse_wav(&encode_wav(&[])), Err(WavError::Empty));
        // A data chunk before any fmt chunk.
        let mut no_fmt = b"RIFF\0\0\0\0WAVE".to_vec();
        no_fmt.extend_from_slice(&good[36..]);
        assert_eq!(parse_wav(&no_fmt), Err(WavError::MissingFmt));
        // Only a fmt chunk, and an unknown chunk before it is skipped.
        let mut only_fmt = b"RIFF\0\0\0\0WAVELIST\x03\0\0\0abc\0".to_vec();
        only_fmt.extend_from_slice(&good[12..36]);
        assert_eq!(parse_wav(&only_fmt), Err(WavError::MissingData));
    }
}
