//! Statement texts and messages as reports and messages quote them.

/// The text on one line (runs of white space as one space), cut after `max` characters
/// with `…`.
pub(crate) fn one_line(s: &str, max: usize) -> String {
    let s: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.chars().count() > max {
        let mut t: String = s.chars().take(max).collect();
        t.push('…');
        t
    } else {
        s
    }
}
