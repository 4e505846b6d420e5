//! Time and table formatting shared by the commands.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, Unix ms, from the wall clock.
pub(crate) fn unix_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `2026-12-03 12:34:56 UTC`.
pub(crate) fn utc(secs: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .map_or_else(|| format!("{secs} (Unix)"), |t| format!("{t} UTC"))
}

/// The same instant in this machine's time zone (`TZ`, `/etc/localtime`), with its
/// offset: `2026-12-03 13:34:56 +01:00`.
pub(crate) fn local(secs: i64) -> String {
    // localtime_r is thread-safe (unlike the time crate's local offset, which refuses in a
    // multi-threaded process such as a Python interpreter).
    // time_t is i64 here (irrefutable) but 32 bits on some targets.
    #[allow(irrefutable_let_patterns)]
    let Ok(t) = libc::time_t::try_from(secs) else {
        return utc(secs);
    };
    // SAFETY: `tm` is plain data; localtime_r writes it fully on success and only reads `t`.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return utc(secs);
    }
    let offset_min = tm.tm_gmtoff / 60;
    let sign = if offset_min < 0 { '-' } else { '+' };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} {sign}{:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        offset_min.abs() / 60,
        offset_min.abs() % 60
    )
}

/// `2026-12-03 12:34:56 UTC / 13:34:56 +01:00 local`.
pub(crate) fn utc_and_local(secs: i64) -> String {
    format!("{} / {} local", utc(secs), local(secs))
}

/// A duration from now: `in 14 min`, `3 min ago`, `in 45 s`, `in 2 h 5 min`.
pub(crate) fn relative(ms: i64) -> String {
    let span = span(ms.unsigned_abs());
    if ms >= 0 {
        format!("in {span}")
    } else {
        format!("{span} ago")
    }
}

/// A duration in ms, rounded to the second: `45 s`, `14 min`, `2 h 5 min`, `3 days`.
pub(crate) fn span(ms: u64) -> String {
    let secs = ms.saturating_add(500) / 1000;
    match secs {
        0..60 => format!("{secs} s"),
        60..5400 => format!("{} min", secs / 60),
        5400..172_800 => format!("{} h {} min", secs / 3600, secs % 3600 / 60),
        _ => format!("{} days", secs / 86_400),
    }
}

/// Left-aligned columns: each row padded to the widest cell of its column.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                let pad = widths[i].saturating_sub(cell.chars().count());
                out.push_str(cell);
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        out.trim_end().to_owned() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_like_a_person_would_say_them() {
        assert_eq!(relative(45_000), "in 45 s");
        assert_eq!(relative(14 * 60_000 + 29_000), "in 14 min");
        assert_eq!(relative(-179_600), "3 min ago");
        assert_eq!(relative(2 * 3_600_000 + 5 * 60_000), "in 2 h 5 min");
        assert_eq!(relative(3 * 86_400_000), "in 3 days");
    }

    #[test]
    fn utc_is_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
    }

    #[test]
    fn columns_line_up() {
        let text = table(&["A", "BB"], &[vec!["xxx".into(), "y".into()]]);
        assert_eq!(text, "A    BB\nxxx  y\n");
    }
}
