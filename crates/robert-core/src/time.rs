//! Protocol time: NTP seconds, epochs, and the truncated timestamps on the wire.
//!
//! ROBERT counts time in **NTP seconds** (seconds since 1900-01-01T00:00:00Z,
//! era 0) and in **epochs** of 900 seconds counted from the service start
//! `T_ptsstart`, a calendar date taken at 00:00 UTC (protocol.md §2):
//!
//! ```text
//! ntp    = unix + 2_208_988_800
//! epoch  = floor((ntp - ntp_start) / 900)
//! Time32 = ntp mod 2^32   (authenticated requests, 4 bytes big-endian)
//! Time16 = ntp mod 2^16   (HELLO messages, 2 bytes big-endian)
//! ```
//!
//! Nothing here reads the system clock: callers pass the current time in.

use core::fmt;

/// Seconds between the NTP era-0 origin (1900-01-01) and the Unix epoch (1970-01-01).
pub const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// Length of an epoch in seconds.
pub const EPOCH_DURATION_SECS: u64 = 900;

/// Number of epochs in a day.
pub const EPOCHS_PER_DAY: u32 = 96;

/// Seconds in a day.
pub const SECONDS_PER_DAY: u64 = 86_400;

/// A point in time in NTP seconds (era 0), truncated to the second.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NtpSeconds(pub u64);

impl NtpSeconds {
    /// Converts Unix seconds; instants before 1900 saturate to 0.
    pub fn from_unix(unix: i64) -> Self {
        Self(u64::try_from(unix.saturating_add(NTP_UNIX_OFFSET as i64)).unwrap_or(0))
    }

    /// The same instant in Unix seconds.
    pub fn to_unix(self) -> i64 {
        i64::try_from(self.0).unwrap_or(i64::MAX) - NTP_UNIX_OFFSET as i64
    }

    /// The raw value.
    pub fn get(self) -> u64 {
        self.0
    }

    /// The low 32 bits, as sent in authenticated requests.
    pub fn time32(self) -> Time32 {
        // Truncation to the low 32 bits is the definition of Time32.
        Time32((self.0 & 0xFFFF_FFFF) as u32)
    }

    /// The low 16 bits, as sent in HELLO messages.
    pub fn time16(self) -> Time16 {
        // Truncation to the low 16 bits is the definition of Time16.
        Time16((self.0 & 0xFFFF) as u16)
    }

    /// Start of the UTC day containing this instant.
    pub fn utc_midnight(self) -> Self {
        Self(self.0 - self.0 % SECONDS_PER_DAY)
    }

    /// Seconds elapsed since the start of this instant's UTC day.
    pub fn seconds_into_utc_day(self) -> u64 {
        self.0 % SECONDS_PER_DAY
    }

    /// Adds seconds, saturating.
    pub fn plus(self, secs: u64) -> Self {
        Self(self.0.saturating_add(secs))
    }

    /// Subtracts seconds, saturating at 0.
    pub fn minus(self, secs: u64) -> Self {
        Self(self.0.saturating_sub(secs))
    }

    /// Absolute difference in seconds.
    pub fn abs_diff(self, other: Self) -> u64 {
        self.0.abs_diff(other.0)
    }
}

