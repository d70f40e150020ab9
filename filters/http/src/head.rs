//! Message heads (start line + field lines) and trailer sections: the limits,
//! an incremental scanner that finds where a head ends and rejects the byte
//! sequences that parsers disagree on, and small grammar helpers.
//!
//! httparse parses the structure afterwards, but it tolerates bare LF line
//! endings; the scanner runs first, so httparse only ever sees heads whose
//! every line ends in CRLF.

/// Largest request or response head (start line + fields + blank line), and
/// largest trailer section. Larger ones are answered with 431.
pub const MAX_HEAD: usize = 64 * 1024;

/// Most header fields in one head (Envoy's default); more is answered with 431.
pub const MAX_HEADERS: usize = 100;

/// Finds the end of a head (the blank line) across calls.
///
/// Every call gets the same bytes again plus new ones (the filter consumes
/// nothing while it waits), so the scanner resumes where it stopped instead
/// of rescanning: a head trickling in byte by byte costs linear time.
#[derive(Debug, Clone)]
pub(crate) struct HeadScanner {
    /// Next byte to look at.
    pos: usize,
    /// `pos` is the first byte of a line.
    line_start: bool,
    /// The byte before `pos` was a CR.
    after_cr: bool,
    /// The line being ended by the CR before `pos` is empty: the blank
    /// line that ends the head.
    blank: bool,
}

/// What the scanner found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scan {
    /// The head is this many bytes long, blank line included.
    Complete(usize),
    /// No blank line yet; nothing invalid so far.
    Incomplete,
    /// The head is longer than [`MAX_HEAD`].
    TooLarge,
    /// A byte that no valid head contains.
    Invalid(&'static str),
}

impl HeadScanner {
    /// A scanner at the start of a head or trailer section. An empty first
    /// line ends it at once (an empty trailer section); request heads skip
    /// leading empty lines before scanning.
    pub(crate) fn new() -> HeadScanner {
        HeadScanner { pos: 0, line_start: true, after_cr: false, blank: false }
    }

    /// Scans `data`, which starts with the bytes of earlier calls.
    ///
    /// Rejects: a CR not followed by LF, a LF not preceded by CR (bare line
    /// endings are how one parser's line becomes another's header), control
    /// characters other than HTAB (NUL, DEL, ESC...), and lines starting
    /// with whitespace (obs-fold continuation lines, or whitespace before
    /// the first field name).
    pub(crate) fn scan(&mut self, data: &[u8]) -> Scan {
        let end = data.len().min(MAX_HEAD);
        while self.pos < end {
            let byte = data[self.pos];
            self.pos += 1;
            if self.after_cr {
                if byte != b'\n' {
                    return Scan::Invalid("CR not followed by LF");
                }
                self.after_cr = false;
                if self.blank {
                    return Scan::Complete(self.pos);
                }
                self.line_start = true;
                self.blank = false;
                continue;
            }
            match byte {
                b'\r' => {
                    // An empty line: the head ends at the LF that follows.
                    self.blank = self.line_start;
                    self.after_cr = true;
                }
                b'\n' => return Scan::Invalid("bare LF line ending"),
                b' ' | b'\t' if self.line_start => {
                    return Scan::Invalid("line starts with whitespace (obs-fold)");
                }
                b'\t' => self.line_start = false,
                0..=0x1f | 0x7f => return Scan::Invalid("control character in head"),
                _ => self.line_start = false,
            }
        }
        if data.len() >= MAX_HEAD { Scan::TooLarge } else { Scan::Incomplete }
    }
}

/// The field lines of a scanned head, raw: `(name, value)` with the value
/// exactly as sent between the colon and the CRLF. Only for heads that the
/// scanner and httparse accepted (CRLF lines, `token ":"` names).
pub(crate) fn raw_fields(head: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    head.split(|b| *b == b'\n').skip(1).filter_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let colon = line.iter().position(|b| *b == b':')?;
        Some((&line[..colon], &line[colon + 1..]))
    })
}

/// Checks the raw value of a field that decides framing or routing
/// (`Content-Length`, `Transfer-Encoding`, `Host`): only spaces may precede
/// it and nothing may follow it. Peers disagree on whether HTAB and
/// trailing whitespace belong to these values, so neither is accepted.
pub(crate) fn strict_value(raw: &[u8]) -> Result<&[u8], &'static str> {
    let value = raw.trim_ascii_start();
    if raw[..raw.len() - value.len()].contains(&b'\t') || value.contains(&b'\t') {
        return Err("tab in a framing or Host header");
    }
    if value.last().is_some_and(u8::is_ascii_whitespace) {
        return Err("trailing whitespace in a framing or Host header");
    }
    Ok(value)
}

/// RFC 9110 `tchar`.
pub(crate) fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// RFC 9110 `token`.
pub(crate) fn is_token(bytes: &[u8]) -> bool {
    !bytes.is_empty() && bytes.iter().all(|b| is_tchar(*b))
}

/// The comma-separated elements of a list-valued field, trimmed; empty
/// elements (`a, , b`) are skipped as RFC 9110 §5.6.1 says.
pub(crate) fn list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(|e| e.trim_matches([' ', '\t'])).filter(|e| !e.is_empty())
}
