//! A validating JSON scanner for the parser's fast path.
//!
//! The serde path ([`super::json`]) tokenizes every value it skips through
//! serde's visitor machinery; on a Debezium line most bytes are in values
//! nobody reads (`source`, `headers`, `before`, …). This scanner walks the
//! text directly: it reads the members of an object one by one, and a value
//! is either captured (as a [`Val`], or as its raw text for the caller) or
//! skipped by a tight byte loop that still checks the JSON grammar.
//!
//! It never decides anything on its own: every method returns `None` for
//! input it does not handle — invalid JSON, but also valid forms it leaves
//! to serde_json (escaped keys, deep nesting, surrogate escapes) — and the
//! caller then falls back to the serde path, which gives the verdict. A
//! number other than a plain non-negative integer is read by serde_json
//! from its token. So it accepts only text serde_json accepts, and what it
//! captures is what the serde path captures (`line_parse`'s tests and the
//! `file_line` fuzz target compare them).

use super::json::{plain_run, Val};
use std::borrow::Cow;

/// Nesting depth past which the scanner leaves a value to serde_json.
const MAX_DEPTH: u32 = 64;

/// A position in a JSON text.
pub(crate) struct Scan<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Scan<'a> {
    /// A scanner at the start of `text`.
    pub(crate) fn new(text: &'a str) -> Self {
        Scan { text, at: 0 }
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn ws(&mut self) {
        let b = self.bytes();
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = b.get(self.at) {
            self.at += 1;
        }
    }

    /// The next non-blank byte, not consumed.
    pub(crate) fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.bytes().get(self.at).copied()
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.at += 1)
    }

    /// Only blanks are left.
    pub(crate) fn end(&mut self) -> Option<()> {
        self.peek().is_none().then_some(())
    }

    /// Reads `text` as one whole object with `read` (blanks around it
    /// allowed); `None` when it is not an object or `read` leaves it.
    pub(crate) fn whole_object<T>(
        text: &'a str,
        read: impl FnOnce(&mut Self) -> Option<T>,
    ) -> Option<T> {
        let mut s = Scan::new(text);
        if s.peek()? != b'{' {
            return None;
        }
        let value = read(&mut s)?;
        s.end()?;
        Some(value)
    }

    /// Reads an object, calling `member` with each key; `member` must read
    /// the value (with [`Self::val`], [`Self::raw`], …).
    pub(crate) fn object(
        &mut self,
        mut member: impl FnMut(&mut Self, &'a str) -> Option<()>,
    ) -> Option<()> {
        self.eat(b'{')?;
        if self.eat(b'}').is_some() {
            return Some(());
        }
        loop {
            if self.peek()? != b'"' {
                return None;
            }
            let (key, escaped) = self.string_token()?;
            if escaped {
                return None;
            }
            self.eat(b':')?;
            member(self, &key[1..key.len() - 1])?;
            if !self.more(b'}')? {
                return Some(());
            }
        }
    }

    /// After a member or element: `true` past a comma, `false` past `close`.
    fn more(&mut self, close: u8) -> Option<bool> {
        let c = self.peek()?;
        self.at += 1;
        match c {
            b',' => Some(true),
            c if c == close => Some(false),
            _ => None,
        }
    }

    /// Skips one value, checking it, and returns its text.
    pub(crate) fn raw(&mut self) -> Option<&'a str> {
        self.ws();
        let start = self.at;
        self.skip(0)?;
        Some(&self.text[start..self.at])
    }

    /// Reads one value as the serde path's [`Val`] capture does.
    pub(crate) fn val(&mut self) -> Option<Val<'a>> {
        let tok = match self.peek()? {
            b'"' => return self.string().map(Val::Str),
            b'{' => {
                self.skip(0)?;
                return Some(Val::Object);
            }
            b'[' => {
                self.skip(0)?;
                return Some(Val::Array);
            }
            _ => self.raw()?,
        };
        match tok.as_bytes()[0] {
            b'n' => Some(Val::Null),
            b't' => Some(Val::Bool(true)),
            b'f' => Some(Val::Bool(false)),
            // A number (valid JSON: no `+`, no leading zero): a plain
            // non-negative integer that fits is read here, any other
            // (sign, fraction, exponent, overflow) by serde_json from the
            // token, as it would read it in the document.
            _ => tok
                .parse()
                .map(Val::U64)
                .ok()
                .or_else(|| super::json::from_str::<Val>(tok).ok()),
        }
    }

    /// Reads a string value, decoding its escapes in the same pass that
    /// checks it: borrowed when it has none. `None` where
    /// [`Self::string_token`] gives `None` (surrogate escapes included: their
    /// pairing rules are serde_json's). The outbox row's `payload` is such a
    /// string, with an escape every few bytes; checking it, then decoding
    /// it, took two passes.
    pub(crate) fn string(&mut self) -> Option<Cow<'a, str>> {
        let (text, b) = (self.text, self.bytes());
        debug_assert_eq!(b.get(self.at), Some(&b'"'));
        let body = self.at + 1;
        let mut i = plain_run(b, body);
        if *b.get(i)? == b'"' {
            self.at = i + 1;
            return Some(Cow::Borrowed(&text[body..i]));
        }
        // Runs end at an ASCII byte, so every slice below is on char boundaries.
        let mut out = String::with_capacity((b.len() - body).min(512));
        let mut run = body;
        loop {
            out.push_str(text.get(run..i)?);
            match *b.get(i)? {
                b'"' => break,
                b'\\' => {
                    let (c, len) = escape_at(b, i)?;
                    out.push(c);
                    i += len;
                }
                _ => return None, // a control character
            }
            run = i;
            i = plain_run(b, i);
        }
        self.at = i + 1;
        Some(Cow::Owned(out))
    }

    /// A string token (quotes included) and whether it holds escapes.
    fn string_token(&mut self) -> Option<(&'a str, bool)> {
        let b = self.bytes();
        let start = self.at;
        debug_assert_eq!(b.get(start), Some(&b'"'));
        let mut i = start + 1;
        let mut escaped = false;
        loop {
            i = plain_run(b, i);
            match *b.get(i)? {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    i += escape_at(b, i)?.1;
                }
                _ => return None, // a control character
            }
        }
        self.at = i + 1;
        Some((&self.text[start..self.at], escaped))
    }

    fn skip(&mut self, depth: u32) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'"' => self.string_token().map(drop),
            b'{' => self.object(|s, _| s.skip(depth + 1)),
            b'[' => {
                self.at += 1;
                if self.eat(b']').is_some() {
                    return Some(());
                }
                loop {
                    self.skip(depth + 1)?;
                    if !self.more(b']')? {
                        return Some(());
                    }
                }
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => self.number(),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let b = self.bytes();
        (b.get(self.at..self.at + word.len())? == word).then(|| self.at += word.len())
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    fn number(&mut self) -> Option<()> {
        let b = self.bytes();
        let mut i = self.at;
        let digits = |i: &mut usize| {
            let from = *i;
            while b.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            *i > from
        };
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        match b.get(i)? {
            b'0' => i += 1,
            b'1'..=b'9' => {
                digits(&mut i);
            }
            _ => return None,
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            if !digits(&mut i) {
                return None;
            }
        }
        if let Some(b'e' | b'E') = b.get(i) {
            i += 1;
            if let Some(b'+' | b'-') = b.get(i) {
                i += 1;
            }
            if !digits(&mut i) {
                return None;
            }
        }
        self.at = i;
        Some(())
    }
}

