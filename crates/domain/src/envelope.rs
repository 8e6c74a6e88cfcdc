//! Display text and dates from IMAP ENVELOPE and INTERNALDATE data.
//!
//! This module owns turning the raw bytes a server hands back for a message's envelope
//! (RFC 3501 §7.4.2) into values that are safe to store and show:
//!
//! - header text (a subject, an address display name) with RFC 2047 encoded words decoded,
//!   including RFC 2231 §5 language suffixes on the charset, folding undone (RFC 5322 §2.2.3),
//!   control characters removed and the length capped;
//! - `mailbox@host` address strings from an ENVELOPE address structure;
//! - the IMAP INTERNALDATE `date-time` (RFC 3501 §9) and the RFC 5322 §3.3 `Date:` header,
//!   the latter with the obsolete forms of RFC 5322 §4.3 accepted.
//!
//! Everything here is pure and total: malformed input yields literal text or `None`, never a
//! panic, and every function runs in time linear in its input.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use encoding_rs::{Encoding, REPLACEMENT, WINDOWS_1252};

/// The most characters [`decode_header_text`] keeps (an `…` is appended when it cuts).
pub const MAX_TEXT_CHARS: usize = 1000;

/// The most characters [`address_text`] keeps (an `…` is appended when it cuts).
pub const MAX_ADDRESS_CHARS: usize = 320;

/// The mark appended to text that was cut short.
const ELLIPSIS: char = '…';

/// The longest charset name accepted in an encoded word; bounds the work spent on a false `=?`.
const MAX_CHARSET_LEN: usize = 64;

/// Base64 as found in the wild in `B` encoded words: padding optional, stray trailing bits
/// tolerated.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Decodes a raw header value (an ENVELOPE subject or address display name) into display text.
///
/// RFC 2047 encoded words (`=?charset?B?…?=` / `=?charset?Q?…?=`, any case, charset optionally
/// carrying an RFC 2231 `*language` suffix) are decoded with any charset `encoding_rs` knows;
/// whitespace between adjacent encoded words is dropped (RFC 2047 §6.2), and adjacent words in
/// the same charset are decoded together so a character split across them survives. An encoded
/// word that is malformed or names an unknown charset is kept as its literal text.
///
/// Bytes outside encoded words are UTF-8 when the whole input is valid UTF-8, windows-1252
/// otherwise. The result is then cleaned as by [`clean_text`] with [`MAX_TEXT_CHARS`].
pub fn decode_header_text(raw: &[u8]) -> String {
    let literal_is_utf8 = std::str::from_utf8(raw).is_ok();
    let mut out = Decoded::new(literal_is_utf8, raw.len());
    let mut literal_start = 0;
    let mut after_word = false;
    let mut search = 0;
    while let Some(start) = find_word_start(raw, search) {
        let Some(word) = parse_encoded_word(raw, start) else {
            search = start + 1;
            continue;
        };
        let between = &raw[literal_start..start];
        if !(after_word && between.iter().all(|&b| is_folding_space(b))) {
            out.push_literal(between);
        }
        out.push_word(word.encoding, word.bytes);
        literal_start = word.end;
        search = word.end;
        after_word = true;
    }
    out.push_literal(&raw[literal_start..]);
    clean_str(&out.finish(), MAX_TEXT_CHARS)
}

/// Sanitises raw header bytes into at most `max_chars` characters of display text.
///
/// The bytes are read as UTF-8 when valid, otherwise as windows-1252 (which maps every byte).
/// Each line break (CR or LF) together with the whitespace after it becomes a single space, tab
/// becomes a space, every other control character (C0, DEL, C1) is removed, and the result is
/// trimmed. Text longer than `max_chars` characters is cut on a character boundary and `…` is
/// appended. Used for decoded subjects, and on its own for values such as a Message-ID (998).
pub fn clean_text(raw: &[u8], max_chars: usize) -> String {
    match std::str::from_utf8(raw) {
        Ok(text) => clean_str(text, max_chars),
        Err(_) => clean_str(&WINDOWS_1252.decode_without_bom_handling(raw).0, max_chars),
    }
}

/// Joins an ENVELOPE address's mailbox and host parts into `mailbox@host`.
///
/// Each part is decoded from UTF-8 lossily, stripped of control characters and trimmed. Returns
/// just the mailbox when the host is missing or empty (as for RFC 3501 group markers), and
/// `None` when the mailbox is missing or empty. The result is capped at [`MAX_ADDRESS_CHARS`]
/// characters, with `…` appended when cut.
pub fn address_text(mailbox: Option<&[u8]>, host: Option<&[u8]>) -> Option<String> {
    let mailbox = address_part(mailbox?);
    if mailbox.is_empty() {
        return None;
    }
    let host = host.map(address_part).unwrap_or_default();
    let joined = if host.is_empty() {
        mailbox
    } else {
        format!("{mailbox}@{host}")
    };
    Some(truncate_chars(&joined, MAX_ADDRESS_CHARS))
}

