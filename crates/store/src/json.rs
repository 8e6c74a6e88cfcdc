//! The contract's JSON written by hand where it is hot: the `message.added` events of a sync
//! (messages.rs) and the messages the API reads (api.rs). Both must equal what
//! `flagpost_message_json()` (migration 0002) builds for the same row; the store's tests compare
//! them on odd values.

use chrono::{DateTime, Utc};

/// Writes a JSON string (or `null`).
pub(crate) fn json_str(out: &mut String, s: Option<&str>) {
    match s {
        None => out.push_str("null"),
        Some(s) => {
            out.push('"');
            for c in s.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                    c => out.push(c),
                }
            }
            out.push('"');
        }
    }
}

/// The microsecond PostgreSQL stores for `t` (sqlx truncates toward its 2000-01-01 epoch).
pub(crate) fn pg_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    let epoch = DateTime::<Utc>::from_timestamp(946_684_800, 0).expect("valid");
    match (t - epoch).num_microseconds() {
        Some(us) => epoch + chrono::Duration::microseconds(us),
        None => t,
    }
}

/// Writes `flagpost_time(t)` as JSON: `"YYYY-MM-DDTHH:MM:SS.ffffffZ"` in UTC (or `null`), with
/// the year as `to_char(…, 'YYYY')` spells it.
pub(crate) fn json_time(out: &mut String, t: Option<DateTime<Utc>>) {
    use chrono::{Datelike, Timelike};
    use std::fmt::Write;
    let Some(t) = t else {
        out.push_str("null");
        return;
    };
    let year = if t.year() <= 0 {
        1 - t.year()
    } else {
        t.year()
    };
    let _ = write!(
        out,
        "\"{year:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z\"",
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond() / 1000 % 1_000_000,
    );
}
