//! What both renderers do to text before escaping it for their format.

use std::borrow::Cow;
use std::fmt::Write;

/// Characters that must not reach a reader as themselves: control characters (other than
/// tab and line breaks), which can drive a terminal showing the Markdown, and the
/// bidirectional controls, which can reorder what a reader sees.
fn hidden(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{7f}'..='\u{9f}'
        | '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// The text with hidden characters written as `\u{…}`.
pub(crate) fn visible(s: &str) -> Cow<'_, str> {
    if !s.chars().any(hidden) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if hidden(c) {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Line breaks (`\r\n`, `\r`, `\n`) as `\n`.
pub(crate) fn unix_lines(s: &str) -> Cow<'_, str> {
    if s.contains('\r') {
        Cow::Owned(s.replace("\r\n", "\n").replace('\r', "\n"))
    } else {
        Cow::Borrowed(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_bidi_become_visible() {
        assert_eq!(visible("a\tb\nc"), "a\tb\nc");
        assert_eq!(visible("\u{1b}[31mred"), "\\u{1b}[31mred");
        assert_eq!(visible("x\u{0}y\u{7f}\u{85}"), "x\\u{0}y\\u{7f}\\u{85}");
        assert_eq!(visible("abc\u{202e}fed"), "abc\\u{202e}fed");
        // Text that was decoded lossily keeps its replacement characters.
        assert_eq!(visible("caf\u{fffd}"), "caf\u{fffd}");
        assert_eq!(visible("日本語 é"), "日本語 é");
    }

    #[test]
    fn line_breaks() {
        assert_eq!(unix_lines("a\r\nb\rc\nd"), "a\nb\nc\nd");
    }
}