/// Parses an IMAP INTERNALDATE (RFC 3501 `date-time`), such as `"26-Nov-2026 17:39:04 +0000"`.
///
/// Surrounding double quotes are optional, the day may be one digit or space-padded
/// (`" 6-Nov-2026"`), and the month name is matched case-insensitively. The zone must be a
/// numeric `+hhmm`/`-hhmm`; the instant is returned in UTC.
pub fn parse_internaldate(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    let s = s.strip_prefix('"').unwrap_or(s);
    let s = s.strip_suffix('"').unwrap_or(s).trim();
    let mut fields = s.split_ascii_whitespace();
    let (date, time, zone) = (fields.next()?, fields.next()?, fields.next()?);
    if fields.next().is_some() {
        return None;
    }
    let mut date_parts = date.split('-');
    let day = digits(date_parts.next()?, 1, 2)?;
    let month = month_number(date_parts.next()?)?;
    let year = digits(date_parts.next()?, 4, 4)?;
    if date_parts.next().is_some() {
        return None;
    }
    let (hour, minute, second) = parse_time(time)?;
    let offset = numeric_zone(zone)?;
    to_utc(year, month, day, (hour, minute, second?), offset)
}

/// Parses an RFC 5322 `Date:` header value tolerantly.
///
/// Accepts the RFC 5322 §3.3 form (`Tue, 1 Jul 2003 10:52:37 +0200`) and the obsolete forms
/// of §4.3: the day of week may be missing (and is not checked), years may have two digits
/// (00–49 → 20xx, 50–99 → 19xx) or three (+1900), seconds may be missing, and zones may be
/// `UT`/`GMT`/`UTC`, the North American names (`EST` = -0500 … `PDT` = -0700) or military
/// letters (read as +0000, as §4.3 advises); other alphabetic zones also count as +0000.
/// Comments such as `(UTC)`, extra whitespace, `dd-Mon-yyyy` dates and the asctime order
/// (`Wed Jun 30 21:49:08 1993`) are tolerated. Returns `None` for anything else, and for a year
/// before 1970 or after 9999.
pub fn parse_header_date(raw: &[u8]) -> Option<DateTime<Utc>> {
    let text = String::from_utf8_lossy(raw);
    let text = strip_comments(&text);
    let mut fields = DateFields::default();
    for piece in text
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|p| !p.is_empty())
    {
        fields.accept_piece(piece)?;
    }
    fields.finish()
}

// ---------------------------------------------------------------------------------------------
// RFC 2047 encoded words

/// One successfully parsed encoded word.
struct EncodedWord {
    encoding: &'static Encoding,
    bytes: Vec<u8>,
    /// Index just past the closing `?=`.
    end: usize,
}

/// Accumulates decoded header text, holding back the bytes of consecutive encoded words in one
/// charset so they are decoded together.
struct Decoded {
    text: String,
    literal_is_utf8: bool,
    pending: Option<(&'static Encoding, Vec<u8>)>,
}

impl Decoded {
    fn new(literal_is_utf8: bool, capacity: usize) -> Self {
        Decoded {
            text: String::with_capacity(capacity),
            literal_is_utf8,
            pending: None,
        }
    }

    fn flush(&mut self) {
        if let Some((encoding, bytes)) = self.pending.take() {
            self.text
                .push_str(&encoding.decode_without_bom_handling(&bytes).0);
        }
    }

    fn push_literal(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.flush();
        if self.literal_is_utf8 {
            self.text.push_str(&String::from_utf8_lossy(bytes));
        } else {
            self.text
                .push_str(&WINDOWS_1252.decode_without_bom_handling(bytes).0);
        }
    }

    fn push_word(&mut self, encoding: &'static Encoding, bytes: Vec<u8>) {
        match &mut self.pending {
            Some((pending_encoding, pending)) if *pending_encoding == encoding => {
                pending.extend_from_slice(&bytes);
            }
            _ => {
                self.flush();
                self.pending = Some((encoding, bytes));
            }
        }
    }

