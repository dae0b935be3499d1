//! Characters that user text may not carry: C0 controls (a NUL, an escape sequence) and the
//! Unicode bidirectional embeddings, overrides and isolates, which make a name or a message
//! display differently from what it is (`U+202E` turns "gnp.exe" into "exe.png") and allow
//! lookalike group names.

/// The bidirectional formatting characters (embeddings, overrides, isolates).
const BIDI_FORMATTING: [char; 9] = [
    '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}', '\u{2067}', '\u{2068}',
    '\u{2069}',
];

/// The first character of `s` that user text may not hold, if any: a C0 control other than
/// newline and tab (and those too unless `line_breaks`), or a bidirectional formatting
/// character.
pub fn refused_char(s: &str, line_breaks: bool) -> Option<char> {
    s.chars().find(|&c| {
        let c0 = (c as u32) < 0x20 && !(line_breaks && (c == '\n' || c == '\t'));
        c0 || BIDI_FORMATTING.contains(&c)
    })
}

/// What a client is told about a refused character.
pub(crate) fn refused_message(c: char) -> String {
    format!(
        "must not contain control or bidirectional formatting characters (found U+{:04X})",
        c as u32
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_bidi_formatting_are_found_and_the_rest_is_not() {
        assert_eq!(refused_char("plain text, é ü 漢字 🙂", true), None);
        assert_eq!(refused_char("two\nlines\tand a tab", true), None);
        assert_eq!(refused_char("two\nlines", false), Some('\n'));
        assert_eq!(refused_char("nul\0byte", true), Some('\0'));
        assert_eq!(refused_char("esc\u{1b}[31m", true), Some('\u{1b}'));
        assert_eq!(refused_char("gnp\u{202E}exe", true), Some('\u{202E}'));
        assert_eq!(refused_char("iso\u{2066}late", true), Some('\u{2066}'));
        // Marks that only hint direction stay allowed (they reorder nothing on their own).
        assert_eq!(refused_char("\u{200E}\u{200F}", true), None);
    }
}