impl fmt::Display for NtpSeconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The low 32 bits of NTP seconds (authenticated requests, protocol.md §2.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Time32(pub u32);

impl Time32 {
    /// Big-endian wire form.
    pub fn to_bytes(self) -> [u8; 4] {
        self.0.to_be_bytes()
    }

    /// Parses the big-endian wire form.
    pub fn from_bytes(bytes: [u8; 4]) -> Self {
        Self(u32::from_be_bytes(bytes))
    }

    /// Rebuilds full NTP seconds as the reference does (era 0: prefix zero bits).
    pub fn to_ntp(self) -> NtpSeconds {
        NtpSeconds(u64::from(self.0))
    }
}

/// The low 16 bits of NTP seconds (HELLO messages, protocol.md §2.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Time16(pub u16);

impl Time16 {
    /// Big-endian wire form.
    pub fn to_bytes(self) -> [u8; 2] {
        self.0.to_be_bytes()
    }

    /// Parses the big-endian wire form.
    pub fn from_bytes(bytes: [u8; 2]) -> Self {
        Self(u16::from_be_bytes(bytes))
    }

    /// Circular 16-bit distance to another Time16: `min(d, 65536 - d)`.
    pub fn wrapping_distance(self, other: Self) -> u16 {
        let d = self.0.abs_diff(other.0);
        d.min(d.wrapping_neg())
    }

    /// The wrap-aware tolerance check of the reference (`toleranceCheckWithWrap`):
    /// true iff the circular distance is at most `tolerance_secs`.
    pub fn within(self, other: Self, tolerance_secs: u32) -> bool {
        u32::from(self.wrapping_distance(other)) <= tolerance_secs
    }
}

/// An epoch number: 900-second slots counted from the service start.
///
/// Inside an EBID the epoch is carried on 24 bits ([`Epoch::MAX_EBID`]);
/// elsewhere (JSON, request MACs) it is a 32-bit integer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Epoch(pub u32);

impl Epoch {
    /// The largest epoch an EBID can carry (24 bits), about 479 years.
    pub const MAX_EBID: u32 = 0x00FF_FFFF;

    /// The raw value.
    pub fn get(self) -> u32 {
        self.0
    }

    /// Index of the epoch's UTC day, counted from the service start day.
    pub fn day_index(self) -> u32 {
        self.0 / EPOCHS_PER_DAY
    }

    /// Position of the epoch within its day (0..96).
    pub fn index_in_day(self) -> u32 {
        self.0 % EPOCHS_PER_DAY
    }

    /// The next epoch, saturating.
    pub fn next(self) -> Self {
        Self(self.0.saturating_add(1))
    }

    /// The epoch `n` before, saturating at 0.
    pub fn minus(self, n: u32) -> Self {
        Self(self.0.saturating_sub(n))
    }

    /// The epoch `n` after, saturating.
    pub fn plus(self, n: u32) -> Self {
        Self(self.0.saturating_add(n))
    }

    /// Absolute distance in epochs.
    pub fn distance(self, other: Self) -> u32 {
        self.0.abs_diff(other.0)
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A civil date in the proleptic Gregorian calendar (UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UtcDate {
    /// Year, e.g. 2020.
    pub year: i32,
    /// Month, 1..=12.
    pub month: u8,
    /// Day of month, 1..=31.
    pub day: u8,
}

impl UtcDate {
    /// Builds a date, checking that it exists.
    pub fn new(year: i32, month: u8, day: u8) -> Option<Self> {
        let valid = (1900..=9999).contains(&year)
            && (1..=12).contains(&month)
            && day >= 1
            && day <= days_in_month(year, month);
        valid.then_some(Self { year, month, day })
    }

    /// Days since 1970-01-01 (negative before).
    pub fn days_since_unix_epoch(self) -> i64 {
        // Howard Hinnant's days_from_civil.
        let y = i64::from(self.year) - i64::from(self.month <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = i64::from(self.month);
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(self.day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// The date of a day count since 1970-01-01.
    pub fn from_days_since_unix_epoch(days: i64) -> Self {
        // Howard Hinnant's civil_from_days.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        // Ranges are bounded by the algorithm: month 1..=12, day 1..=31.
        Self {
            year: year as i32,
            month: month as u8,
            day: day as u8,
        }
    }

    /// 00:00:00 UTC of this date in NTP seconds (0 for dates before 1900).
    pub fn midnight(self) -> NtpSeconds {
        NtpSeconds::from_unix(self.days_since_unix_epoch() * SECONDS_PER_DAY as i64)
    }

    /// The UTC date of an instant.
    pub fn of(t: NtpSeconds) -> Self {
        Self::from_days_since_unix_epoch(t.to_unix().div_euclid(SECONDS_PER_DAY as i64))
    }

    /// The date `n` days later (or earlier when negative).
    pub fn add_days(self, n: i64) -> Self {
        Self::from_days_since_unix_epoch(self.days_since_unix_epoch() + n)
    }

    /// Compact form `YYYYMMDD` (as in the reference's key aliases).
    pub fn compact(self) -> String {
        format!("{:04}{:02}{:02}", self.year, self.month, self.day)
    }
}

impl fmt::Display for UtcDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl core::str::FromStr for UtcDate {
    type Err = crate::Error;

    /// Parses `YYYY-MM-DD` or `YYYYMMDD`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits: String = s.chars().filter(|c| *c != '-').collect();
        let ok_shape =
            (s.len() == 10 && s.as_bytes()[4] == b'-' && s.as_bytes()[7] == b'-') || s.len() == 8;
        if !ok_shape || digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(crate::Error::InvalidDate);
        }
        let year = digits[0..4]
            .parse()
            .map_err(|_| crate::Error::InvalidDate)?;
        let month = digits[4..6]
            .parse()
            .map_err(|_| crate::Error::InvalidDate)?;
        let day = digits[6..8]
            .parse()
            .map_err(|_| crate::Error::InvalidDate)?;
        Self::new(year, month, day).ok_or(crate::Error::InvalidDate)
    }
}

fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 0,
    }
}

/// The service start `T_ptsstart` and the epoch arithmetic built on it.
///
/// The start is a calendar date at 00:00 UTC (default 2020-06-01, NTP
/// 3 799 958 400), so UTC days align with multiples of 96 epochs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceStart {
    date: UtcDate,
    ntp: NtpSeconds,
}

impl Default for ServiceStart {
    fn default() -> Self {
        Self::REFERENCE
    }
}

impl ServiceStart {
    /// 2020-06-01, the start date of StopCovid and the reference default.
    pub const REFERENCE: Self = Self {
        date: UtcDate {
            year: 2020,
            month: 6,
            day: 1,
        },
        ntp: NtpSeconds(3_799_958_400),
    };

    /// A service starting at 00:00 UTC of `date`.
    pub fn new(date: UtcDate) -> Self {
        Self {
            date,
            ntp: date.midnight(),
        }
    }

    /// The start date.
    pub fn date(&self) -> UtcDate {
        self.date
    }

    /// The start instant in NTP seconds (the `timeStart` of `/register`).
    pub fn ntp(&self) -> NtpSeconds {
        self.ntp
    }

    /// The epoch containing `t`; instants before the start map to epoch 0.
    pub fn epoch_at(&self, t: NtpSeconds) -> Epoch {
        let e = t.0.saturating_sub(self.ntp.0) / EPOCH_DURATION_SECS;
        Epoch(u32::try_from(e).unwrap_or(u32::MAX))
    }

    /// Whether `t` is at or after the service start.
    pub fn has_started(&self, t: NtpSeconds) -> bool {
        t >= self.ntp
    }

    /// The first second of `epoch`.
    pub fn epoch_start(&self, epoch: Epoch) -> NtpSeconds {
        self.ntp.plus(u64::from(epoch.0) * EPOCH_DURATION_SECS)
    }

    /// The UTC date of an epoch's start: the day whose K_S encrypts its EBIDs.
    ///
    /// This is the develop branch's rule (plain UTC). The master branch used
    /// Europe/Paris dates for epochs below 960; we deliberately do not.
    pub fn day_of(&self, epoch: Epoch) -> UtcDate {
        self.date.add_days(i64::from(epoch.day_index()))
    }

    /// The first epoch of a UTC date (`None` before the start or past the epoch range).
    pub fn first_epoch_of(&self, date: UtcDate) -> Option<Epoch> {
        let days = date.days_since_unix_epoch() - self.date.days_since_unix_epoch();
        if days < 0 {
            return None;
        }
        u32::try_from(days)
            .ok()?
            .checked_mul(EPOCHS_PER_DAY)
            .map(Epoch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ntp(y: i32, mo: u8, d: u8, h: u64, mi: u64, s: u64) -> NtpSeconds {
        UtcDate::new(y, mo, d)
            .unwrap()
            .midnight()
            .plus(h * 3600 + mi * 60 + s)
    }

    #[test]
    fn reference_start_is_ntp_3799958400() {
        let start = UtcDate::new(2020, 6, 1).unwrap();
        assert_eq!(start.midnight(), NtpSeconds(3_799_958_400));
        assert_eq!(ServiceStart::new(start), ServiceStart::REFERENCE);
        assert_eq!(
            NtpSeconds::from_unix(1_590_969_600),
            NtpSeconds(3_799_958_400)
        );
    }

    /// TV-8 (RobertClockTest): start 2022-01-01.
    #[test]
    fn tv8_clock() {
        let s = ServiceStart::new(UtcDate::new(2022, 1, 1).unwrap());
        let rows = [
            (
                ntp(2022, 1, 1, 0, 0, 0),
                3_849_984_000u64,
                0u32,
                0xE57A_1800u32,
            ),
            (ntp(2022, 1, 1, 0, 14, 59), 3_849_984_899, 0, 0xE57A_1B83),
            (ntp(2022, 1, 1, 0, 15, 0), 3_849_984_900, 1, 0xE57A_1B84),
            (ntp(2022, 1, 1, 0, 29, 59), 3_849_985_799, 1, 0xE57A_1F07),
            (ntp(2022, 1, 1, 0, 30, 0), 3_849_985_800, 2, 0xE57A_1F08),
            (
                ntp(2022, 2, 15, 22, 43, 13),
                3_853_953_793,
                4410,
                0xE5B6_AB01,
            ),
        ];
        for (t, n, e, t32) in rows {
            assert_eq!(t.get(), n);
            assert_eq!(s.epoch_at(t), Epoch(e));
            assert_eq!(t.time32(), Time32(t32));
            assert_eq!(t.time32().to_ntp(), t);
        }
        assert_eq!(s.epoch_at(ntp(2022, 4, 23, 8, 30, 0)), Epoch(10786));
    }

    #[test]
    fn tv8_time16() {
        assert_eq!(ntp(2022, 4, 23, 8, 35, 12).time16(), Time16(14528));
        assert_eq!(ntp(1980, 1, 1, 0, 0, 0).time16(), Time16(9344));
        assert_eq!(ntp(2010, 5, 4, 12, 0, 30).time16(), Time16(35550));
    }

    #[test]
    fn tv5_epoch() {
        let t = ntp(2022, 4, 28, 9, 45, 0);
        assert_eq!(ServiceStart::REFERENCE.epoch_at(t), Epoch(66855));
        assert_eq!(
            ServiceStart::REFERENCE.day_of(Epoch(66855)),
            UtcDate::new(2022, 4, 28).unwrap()
        );
    }

    #[test]
    fn wrap_aware_tolerance() {
        assert!(Time16(10).within(Time16(65530), 180));
        assert_eq!(Time16(10).wrapping_distance(Time16(65530)), 16);
        assert!(Time16(1000).within(Time16(1180), 180));
        assert!(!Time16(1000).within(Time16(1181), 180));
        assert!(!Time16(0).within(Time16(32768), 180));
        assert_eq!(Time16(0).wrapping_distance(Time16(32768)), 32768);
    }

    #[test]
    fn dates_round_trip_and_parse() {
        for days in [-800_000i64, -1, 0, 1, 18_414, 20_000, 2_932_896] {
            let d = UtcDate::from_days_since_unix_epoch(days);
            assert_eq!(d.days_since_unix_epoch(), days);
        }
        assert_eq!(
            "2020-06-01".parse::<UtcDate>().unwrap(),
            UtcDate::new(2020, 6, 1).unwrap()
        );
        assert_eq!(
            "20200601".parse::<UtcDate>().unwrap(),
            UtcDate::new(2020, 6, 1).unwrap()
        );
        assert!("2020-02-30".parse::<UtcDate>().is_err());
        assert!("2020-6-1".parse::<UtcDate>().is_err());
        assert!("2020x06x01".parse::<UtcDate>().is_err());
        assert_eq!(UtcDate::new(2024, 2, 29).unwrap().compact(), "20240229");
    }

    #[test]
    fn first_epoch_of_a_day() {
        let s = ServiceStart::REFERENCE;
        assert_eq!(
            s.first_epoch_of(UtcDate::new(2020, 6, 2).unwrap()),
            Some(Epoch(96))
        );
        assert_eq!(s.first_epoch_of(UtcDate::new(2020, 5, 31).unwrap()), None);
    }
}
