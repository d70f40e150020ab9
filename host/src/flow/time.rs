//! Flow timestamps: nanoseconds since the Unix epoch, written and read as
//! RFC 3339 (`2026-11-29T05:00:35.123456789Z`) without a calendar
//! dependency.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An instant, in nanoseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub u64);

impl Timestamp {
    pub fn now() -> Timestamp {
        Timestamp::from(SystemTime::now())
    }

    /// Calendar date and time of day (UTC): (year, month, day), (hour,
    /// minute, second), nanoseconds.
    pub fn civil(self) -> ((i64, u32, u32), (u32, u32, u32), u32) {
        let (secs, nanos) = (self.0 / 1_000_000_000, (self.0 % 1_000_000_000) as u32);
        let (days, seconds) = (secs / 86_400, (secs % 86_400) as u32);
        (civil_from_days(days as i64), (seconds / 3600, seconds / 60 % 60, seconds % 60), nanos)
    }

    /// `self - duration`, clamped at the epoch.
    pub fn before(self, duration: Duration) -> Timestamp {
        Timestamp(self.0.saturating_sub(duration.as_nanos().min(u128::from(u64::MAX)) as u64))
    }
}

impl From<SystemTime> for Timestamp {
    fn from(time: SystemTime) -> Timestamp {
        let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
        Timestamp(since.as_nanos().min(u128::from(u64::MAX)) as u64)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ((year, month, day), (hour, minute, second), nanos) = self.civil();
        write!(f, "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{nanos:09}Z")
    }
}

impl FromStr for Timestamp {
    type Err = String;

    /// RFC 3339: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`.
    fn from_str(s: &str) -> Result<Timestamp, String> {
        let bad = || format!("`{s}` is not an RFC 3339 time (like 2026-11-29T12:00:00Z)");
        let number = |range: std::ops::Range<usize>| -> Result<i64, String> {
            let digits = s.get(range).ok_or_else(bad)?;
            if !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            digits.parse().map_err(|_| bad())
        };
        let separators = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
        if s.len() < 20 || separators.iter().any(|&(i, c)| s.as_bytes()[i] != c) {
            return Err(bad());
        }
        if !matches!(s.as_bytes()[10], b'T' | b't' | b' ') {
            return Err(bad());
        }
        let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
        let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
        if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
            return Err(bad());
        }
        let mut rest = &s[19..];
        let mut nanos = 0i64;
        if let Some(fraction) = rest.strip_prefix('.') {
            let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(bad());
            }
            for (i, b) in fraction.bytes().take(digits).enumerate() {
                if i < 9 {
                    nanos += i64::from(b - b'0') * 10i64.pow(8 - i as u32);
                }
            }
            rest = &fraction[digits..];
        }
        let offset = match rest {
            "Z" | "z" => 0,
            _ if rest.len() == 6 && rest.as_bytes()[3] == b':' => {
                let sign = match rest.as_bytes()[0] {
                    b'+' => 1,
                    b'-' => -1,
                    _ => return Err(bad()),
                };
                let (h, m) = (number(s.len() - 5..s.len() - 3)?, number(s.len() - 2..s.len())?);
                sign * (h * 3600 + m * 60)
            }
            _ => return Err(bad()),
        };
        let days = days_from_civil(year, month as u32, day as u32);
        let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
        if secs < 0 {
            return Err(format!("`{s}` is before 1970"));
        }
        Ok(Timestamp(secs as u64 * 1_000_000_000 + nanos as u64))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Timestamp, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// Its inverse: days since 1970-01-01.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = i64::from(if month > 2 { month - 3 } else { month + 9 });
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        let at = |time: SystemTime| Timestamp::from(time).to_string();
        assert_eq!(at(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
        let leap = UNIX_EPOCH + Duration::new(951_782_400 + 3_723, 5);
        assert_eq!(at(leap), "2000-02-29T01:02:03.000000005Z");
        assert_eq!(at(UNIX_EPOCH + Duration::from_secs(1_796_000_000)), "2026-11-30T00:53:20.000000000Z");
    }

    #[test]
    fn parses_what_it_writes_and_offsets() {
        for nanos in [0, 951_782_400_000_000_005, 1_796_000_000_123_456_789] {
            let time = Timestamp(nanos);
            assert_eq!(time.to_string().parse::<Timestamp>(), Ok(time));
        }
        let utc: Timestamp = "2026-11-29T12:00:00Z".parse().unwrap();
        assert_eq!("2026-11-29T13:30:00+01:30".parse::<Timestamp>(), Ok(utc));
        assert_eq!("2026-11-29T12:00:00.5Z".parse::<Timestamp>(), Ok(Timestamp(utc.0 + 500_000_000)));
        for bad in ["", "2026-11-29", "2026-13-01T00:00:00Z", "2026-11-29T12:00:00", "2026-11-29T12:00:00.Z"]
        {
            assert!(bad.parse::<Timestamp>().is_err(), "{bad}");
        }
    }
}
