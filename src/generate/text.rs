//! Allocation-free number formatting into byte buffers.

#[inline]
pub(super) fn push_u64(buf: &mut Vec<u8>, mut v: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

#[inline]
pub(super) fn push_i64(buf: &mut Vec<u8>, v: i64) {
    if v < 0 {
        buf.push(b'-');
        push_u64(buf, v.unsigned_abs());
    } else {
        push_u64(buf, v as u64);
    }
}

#[inline]
pub(super) fn push_padded(buf: &mut Vec<u8>, v: u64, width: usize) {
    let mut tmp = [b'0'; 20];
    let mut i = tmp.len();
    let mut v = v;
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let start = (tmp.len() - width).min(i);
    buf.extend_from_slice(&tmp[start..]);
}

/// Cents as Python's `repr(float)` would print `cents / 100` (`12.3`, `12.0`).
pub(super) fn push_cents(buf: &mut Vec<u8>, cents: u64) {
    push_u64(buf, cents / 100);
    buf.push(b'.');
    let c = cents % 100;
    if c.is_multiple_of(10) {
        buf.push(b'0' + (c / 10) as u8);
    } else {
        buf.push(b'0' + (c / 10) as u8);
        buf.push(b'0' + (c % 10) as u8);
    }
}
