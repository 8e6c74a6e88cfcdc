//! RFC 4314 access rights.
//!
//! A [`Rights`] value is a set of the eleven standard rights. It is rendered in the contract's
//! canonical order `lrswipkxtea`, each letter once. The obsolete RFC 2086 letters `c` and `d`
//! still appear in some servers' replies (RFC 4314 §2.1.1); when parsing a server's reply they
//! are dropped, because what they meant is already carried by the new letters the server lists
//! beside them.

use std::fmt;

/// One RFC 4314 right (§2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Right {
    /// `l`: the mailbox is visible to LIST/LSUB.
    Lookup,
    /// `r`: SELECT, FETCH, SEARCH, COPY from, STATUS.
    Read,
    /// `s`: keep `\Seen` across sessions.
    Seen,
    /// `w`: write flags other than `\Seen` and `\Deleted`.
    Write,
    /// `i`: APPEND, COPY into.
    Insert,
    /// `p`: send mail to the submission address of the mailbox.
    Post,
    /// `k`: create child mailboxes.
    CreateMailbox,
    /// `x`: delete the mailbox.
    DeleteMailbox,
    /// `t`: set or clear `\Deleted`.
    DeleteMessages,
    /// `e`: EXPUNGE.
    Expunge,
    /// `a`: administer (SETACL/DELETEACL/GETACL/LISTRIGHTS).
    Administer,
}

impl Right {
    /// All rights in canonical order.
    pub const ALL: [Right; 11] = [
        Right::Lookup,
        Right::Read,
        Right::Seen,
        Right::Write,
        Right::Insert,
        Right::Post,
        Right::CreateMailbox,
        Right::DeleteMailbox,
        Right::DeleteMessages,
        Right::Expunge,
        Right::Administer,
    ];

    /// The right's letter.
    pub fn letter(self) -> char {
        match self {
            Right::Lookup => 'l',
            Right::Read => 'r',
            Right::Seen => 's',
            Right::Write => 'w',
            Right::Insert => 'i',
            Right::Post => 'p',
            Right::CreateMailbox => 'k',
            Right::DeleteMailbox => 'x',
            Right::DeleteMessages => 't',
            Right::Expunge => 'e',
            Right::Administer => 'a',
        }
    }

    /// The right named by `letter`, if it is one of the eleven standard ones.
    pub fn from_letter(letter: char) -> Option<Right> {
        Right::ALL.into_iter().find(|r| r.letter() == letter)
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// Why a rights string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RightsError {
    /// A character that is no RFC 4314 right.
    #[error("'{0}' is not an RFC 4314 right (expected letters of \"lrswipkxtea\")")]
    Unknown(char),
}

/// A set of RFC 4314 rights.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Rights(u16);

impl Rights {
    /// No rights at all.
    pub const NONE: Rights = Rights(0);

    /// Parses a rights string as a server sends it (GETACL, MYRIGHTS, LISTRIGHTS).
    ///
    /// Obsolete `c` and `d` and any digits (RFC 4314 §2.1 lets servers define digit rights)
    /// are ignored; any other unknown letter is kept out as well, since a server may grow
    /// rights Flagpost does not know, and granting less is always safe.
    pub fn from_server(s: &str) -> Rights {
        s.chars()
            .filter_map(Right::from_letter)
            .fold(Rights::NONE, Rights::with)
    }

    /// Parses a rights string given by a user: every letter must be a standard right.
    pub fn parse_strict(s: &str) -> Result<Rights, RightsError> {
        s.chars().try_fold(Rights::NONE, |acc, c| {
            Right::from_letter(c)
                .map(|r| acc.with(r))
                .ok_or(RightsError::Unknown(c))
        })
    }

    /// This set plus `right`.
    #[must_use]
    pub fn with(self, right: Right) -> Rights {
        Rights(self.0 | right.bit())
    }

    /// Whether `right` is in the set.
    pub fn contains(self, right: Right) -> bool {
        self.0 & right.bit() != 0
    }

    /// Union of both sets.
    #[must_use]
    pub fn union(self, other: Rights) -> Rights {
        Rights(self.0 | other.0)
    }

    /// This set without the rights in `other`.
    #[must_use]
    pub fn minus(self, other: Rights) -> Rights {
        Rights(self.0 & !other.0)
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The rights in canonical order.
    pub fn iter(self) -> impl Iterator<Item = Right> {
        Right::ALL.into_iter().filter(move |r| self.contains(*r))
    }
}

impl fmt::Display for Rights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.iter().try_for_each(|r| write!(f, "{}", r.letter()))
    }
}

impl fmt::Debug for Rights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Rights(\"{self}\")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_strings_render_in_canonical_order_without_obsolete_letters() {
        let cases = [
            ("alrws", "lrswa"),
            ("lrwsa", "lrswa"),
            ("lrswipkxtecda", "lrswipkxtea"),
            ("cd", ""),
            ("", ""),
            ("rrll", "lr"),
            ("lr0", "lr"),
        ];
        for (input, want) in cases {
            assert_eq!(
                Rights::from_server(input).to_string(),
                want,
                "input {input:?}"
            );
        }
    }

    #[test]
    fn strict_parsing_rejects_unknown_letters() {
        assert_eq!(Rights::parse_strict("lrz"), Err(RightsError::Unknown('z')));
        assert_eq!(Rights::parse_strict("c"), Err(RightsError::Unknown('c')));
        assert_eq!(Rights::parse_strict("ea").unwrap().to_string(), "ea");
    }

    #[test]
    fn set_operations() {
        let lr = Rights::parse_strict("lr").unwrap();
        let rw = Rights::parse_strict("rw").unwrap();
        assert_eq!(lr.union(rw).to_string(), "lrw");
        assert_eq!(lr.minus(rw).to_string(), "l");
        assert!(lr.contains(Right::Lookup));
        assert!(!lr.contains(Right::Administer));
        assert!(Rights::NONE.is_empty());
    }
}