/// The escape whose backslash is `b[i]`: the character it stands for and
/// its length in bytes. `None` for an invalid escape, and for a surrogate
/// (`\uD800`–`\uDFFF`): how those pair is serde_json's to decide.
#[inline]
fn escape_at(b: &[u8], i: usize) -> Option<(char, usize)> {
    Some(match *b.get(i + 1)? {
        b'"' => ('"', 2),
        b'\\' => ('\\', 2),
        b'/' => ('/', 2),
        b'b' => ('\u{8}', 2),
        b'f' => ('\u{c}', 2),
        b'n' => ('\n', 2),
        b'r' => ('\r', 2),
        b't' => ('\t', 2),
        b'u' => {
            let hex = b.get(i + 2..i + 6)?;
            let cp = hex
                .iter()
                .try_fold(0u32, |n, h| Some(n * 16 + (*h as char).to_digit(16)?))?;
            (char::from_u32(cp)?, 6)
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skip_all(text: &str) -> Option<&str> {
        let mut s = Scan::new(text);
        let raw = s.raw()?;
        s.end()?;
        Some(raw)
    }

    #[test]
    fn accepts_only_what_serde_json_accepts() {
        for text in [
            r#"{"a": [1, -2.5e+3, 0, true, false, null, "x\"\\\/\b\f\n\r\t\u00e9"], "b": {}}"#,
            "[]",
            " [ { } , [ ] ] ",
            "-0",
            "0.5E-7",
            r#""""#,
            "\"é ✓\"",
            // rejected here, whatever serde_json says: left to it
            "01",
            "1.",
            ".5",
            "-",
            "1e",
            "+1",
            "tru",
            "nul",
            r#"{"a" 1}"#,
            r#"{"a": 1,}"#,
            "[1,]",
            "[1 2]",
            r#"{"a": 1"#,
            "\"a\u{1}\"",
            r#""\x""#,
            r#""\u12""#,
            r#""\ud800""#,
            r#"{"\u0061": 1}"#,
            r#"{1: 2}"#,
            "\"open",
            "",
        ] {
            if skip_all(text).is_some() {
                assert!(
                    serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok(),
                    "scanned what serde_json refuses: {text}"
                );
                assert_eq!(skip_all(text), Some(text.trim()));
            }
        }
        assert!(skip_all(r#"{"a": [1, {"b": null}]}"#).is_some());
        assert!(skip_all("01").is_none());
        let deep = "[".repeat(100) + &"]".repeat(100);
        assert!(
            skip_all(&deep).is_none(),
            "deep nesting is left to serde_json"
        );
    }

    #[test]
    fn captures_values_like_the_serde_path() {
        for text in [
            "\"plain\"",
            r#""esc\"aped\u00e9""#,
            "null",
            "true",
            "false",
            "0",
            "42",
            "18446744073709551615",
            "{\"a\": 1}",
            "[1, 2]",
        ] {
            let fast = Scan::new(text).val().expect(text);
            let serde: Val = serde_json::from_str(text).unwrap();
            assert_eq!(fast, serde, "{text}");
        }
        // other numbers are read by serde_json, token by token
        for text in ["-1", "1.5", "1e3", "18446744073709551616", "-0", "-9.5e-3"] {
            let serde: Val = serde_json::from_str(text).unwrap();
            assert_eq!(Scan::new(text).val(), Some(serde), "{text}");
        }
        // a number serde_json refuses is left to it
        assert_eq!(Scan::new("1e400").val(), None);
    }

    #[test]
    fn decodes_strings_like_serde_json_or_leaves_them() {
        let decoded = [
            r#""""#,
            r#""plain ünïcode""#,
            r#""\"\\\/\b\f\n\r\t""#,
            r#""a\u00e9b\u20AC\u0000c""#,
            r#""\"{\"id\": 1, \"page\": \"/p\"}\"""#,
            r#""ends with an escape\n""#,
        ];
        for tok in decoded {
            let serde: String = serde_json::from_str(tok).unwrap();
            let mut s = Scan::new(tok);
            assert_eq!(s.string().as_deref(), Some(serde.as_str()), "{tok}");
            assert_eq!(s.end(), Some(()), "{tok}: the whole token is read");
            assert_eq!(Scan::new(tok).string_token().map(|t| t.0), Some(tok));
        }
        // Surrogates (even paired) are serde_json's to decide; the others are
        // not JSON strings.
        for tok in [
            r#""\ud83d\ude00""#,
            r#""\udc00""#,
            "\"a\u{1}b\"",
            r#""\x""#,
            r#""\u00g0""#,
            r#""\u00e""#,
            r#""unterminated"#,
            r#""escape at the end\"#,
        ] {
            assert_eq!(Scan::new(tok).string(), None, "{tok}");
            assert_eq!(Scan::new(tok).string_token(), None, "{tok}");
        }
    }
}