    fn finish(mut self) -> String {
        self.flush();
        self.text
    }
}

/// Finds the next `=?` at or after `from`.
fn find_word_start(raw: &[u8], from: usize) -> Option<usize> {
    raw.get(from..)?
        .windows(2)
        .position(|w| w == b"=?")
        .map(|p| from + p)
}

/// Whitespace that may separate (or fold between) two encoded words.
fn is_folding_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Parses the encoded word starting at `raw[start..]` (which begins with `=?`).
///
/// Returns `None` for anything malformed or in an unknown charset; the caller then keeps the
/// text literally. Scans at most [`MAX_CHARSET_LEN`] bytes of charset and then stops at the
/// first `?` or non-printable byte of the encoded text, so a failed attempt costs little.
fn parse_encoded_word(raw: &[u8], start: usize) -> Option<EncodedWord> {
    let rest = raw.get(start + 2..)?;
    let charset_len = rest
        .iter()
        .take(MAX_CHARSET_LEN + 1)
        .position(|&b| b == b'?')?;
    let charset = &rest[..charset_len];
    if charset.is_empty() || !charset.iter().all(|&b| b.is_ascii_graphic()) {
        return None;
    }
    let rest = &rest[charset_len + 1..];
    let (&scheme, rest) = rest.split_first()?;
    let rest = rest.strip_prefix(b"?")?;
    let text_len = rest
        .iter()
        .position(|&b| b == b'?' || !b.is_ascii_graphic())?;
    if rest.get(text_len..text_len + 2) != Some(b"?=") {
        return None;
    }
    let text = &rest[..text_len];
    let encoding = charset_encoding(charset)?;
    let bytes = match scheme.to_ascii_uppercase() {
        b'B' => LENIENT_BASE64.decode(text).ok()?,
        b'Q' => decode_q(text),
        _ => return None,
    };
    // `=?` + charset + `?` + scheme + `?` + text + `?=`
    let end = start + 2 + charset_len + 1 + 2 + text_len + 2;
    Some(EncodedWord {
        encoding,
        bytes,
        end,
    })
}

/// Looks up an encoded word's charset, ignoring an RFC 2231 `*language` suffix.
fn charset_encoding(charset: &[u8]) -> Option<&'static Encoding> {
    let name = charset.split(|&b| b == b'*').next()?;
    let encoding = Encoding::for_label(name)?;
    // Labels mapped to the WHATWG "replacement" encoding would decode to a lone U+FFFD.
    (encoding != REPLACEMENT).then_some(encoding)
}

