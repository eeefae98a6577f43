"""Reads the built-in captcha's audio challenges (test tool, needs numpy).

The failure test uses it to solve, from outside, a challenge made on one
node and fetched from another: the proof that the nodes share challenges
end to end. It also shows what the module documentation of
crates/robert-server/src/captcha/audio.rs says: the audio challenge stops
trivial template matching, not a determined reader, because the digit
recordings are public (crates/robert-server/assets/captcha-audio/).

Method: split the track on the silences between digits, then compare each
word's log band energies over time (time-normalised, so that the random
speed does not matter) with those of the ten recordings played at a few
speeds; the nearest wins.
"""

import os
import struct

import numpy as np

RATE = 8000
ASSETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates", "robert-server", "assets", "captcha-audio")
FRAME = 160  # 20 ms
N_TIME = 24
SPEEDS = (0.88, 0.94, 1.0, 1.06, 1.12)


def parse_wav(data):
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a WAV file")
    pos = 12
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        body = data[pos + 8 : pos + 8 + size]
        if cid == b"data":
            return np.frombuffer(body[: len(body) // 2 * 2], dtype="<i2").astype(np.float64) / 32768.0
        pos += 8 + size + (size & 1)
    raise ValueError("no data chunk")


def varispeed(x, speed):
    pos = np.arange(0.0, len(x) - 1, speed)
    return np.interp(pos, np.arange(len(x)), x)


def frame_rms(x):
    n = len(x) // FRAME
    return np.sqrt((x[: n * FRAME].reshape(n, FRAME) ** 2).mean(axis=1) + 1e-12)


def trim(x, floor=0.0):
    rms = frame_rms(x)
    thr = max(0.08 * rms.max(), 2.5 * floor)
    on = np.nonzero(rms > thr)[0]
    if len(on) == 0:
        return x
    return x[on[0] * FRAME : (on[-1] + 1) * FRAME]


_BANDS = None


def features(x):
    """Log energies in 16 bands × N_TIME time steps, mean removed."""
    global _BANDS
    win, hop = 256, 80
    n = max(1, (len(x) - win) // hop + 1)
    if len(x) < win:
        x = np.pad(x, (0, win - len(x)))
    idx = np.arange(win)[None, :] + hop * np.arange(n)[:, None]
    spec = np.abs(np.fft.rfft(x[idx] * np.hanning(win), axis=1)) ** 2
    if _BANDS is None:
        edges = np.geomspace(100, 3800, 17) / (RATE / 2) * (win // 2)
        _BANDS = [(int(a), max(int(b), int(a) + 1)) for a, b in zip(edges[:-1], edges[1:])]
    bands = np.stack([spec[:, a:b].sum(axis=1) for a, b in _BANDS], axis=1)
    logb = np.log(bands + 1e-9)
    # Time-normalise: N_TIME steps whatever the word's duration.
    t = np.linspace(0, len(logb) - 1, N_TIME)
    res = np.stack([np.interp(t, np.arange(len(logb)), logb[:, k]) for k in range(logb.shape[1])], axis=1)
    return (res - res.mean()).ravel()


_TEMPLATES = {}


def templates(locale):
    if locale not in _TEMPLATES:
        out = []
        for d in range(10):
            with open(os.path.join(ASSETS, locale, f"{d}.wav"), "rb") as f:
                x = trim(parse_wav(f.read()))
            out.append([features(varispeed(x, s)) for s in SPEEDS])
        _TEMPLATES[locale] = out
    return _TEMPLATES[locale]


def segments(x):
    rms = frame_rms(x)
    floor = np.percentile(rms, 10)
    thr = max(4 * floor, 0.06 * rms.max())
    on = rms > thr
    segs, start, last_on = [], None, None
    min_gap = int(0.2 * RATE / FRAME)
    for i, v in enumerate(on):
        if v:
            if start is None:
                start = i
            elif i - last_on > min_gap:
                segs.append((start, last_on))
                start = i
            last_on = i
    if start is not None:
        segs.append((start, last_on))
    # Drop blips (clicks, hum bursts) shorter than 60 ms.
    return [(a * FRAME, (b + 1) * FRAME) for a, b in segs if b - a >= 2], floor


_RAW = {}


def recordings(locale):
    if locale not in _RAW:
        out = []
        for d in range(10):
            with open(os.path.join(ASSETS, locale, f"{d}.wav"), "rb") as f:
                out.append(parse_wav(f.read()))
        _RAW[locale] = out
    return _RAW[locale]


def best_match(seg, recs):
    """The digit whose recording, at some speed in 0.88..1.12, correlates
    best with the word (normalised cross-correlation over every lag)."""
    n = 1 << int(np.ceil(np.log2(len(seg) + 2 * 12000)))
    fs = np.conj(np.fft.rfft(seg, n))
    scores = []
    for rec in recs:
        best = 0.0
        for speed in np.arange(0.88, 1.1201, 0.0025):
            t = varispeed(rec, speed)
            c = np.fft.irfft(np.fft.rfft(t, n) * fs, n)
            best = max(best, np.abs(c).max() / (np.linalg.norm(t) + 1e-12))
        scores.append(best)
    return int(np.argmax(scores))


def solve(wav, locale="en"):
    x = parse_wav(wav)
    recs = recordings(locale)
    segs, _ = segments(x)
    pad = int(0.15 * RATE)
    return "".join(str(best_match(x[max(0, a - pad) : b + pad], recs)) for a, b in segs)
