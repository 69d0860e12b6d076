//! Business time: calendar arithmetic, parsing the `start` option and the
//! cached timestamp formatter (Python `isoformat()`, Debezium `ZonedTimestamp`).

use super::text::push_padded;
use anyhow::{bail, Context};

use crate::time::{civil_from_days, days_from_civil, DAY, SECOND};

/// Parse the `start` option: `YYYY-MM-DD[T ]HH:MM:SS[.f…][Z|±HH:MM]`.
pub(super) fn parse_start(s: &str) -> anyhow::Result<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> anyhow::Result<i64> {
        let part = s.get(r).context("start: too short")?;
        if part.is_empty() || !part.bytes().all(|c| c.is_ascii_digit()) {
            bail!("start: bad number in {s:?}");
        }
        Ok(part.parse()?)
    };
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b'T' || b[10] == b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        bail!("start must look like 2025-09-30T00:00:00Z, got {s:?}");
    }
    let (y, mo, d, h, mi, se) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 59 {
        bail!("start: out of range in {s:?}");
    }
    let mut i = 19;
    let mut frac_us = 0i64;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let mut digits = 0;
        while i < b.len() && b[i].is_ascii_digit() {
            if digits < 6 {
                frac_us = frac_us * 10 + (b[i] - b'0') as i64;
            }
            digits += 1;
            i += 1;
        }
        for _ in digits..6 {
            frac_us *= 10;
        }
    }
    let offset_us = match &s[i..] {
        "" | "Z" | "z" => 0,
        z if (z.starts_with('+') || z.starts_with('-')) && z.len() == 6 && &z[3..4] == ":" => {
            let hh: i64 = z[1..3].parse().context("start: bad zone")?;
            let mm: i64 = z[4..6].parse().context("start: bad zone")?;
            let off = (hh * 3600 + mm * 60) * SECOND;
            if z.starts_with('-') {
                -off
            } else {
                off
            }
        }
        z => bail!("start: bad zone {z:?}"),
    };
    let days = days_from_civil(y, mo as u32, d as u32);
    if civil_from_days(days) != (y, mo as u32, d as u32) {
        bail!("start: no such date in {s:?}");
    }
    Ok(days * DAY + ((h * 60 + mi) * 60 + se) * SECOND + frac_us - offset_us)
}

/// Formats `YYYY-MM-DDTHH:MM:SS`, caching the last second (time moves slowly).
pub(super) struct TsFmt {
    sec: i64,
    text: [u8; 19],
}

impl TsFmt {
    pub(super) fn new() -> Self {
        TsFmt {
            sec: i64::MIN,
            text: [0; 19],
        }
    }

    #[inline]
    fn base(&mut self, sec: i64) -> &[u8; 19] {
        if sec != self.sec {
            let days = sec.div_euclid(86_400);
            let rem = sec.rem_euclid(86_400);
            let (y, m, d) = civil_from_days(days);
            let mut v = Vec::with_capacity(19);
            push_padded(&mut v, y.max(0) as u64, 4);
            v.push(b'-');
            push_padded(&mut v, m as u64, 2);
            v.push(b'-');
            push_padded(&mut v, d as u64, 2);
            v.push(b'T');
            push_padded(&mut v, (rem / 3600) as u64, 2);
            v.push(b':');
            push_padded(&mut v, (rem / 60 % 60) as u64, 2);
            v.push(b':');
            push_padded(&mut v, (rem % 60) as u64, 2);
            self.text.copy_from_slice(&v[..19]);
            self.sec = sec;
        }
        &self.text
    }

    /// Python `datetime.isoformat()` of an aware UTC datetime:
    /// `2025-09-30T10:01:00.000100+00:00`, no fraction when it is zero.
    #[inline]
    pub(super) fn python(&mut self, buf: &mut Vec<u8>, us: i64) {
        let sec = us.div_euclid(SECOND);
        let frac = us.rem_euclid(SECOND);
        buf.extend_from_slice(self.base(sec));
        if frac != 0 {
            buf.push(b'.');
            push_padded(buf, frac as u64, 6);
        }
        buf.extend_from_slice(b"+00:00");
    }

    /// Debezium `ZonedTimestamp`: `2025-09-30T10:01:00.000100Z`, always 6 digits.
    #[inline]
    pub(super) fn zoned(&mut self, buf: &mut Vec<u8>, us: i64) {
        let sec = us.div_euclid(SECOND);
        let frac = us.rem_euclid(SECOND);
        buf.extend_from_slice(self.base(sec));
        buf.push(b'.');
        push_padded(buf, frac as u64, 6);
        buf.push(b'Z');
    }
}