/// Decodes RFC 2047 §4.2 `Q` text: `_` is a space, `=XX` a hex byte; a stray `=` stays as-is.
fn decode_q(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'_' => out.push(b' '),
            b'=' => {
                let hex = text
                    .get(i + 1..i + 3)
                    .and_then(|h| Some((hex_value(h[0])? << 4) | hex_value(h[1])?));
                match hex {
                    Some(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    None => out.push(b'='),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    out
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Sanitising

/// The cleaning half of [`clean_text`], for text already decoded.
fn clean_str(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' | '\n' => {
                while chars
                    .next_if(|&n| matches!(n, ' ' | '\t' | '\r' | '\n'))
                    .is_some()
                {}
                out.push(' ');
            }
            '\t' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    truncate_chars(out.trim(), max_chars)
}

/// One part of an ENVELOPE address: lossy UTF-8, no control characters, trimmed.
fn address_part(raw: &[u8]) -> String {
    let text: String = String::from_utf8_lossy(raw)
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    text.trim().to_owned()
}

/// Cuts `text` to `max_chars` characters, appending `…` (after trailing whitespace) when cut.
fn truncate_chars(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        None => text.to_owned(),
        Some((cut, _)) => {
            let mut out = text[..cut].trim_end().to_owned();
            out.push(ELLIPSIS);
            out
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Dates

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

const WEEKDAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// Whether `word` (lowercase) abbreviates `full` to at least three letters (`jul`, `sept`).
fn abbreviates(word: &str, full: &str) -> bool {
    word.len() >= 3 && full.starts_with(word)
}

/// The month number (1–12) of a month name or its abbreviation, any case.
fn month_number(name: &str) -> Option<u32> {
    let name = name.to_ascii_lowercase();
    MONTHS
        .iter()
        .position(|full| abbreviates(&name, full))
        .map(|i| i as u32 + 1)
}

fn is_weekday(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    WEEKDAYS.iter().any(|full| abbreviates(&name, full))
}

/// The offset in seconds east of UTC of an alphabetic zone, per RFC 5322 §4.3.
fn named_zone(name: &str) -> Option<i64> {
    let hours = match name.to_ascii_uppercase().as_str() {
        "UT" | "UTC" | "GMT" | "Z" => 0,
        "EDT" => -4,
        "EST" | "CDT" => -5,
        "CST" | "MDT" => -6,
        "MST" | "PDT" => -7,
        "PST" => -8,
        // Military zones: RFC 822 got their signs wrong, so RFC 5322 §4.3 says read +0000.
        n if n.len() == 1 => 0,
        _ => return None,
    };
    Some(hours * 3600)
}

/// Parses `digits` of `min..=max` ASCII digits.
fn digits(s: &str, min: usize, max: usize) -> Option<u32> {
    if s.len() < min || s.len() > max || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses `hh:mm[:ss]`; the seconds are `None` when absent. A leap second reads as `:59`.
fn parse_time(s: &str) -> Option<(u32, u32, Option<u32>)> {
    let mut parts = s.split(':');
    let hour = digits(parts.next()?, 1, 2)?;
    let minute = digits(parts.next()?, 1, 2)?;
    let second = match parts.next() {
        Some(p) => Some(digits(p, 1, 2)?),
        None => None,
    };
    if parts.next().is_some() || hour > 23 || minute > 59 || second.is_some_and(|s| s > 60) {
        return None;
    }
    Some((hour, minute, second.map(|s| s.min(59))))
}

/// Parses a numeric zone `+hhmm` / `-hhmm` (also `+hh:mm`) into seconds east of UTC.
fn numeric_zone(s: &str) -> Option<i64> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let (hh, mm) = match rest.split_once(':') {
        Some((hh, mm)) => (hh, mm),
        None if rest.len() == 4 => rest.split_at(2),
        None => return None,
    };
    let hours = i64::from(digits(hh, 2, 2)?);
    let minutes = i64::from(digits(mm, 2, 2)?);
    if hours > 23 || minutes > 59 {
        return None;
    }
    Some(sign * (hours * 3600 + minutes * 60))
}

/// Builds the UTC instant of a local date and time at `offset` seconds east of UTC.
fn to_utc(
    year: u32,
    month: u32,
    day: u32,
    (hour, minute, second): (u32, u32, u32),
    offset: i64,
) -> Option<DateTime<Utc>> {
    let local = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?
        .and_hms_opt(hour, minute, second)?;
    Some(
        local
            .checked_sub_signed(TimeDelta::try_seconds(offset)?)?
            .and_utc(),
    )
}

/// Removes RFC 5322 comments (nested parentheses, with `\` quoting), leaving a space each.
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut depth = 0usize;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '(' => depth += 1,
            ')' if depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    out.push(' ');
                }
            }
            '\\' if depth > 0 => {
                chars.next();
            }
            c if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// The pieces of a `Date:` value found so far, in whatever order they came.
#[derive(Debug, Default)]
struct DateFields {
    day: Option<u32>,
    month: Option<u32>,
    /// The year as written, and how many digits it had.
    year: Option<(u32, usize)>,
    time: Option<(u32, u32, u32)>,
    zone: Option<Zone>,
}

#[derive(Debug, Clone, Copy)]
enum Zone {
    Numeric(i64),
    Named(i64),
}

impl DateFields {
    /// Takes one whitespace/comma-separated piece; `None` means the value is not a date.
    fn accept_piece(&mut self, piece: &str) -> Option<()> {
        if piece.starts_with(['+', '-']) {
            return self.set_numeric_zone(piece);
        }
        // `10:52:37+0200` or `GMT+0200`: a time or zone name glued to a numeric zone.
        if let Some(sign) = piece.find(['+', '-']) {
            let (head, zone) = piece.split_at(sign);
            if head.contains(':') || (head.len() > 1 && named_zone(head).is_some()) {
                self.accept_word(head)?;
                return self.set_numeric_zone(zone);
            }
            // `1-Jul-2003`
            for part in piece.split('-').filter(|p| !p.is_empty()) {
                self.accept_word(part)?;
            }
            return Some(());
        }
        self.accept_word(piece)
    }

    fn accept_word(&mut self, word: &str) -> Option<()> {
        if word.contains(':') {
            let (hour, minute, second) = parse_time(word)?;
            return set_once(&mut self.time, (hour, minute, second.unwrap_or(0)));
        }
        if word.bytes().all(|b| b.is_ascii_digit()) {
            let value = digits(word, 1, 4)?;
            return if word.len() >= 3 {
                set_once(&mut self.year, (value, word.len()))
            } else if self.day.is_none() {
                set_once(&mut self.day, value)
            } else {
                set_once(&mut self.year, (value, word.len()))
            };
        }
        if !word.bytes().all(|b| b.is_ascii_alphabetic()) {
            return None;
        }
        if let Some(month) = month_number(word) {
            return set_once(&mut self.month, month);
        }
        if is_weekday(word) {
            return Some(());
        }
        // Only after the time is a word a zone, so that prose is not mistaken for a date.
        self.time?;
        let offset = match named_zone(word) {
            Some(offset) => offset,
            // RFC 5322 §4.3: an unknown alphabetic zone counts as -0000.
            None if (3..=5).contains(&word.len()) => 0,
            None => return None,
        };
        if self.zone.is_none() {
            self.zone = Some(Zone::Named(offset));
        }
        Some(())
    }

    fn set_numeric_zone(&mut self, s: &str) -> Option<()> {
        let offset = numeric_zone(s)?;
        match self.zone {
            Some(Zone::Numeric(_)) => None,
            _ => {
                self.zone = Some(Zone::Numeric(offset));
                Some(())
            }
        }
    }

    fn finish(self) -> Option<DateTime<Utc>> {
        let (year, year_digits) = self.year?;
        let year = match year_digits {
            1 | 2 if year < 50 => 2000 + year,
            1 | 2 => 1900 + year,
            3 => 1900 + year,
            _ => year,
        };
        if !(1970..=9999).contains(&year) {
            return None;
        }
        let offset = match self.zone {
            Some(Zone::Numeric(offset) | Zone::Named(offset)) => offset,
            None => 0,
        };
        to_utc(year, self.month?, self.day?, self.time?, offset)
    }
}

/// Stores `value` in an empty slot; a second value for the same slot is an error.
fn set_once<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    match slot {
        Some(_) => None,
        None => {
            *slot = Some(value);
            Some(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).single().unwrap()
    }

    fn check_decoding(cases: &[(&[u8], &str)]) {
        for &(raw, want) in cases {
            assert_eq!(
                decode_header_text(raw),
                want,
                "raw {:?}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn plain_ascii_passes_through_unchanged() {
        check_decoding(&[
            (
                b"Printer on floor 3 is jammed",
                "Printer on floor 3 is jammed",
            ),
            (b"Re: [#123] a = b? maybe", "Re: [#123] a = b? maybe"),
            (b"", ""),
            (b"=?", "=?"),
        ]);
    }

    #[test]
    fn decodes_utf8_b_and_q_words() {
        check_decoding(&[
            (
                b"=?UTF-8?B?R3LDvMOfZSBhdXMgS8O2bG4=?=",
                "Gr\u{fc}\u{df}e aus K\u{f6}ln",
            ),
            (
                b"=?utf-8?Q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=",
                "Grüße aus Köln",
            ),
            // Base64 without its padding is common in the wild.
            (b"=?UTF-8?B?R3LDvMOfZSBhdXMgS8O2bG4?=", "Grüße aus Köln"),
        ]);
    }

    #[test]
    fn decodes_legacy_charsets() {
        check_decoding(&[
            (b"=?ISO-8859-1?Q?Caf=E9_cr=E8me?=", "Café crème"),
            (b"=?windows-1252?Q?=80_5_=96_paid?=", "€ 5 – paid"),
            (b"=?Shift_JIS?B?k/qWe4zqgsyMj5a8?=", "日本語の件名"),
            (b"=?GB2312?B?1tDOxNPKvP4=?=", "中文邮件"),
            (b"=?ISO-2022-JP?B?GyRCJUElMSVDJUgbKEI=?=", "チケット"),
        ]);
    }

    #[test]
    fn lowercase_b_and_q_markers_are_accepted() {
        check_decoding(&[
            (b"=?utf-8?b?w6k=?=", "é"),
            (b"=?iso-8859-1?q?=E9t=E9?=", "été"),
        ]);
    }

    #[test]
    fn rfc_2047_section_8_whitespace_rules() {
        check_decoding(&[
            (b"(=?ISO-8859-1?Q?a?=)", "(a)"),
            (b"(=?ISO-8859-1?Q?a?= b)", "(a b)"),
            (b"(=?ISO-8859-1?Q?a?= =?ISO-8859-1?Q?b?=)", "(ab)"),
            (b"(=?ISO-8859-1?Q?a?=  =?ISO-8859-1?Q?b?=)", "(ab)"),
            (b"(=?ISO-8859-1?Q?a?=\r\n    =?ISO-8859-1?Q?b?=)", "(ab)"),
            (b"(=?ISO-8859-1?Q?a_b?=)", "(a b)"),
            (b"(=?ISO-8859-1?Q?a?= =?ISO-8859-2?Q?_b?=)", "(a b)"),
        ]);
    }

    #[test]
    fn adjacent_encoded_words_are_joined() {
        check_decoding(&[
            (b"=?UTF-8?Q?Hello?= =?UTF-8?Q?World?=", "HelloWorld"),
            (b"=?UTF-8?Q?Hello_?=\r\n =?UTF-8?Q?World?=", "Hello World"),
            (b"=?UTF-8?Q?a?==?UTF-8?Q?b?=", "ab"),
            // One character split across two words (not allowed, but sent) still decodes.
            (b"=?UTF-8?B?ww==?= =?UTF-8?B?qQ==?=", "é"),
        ]);
    }

    #[test]
    fn encoded_word_next_to_plain_text_keeps_the_space() {
        check_decoding(&[
            (b"Re: =?UTF-8?Q?Caf=C3=A9?= order", "Re: Café order"),
            (b"=?UTF-8?Q?Caf=C3=A9?= =?bogus", "Café =?bogus"),
            (b"[ticket]=?UTF-8?Q?=C3=A9?=", "[ticket]é"),
        ]);
    }

    #[test]
    fn rfc_2231_language_suffix_is_ignored() {
        check_decoding(&[
            (b"=?US-ASCII*EN?Q?Keith_Moore?=", "Keith Moore"),
            (b"=?utf-8*de?B?w6k=?=", "é"),
        ]);
    }

    #[test]
    fn unknown_charset_is_kept_literally() {
        check_decoding(&[
            (b"=?x-klingon?Q?Qapla=27?=", "=?x-klingon?Q?Qapla=27?="),
            (
                b"a =?unknown-8bit?B?w6k=?= b",
                "a =?unknown-8bit?B?w6k=?= b",
            ),
            (b"=?ISO-2022-KR?B?w6k=?=", "=?ISO-2022-KR?B?w6k=?="),
        ]);
    }

    #[test]
    fn broken_encoded_words_do_not_panic_and_stay_readable() {
        check_decoding(&[
            (b"=?UTF-8?B?***?=", "=?UTF-8?B?***?="),
            (b"=?UTF-8?B?w6k", "=?UTF-8?B?w6k"),
            (b"Hello =?UTF-8?Q?W=C3=B6rld", "Hello =?UTF-8?Q?W=C3=B6rld"),
            (b"=?UTF-8?X?abc?=", "=?UTF-8?X?abc?="),
            (b"=??Q?abc?=", "=??Q?abc?="),
            (b"=?UTF-8?Q?a b?=", "=?UTF-8?Q?a b?="),
            (b"=?UTF-8?Q??=", ""),
            // Bad Q escapes stay as written; bytes invalid in the charset become U+FFFD.
            (b"=?UTF-8?Q?100=ZZ=4?=", "100=ZZ=4"),
            (b"=?UTF-8?Q?bad=FFbyte?=", "bad\u{fffd}byte"),
            (b"=?UTF-8?B?/w==?=", "\u{fffd}"),
            (b"=?=?=?=?=?=?", "=?=?=?=?=?=?"),
        ]);
    }

    #[test]
    fn raw_eight_bit_text_is_utf8_or_windows_1252() {
        check_decoding(&[
            ("Grüße".as_bytes(), "Grüße"),
            (b"Caf\xe9 cr\xe8me", "Café crème"),
            (b"\x93quoted\x94 \x80", "\u{201c}quoted\u{201d} €"),
            // Latin-1 outside, UTF-8 inside an encoded word.
            (b"Caf\xe9 =?UTF-8?Q?=C3=A9?=", "Café é"),
        ]);
    }

    #[test]
    fn folded_lines_are_unfolded() {
        check_decoding(&[
            (b"Printer\r\n jammed", "Printer jammed"),
            (b"Printer\r\n\t  jammed", "Printer jammed"),
            (b"Printer\n jammed\r\n again", "Printer jammed again"),
            (b"one\rtwo", "one two"),
            (b"\r\n leading and trailing \r\n", "leading and trailing"),
        ]);
    }

    #[test]
    fn control_characters_are_removed() {
        check_decoding(&[
            (b"a\x00b\x07c\x1bd\x7fe", "abcde"),
            (b"tab\there", "tab here"),
            ("c1\u{85}\u{9b}gone".as_bytes(), "c1gone"),
            (b"=?UTF-8?Q?nul=00and=1B[31mred?=", "nuland[31mred"),
            (b"=?UTF-8?Q?multi=0D=0Aline?=", "multi line"),
        ]);
    }

    #[test]
    fn huge_subject_is_truncated_to_the_cap() {
        let raw = "x".repeat(100_000);
        let text = decode_header_text(raw.as_bytes());
        assert_eq!(text.chars().count(), MAX_TEXT_CHARS + 1);
        assert!(text.ends_with(ELLIPSIS));
        assert!(text[..MAX_TEXT_CHARS].bytes().all(|b| b == b'x'));

        let raw = "=?UTF-8?B?w6k=?= ".repeat(6_000);
        assert!(raw.len() > 100_000);
        let text = decode_header_text(raw.as_bytes());
        assert_eq!(text, format!("{}{ELLIPSIS}", "é".repeat(MAX_TEXT_CHARS)));
    }

    #[test]
    fn pathological_inputs_decode_without_blowup() {
        let inputs = [
            "=?".repeat(60_000),
            "=?UTF-8?Q?".repeat(20_000),
            format!("=?{}", "a".repeat(100_000)),
            format!("=?UTF-8?B?{}", "A".repeat(100_000)),
            "\r\n".repeat(60_000),
        ];
        for raw in &inputs {
            let text = decode_header_text(raw.as_bytes());
            assert!(text.chars().count() <= MAX_TEXT_CHARS + 1);
        }
        let latin1 = vec![0xe9u8; 100_000];
        assert_eq!(
            decode_header_text(&latin1),
            format!("{}{ELLIPSIS}", "é".repeat(MAX_TEXT_CHARS))
        );
    }

    #[test]
    fn clean_text_caps_on_char_boundaries() {
        let cases: [(&[u8], usize, &str); 6] = [
            (b"hello world", 11, "hello world"),
            (b"hello world", 5, "hello\u{2026}"),
            (b"hello world", 6, "hello\u{2026}"),
            ("ééééé".as_bytes(), 3, "ééé…"),
            (b"  <abc@example.com>\r\n", 998, "<abc@example.com>"),
            (b"", 10, ""),
        ];
        for (raw, max, want) in cases {
            assert_eq!(clean_text(raw, max), want, "raw {raw:?} max {max}");
        }
        let message_id = format!("<{}@example.com>", "a".repeat(2_000));
        let cleaned = clean_text(message_id.as_bytes(), 998);
        assert_eq!(cleaned.chars().count(), 999);
    }

    #[test]
    fn internaldate_parses_plain_padded_and_quoted_forms() {
        let cases = [
            ("26-Nov-2026 17:39:04 +0000", utc(2026, 11, 26, 17, 39, 4)),
            (
                "\"26-Nov-2026 17:39:04 +0000\"",
                utc(2026, 11, 26, 17, 39, 4),
            ),
            (" 6-Nov-2026 17:39:04 +0000", utc(2026, 11, 6, 17, 39, 4)),
            (
                "\" 6-nov-2026 17:39:04 +0000\"",
                utc(2026, 11, 6, 17, 39, 4),
            ),
            ("6-NOV-2026 17:39:04 +0000", utc(2026, 11, 6, 17, 39, 4)),
            ("06-Nov-2026 17:39:04 +0100", utc(2026, 11, 6, 16, 39, 4)),
        ];
        for (raw, want) in cases {
            assert_eq!(parse_internaldate(raw), Some(want), "raw {raw:?}");
        }
    }

    #[test]
    fn internaldate_negative_offsets_convert_to_utc() {
        let cases = [
            ("26-Nov-2026 17:39:04 -0500", utc(2026, 11, 26, 22, 39, 4)),
            ("31-Dec-2026 23:30:00 -0130", utc(2027, 1, 1, 1, 0, 0)),
            (" 1-Mar-2024 00:15:00 +0530", utc(2024, 2, 29, 18, 45, 0)),
            ("01-Jan-2020 00:00:00 -0000", utc(2020, 1, 1, 0, 0, 0)),
        ];
        for (raw, want) in cases {
            assert_eq!(parse_internaldate(raw), Some(want), "raw {raw:?}");
        }
    }

    #[test]
    fn internaldate_rejects_malformed_values() {
        for raw in [
            "",
            "\"\"",
            "26-Nov-2026 17:39:04",
            "26-Nov-2026 17:39 +0000",
            "32-Nov-2026 17:39:04 +0000",
            "29-Feb-2026 17:39:04 +0000",
            "26-Foo-2026 17:39:04 +0000",
            "26-Nov-26 17:39:04 +0000",
            "26-Nov-2026 24:00:00 +0000",
            "26-Nov-2026 17:39:04 +2500",
            "26-Nov-2026 17:39:04 GMT",
            "26-Nov-2026 17:39:04 +0000 extra",
            "Thu, 26 Nov 2026 17:39:04 +0000",
        ] {
            assert_eq!(parse_internaldate(raw), None, "raw {raw:?}");
        }
    }

    #[test]
    fn header_date_accepts_rfc_5322_and_obsolete_forms() {
        let cases: [(&str, DateTime<Utc>); 15] = [
            ("Tue, 1 Jul 2003 10:52:37 +0200", utc(2003, 7, 1, 8, 52, 37)),
            ("1 Jul 2003 10:52:37 +0200", utc(2003, 7, 1, 8, 52, 37)),
            (
                "Fri, 21 Nov 1997 09:55:06 -0600",
                utc(1997, 11, 21, 15, 55, 6),
            ),
            ("Tue, 1 Jul 2003 10:52:37 GMT", utc(2003, 7, 1, 10, 52, 37)),
            ("Tue, 1 Jul 2003 10:52:37 UT", utc(2003, 7, 1, 10, 52, 37)),
            ("Tue, 1 Jul 2003 10:52:37 EST", utc(2003, 7, 1, 15, 52, 37)),
            ("Tue, 1 Jul 2003 10:52:37 pdt", utc(2003, 7, 1, 17, 52, 37)),
            ("Tue, 1 Jul 2003 10:52:37 Z", utc(2003, 7, 1, 10, 52, 37)),
            ("Tue, 1 Jul 2003 10:52:37 R", utc(2003, 7, 1, 10, 52, 37)),
            ("1 Jul 03 10:52:37 +0000", utc(2003, 7, 1, 10, 52, 37)),
            ("1 Jul 99 10:52:37 +0000", utc(1999, 7, 1, 10, 52, 37)),
            ("Tue, 1 Jul 2003 10:52 +0200", utc(2003, 7, 1, 8, 52, 0)),
            (
                "Tue, 1 Jul 2003 10:52:37 +0000 (UTC)",
                utc(2003, 7, 1, 10, 52, 37),
            ),
            (
                "  Tue ,\r\n 1   Jul 2003\t10:52:37   -0700  (PDT) ",
                utc(2003, 7, 1, 17, 52, 37),
            ),
            ("Wed Jun 30 21:49:08 1993", utc(1993, 6, 30, 21, 49, 8)),
        ];
        for (raw, want) in cases {
            assert_eq!(parse_header_date(raw.as_bytes()), Some(want), "raw {raw:?}");
        }
    }

    #[test]
    fn header_date_tolerates_odd_but_seen_spellings() {
        let want = utc(2003, 7, 1, 8, 52, 37);
        for raw in [
            "Tuesday, 01 July 2003 10:52:37 +0200",
            "Tue, 1-Jul-2003 10:52:37 +0200",
            "Tue, 1 Jul 2003 10:52:37+0200",
            "Tue, 1 Jul 2003 10:52:37 GMT+0200",
            "Tue, 1 Jul 2003 10:52:37 +02:00",
            "Tue, 1 Jul 2003 10:52:37 +0200 CEST",
            "Tue, 1 Jul 2003 10:52:37 +0200 (CEST (nested \\) comment))",
        ] {
            assert_eq!(parse_header_date(raw.as_bytes()), Some(want), "raw {raw:?}");
        }
        // RFC 5322 §4.3: unknown alphabetic zones count as -0000.
        assert_eq!(
            parse_header_date(b"Tue, 1 Jul 2003 10:52:37 CEST"),
            Some(utc(2003, 7, 1, 10, 52, 37))
        );
        // A dash inside a date is not a zone: `Jul-2003` is not an offset of -20:03.
        assert_eq!(
            parse_header_date(b"Tue, Jul-2003 1 10:52:37"),
            Some(utc(2003, 7, 1, 10, 52, 37))
        );
        assert_eq!(
            parse_header_date(b"Tue, 1 Jul 2003 10:52:60 +0000"),
            Some(utc(2003, 7, 1, 10, 52, 59))
        );
    }

    #[test]
    fn header_date_garbage_is_none() {
        for raw in [
            &b""[..],
            b"   ",
            b"yesterday",
            b"not a date at all",
            b"Tue, 1 Jul 2003",
            b"1 Jul 10:52:37 +0000",
            b"32 Jul 2003 10:52:37 +0000",
            b"1 Foo 2003 10:52:37 +0000",
            b"1 Jul 2003 25:52:37 +0000",
            b"1 Jul 2003 10:52:37 +0000 +0100",
            b"1 Jul 2003 10:52:37 10:52:37",
            b"1 Jul Aug 2003 10:52:37",
            b"1 Jul 2003 10:52:37 +99999",
            b"1 Jul 1969 10:52:37 +0000",
            b"Thu, 13 Feb 1969 23:32:54 -0330",
            b"1 Jul 10000 10:52:37 +0000",
            b"1 Jul 0099 10:52:37 +0000",
            b"1 Jul 2003 10:52:37 +0000 somewordtoolong",
            b"\xff\xfe\x00garbage",
            b"((((((((",
        ] {
            assert_eq!(
                parse_header_date(raw),
                None,
                "raw {:?}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn address_text_joins_mailbox_and_host() {
        let long = "a".repeat(400);
        /// Mailbox part, host part, expected address.
        type Case<'a> = (Option<&'a [u8]>, Option<&'a [u8]>, Option<String>);
        let cases: [Case<'_>; 9] = [
            (
                Some(b"support"),
                Some(b"example.com"),
                Some("support@example.com".into()),
            ),
            (Some(b"support"), None, Some("support".into())),
            (Some(b"support"), Some(b"  "), Some("support".into())),
            (None, Some(b"example.com"), None),
            (Some(b" \t "), Some(b"example.com"), None),
            (
                Some(b" sup\r\nport\x00 "),
                Some(b"exam\x07ple.com\x7f"),
                Some("support@example.com".into()),
            ),
            (
                Some(b"j\xfcrgen"),
                Some(b"example.de"),
                Some("j\u{fffd}rgen@example.de".into()),
            ),
            (
                Some("jürgen".as_bytes()),
                Some("bücher.example".as_bytes()),
                Some("jürgen@bücher.example".into()),
            ),
            (
                Some(long.as_bytes()),
                Some(b"example.com"),
                Some(format!("{}{ELLIPSIS}", &long[..MAX_ADDRESS_CHARS])),
            ),
        ];
        for (mailbox, host, want) in cases {
            assert_eq!(
                address_text(mailbox, host),
                want,
                "mailbox {mailbox:?} host {host:?}"
            );
        }
    }
}
