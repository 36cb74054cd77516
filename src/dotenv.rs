//! The one dotenv parser of runseal: a pasted or imported block of `NAME=VALUE` lines becomes
//! names and values, so the dashboard's bulk paste and `runseal secrets import` cannot disagree
//! about what a block means. A common module (the dashboard is a server front-end, the CLI a
//! client: both may use it, neither imports the other's layer).
//!
//! It checks only the syntax of names; the denied-name policy and the value limits are applied
//! afterwards by the service, like for any other write. It never substitutes variables: `$X`
//! and `${X}` stay literal, because a value is stored exactly as written (`$` is common in
//! passwords) and nothing of the server's environment may leak into a secret.
//!
//! Every value it sees is a secret: values are collected into [`SecretBytes`] and every
//! intermediate buffer zeroizes on drop, and an error carries a line number, the rule and at
//! most the name, never any other text of the line. It works on bytes (all its syntax is ASCII),
//! so no slicing can panic on a character boundary, whose message would quote the text.

use std::collections::HashMap;

use zeroize::Zeroizing;

use crate::names::is_valid_secret_name;
use crate::secret::SecretBytes;

/// A block that does not parse: where, and which rule it broke. Safe to show the person who
/// pasted the block: it contains a line number and at most a name, never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {rule}")]
pub struct DotenvError {
    /// 1-based, counting the lines of the input (a multi-line value counts all of its lines).
    pub line: usize,
    pub rule: Rule,
}

/// The rule a line broke. Only [`Rule::SetTwice`] holds text of the input: the name, which is
/// shown so that the person can find the second line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rule {
    #[error("expected NAME=VALUE")]
    ExpectedNameValue,
    #[error("no name before '=': a name uses 1 to 256 characters A-Z, a-z, 0-9 and '_', not starting with a digit")]
    EmptyName,
    #[error("invalid name: a name uses 1 to 256 characters A-Z, a-z, 0-9 and '_', not starting with a digit")]
    InvalidName,
    #[error("{name} is set twice (first on line {first})")]
    SetTwice { name: String, first: usize },
    #[error("the value opens a double quote (\") that is never closed")]
    UnterminatedDoubleQuote,
    #[error("the value opens a single quote (') that is never closed")]
    UnterminatedSingleQuote,
    #[error("after the closing quote only spaces and a ' #' comment may follow")]
    TextAfterQuote,
    #[error("values may not contain a NUL byte")]
    NulInValue,
}

impl DotenvError {
    fn new(line: usize, rule: Rule) -> Self {
        Self { line, rule }
    }
}

/// Editors on Windows may save a file with a byte order mark, which would otherwise make the
/// first name invalid.
const BOM: &[u8] = "\u{feff}".as_bytes();

/// Parses a dotenv block into names and values, in the order given.
///
/// - Lines end at `\n`; `\r\n` counts as `\n` everywhere, also inside quoted values.
/// - Blank lines and lines whose first non-blank character is `#` are skipped.
/// - `NAME=VALUE`, optionally after `export `; blanks around the name and `=` are trimmed.
/// - Unquoted values are trimmed; a `#` after a blank starts a comment, any other `#` is kept
///   (`A=#x` is `#x`, `A= #x` is empty).
/// - `'...'` is literal and may span lines.
/// - `"..."` may span lines and knows the escapes `\n`, `\r`, `\t`, `\"` and `\\`; any other
///   backslash is kept as written (`"C:\dir"` stays `C:\dir`), so a value pasted from a shell
///   or an editor loses nothing.
/// - After a closing quote only blanks and a ` #` comment may follow.
/// - Each name may be set once per block.
pub fn parse(input: &str) -> Result<Vec<(String, SecretBytes)>, DotenvError> {
    let src = input.as_bytes();
    let src = src.strip_prefix(BOM).unwrap_or(src);
    let mut entries = Vec::new();
    let mut first_line: HashMap<String, usize> = HashMap::new();
    let mut pos = 0;
    let mut line = 1;
    while pos < src.len() {
        let line_start = pos;
        let entry_line = line;
        let (text, next) = line_at(src, pos);
        pos = next;
        line += 1;

        let body = trim_blank_start(text);
        if body.is_empty() || body.first() == Some(&b'#') {
            continue;
        }
        let body = strip_export(body);
        let Some(eq) = body.iter().position(|&b| b == b'=') else {
            return Err(DotenvError::new(entry_line, Rule::ExpectedNameValue));
        };
        let name = name_of(&body[..eq]).map_err(|rule| DotenvError::new(entry_line, rule))?;
        if let Some(&first) = first_line.get(&name) {
            return Err(DotenvError::new(entry_line, Rule::SetTwice { name, first }));
        }

        let after_eq = &body[eq + 1..];
        let raw = trim_blank_start(after_eq);
        let value = match raw.first() {
            Some(&quote @ (b'"' | b'\'')) => {
                // `raw` ends where `text` ends, so its offset in `src` follows from the lengths.
                let from = line_start + text.len() - raw.len() + 1;
                let Some(close) = closing_quote(src, from, quote) else {
                    let rule = if quote == b'"' {
                        Rule::UnterminatedDoubleQuote
                    } else {
                        Rule::UnterminatedSingleQuote
                    };
                    return Err(DotenvError::new(entry_line, rule));
                };
                let inner = &src[from..close];
                let value = unquote(inner, quote, entry_line)?;
                let close_line = entry_line + inner.iter().filter(|&&b| b == b'\n').count();
                let (tail, next) = line_at(src, close + 1);
                if !blank_or_comment(tail) {
                    return Err(DotenvError::new(close_line, Rule::TextAfterQuote));
                }
                pos = next;
                line = close_line + 1;
                value
            }
            _ => unquoted(after_eq).map_err(|rule| DotenvError::new(entry_line, rule))?,
        };
        first_line.insert(name.clone(), entry_line);
        entries.push((name, value));
    }
    Ok(entries)
}

/// The line starting at `pos` without its `\n` (and the `\r` of a `\r\n`), and where the next
/// one starts.
fn line_at(src: &[u8], pos: usize) -> (&[u8], usize) {
    let rest = &src[pos.min(src.len())..];
    let (text, next) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], pos + i + 1),
        None => (rest, src.len()),
    };
    (text.strip_suffix(b"\r").unwrap_or(text), next)
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim_blank_start(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| is_blank(b)).count();
    &s[n..]
}

fn trim_blank(s: &[u8]) -> &[u8] {
    let s = trim_blank_start(s);
    let n = s.iter().rev().take_while(|&&b| is_blank(b)).count();
    &s[..s.len() - n]
}

/// `export NAME=...` as a shell would source it; `export=...` and `export =...` set `export`.
fn strip_export(body: &[u8]) -> &[u8] {
    match body.strip_prefix(b"export") {
        Some(rest) if rest.first().is_some_and(|&b| is_blank(b)) => {
            let rest = trim_blank_start(rest);
            if rest.first() == Some(&b'=') {
                body
            } else {
                rest
            }
        }
        _ => body,
    }
}

/// The trimmed name before `=`. It is not echoed when invalid: text that is not a name may be
/// part of a value (a line of a pasted key), which is why this does not use
/// `names::check_secret_name_syntax`, whose message quotes the name.
fn name_of(raw: &[u8]) -> Result<String, Rule> {
    let raw = trim_blank(raw);
    if raw.is_empty() {
        return Err(Rule::EmptyName);
    }
    match std::str::from_utf8(raw) {
        Ok(name) if is_valid_secret_name(name) => Ok(name.to_string()),
        _ => Err(Rule::InvalidName),
    }
}

/// The value after `=` up to a comment (a `#` after a blank), trimmed.
fn unquoted(after_eq: &[u8]) -> Result<SecretBytes, Rule> {
    let end = after_eq
        .windows(2)
        .position(|w| is_blank(w[0]) && w[1] == b'#')
        .unwrap_or(after_eq.len());
    let value = trim_blank(&after_eq[..end]);
    if value.contains(&0) {
        return Err(Rule::NulInValue);
    }
    // `to_vec` allocates exactly once, so no unzeroized copy is left behind by a reallocation.
    Ok(SecretBytes::new(value.to_vec()))
}

/// Where the quote opened before `from` closes; in double quotes, a backslash makes the next
/// byte part of the value (`\"` and `\\` are the escapes that matter here).
fn closing_quote(src: &[u8], from: usize, quote: u8) -> Option<usize> {
    let mut i = from;
    while let Some(&b) = src.get(i) {
        match b {
            b'\\' if quote == b'"' => i += 2,
            b if b == quote => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// The value between the quotes: `\r\n` becomes `\n`, and in double quotes the escapes are
/// decoded. `first_line` is the line of the opening quote, so that a NUL is reported on its own
/// line.
fn unquote(inner: &[u8], quote: u8, first_line: usize) -> Result<SecretBytes, DotenvError> {
    // Sized for the whole span up front: decoding only shrinks, so the buffer never reallocates
    // (a reallocation would free a copy of the value without zeroizing it).
    let mut out = Zeroizing::new(Vec::with_capacity(inner.len()));
    let mut line = first_line;
    let mut i = 0;
    while let Some(&b) = inner.get(i) {
        i += 1;
        match b {
            0 => return Err(DotenvError::new(line, Rule::NulInValue)),
            b'\r' if inner.get(i) == Some(&b'\n') => {}
            b'\n' => {
                line += 1;
                out.push(b'\n');
            }
            b'\\' if quote == b'"' => {
                let decoded = match inner.get(i) {
                    Some(b'n') => Some(b'\n'),
                    Some(b'r') => Some(b'\r'),
                    Some(b't') => Some(b'\t'),
                    Some(&c @ (b'"' | b'\\')) => Some(c),
                    _ => None,
                };
                match decoded {
                    Some(c) => {
                        out.push(c);
                        i += 1;
                    }
                    // Not an escape: the backslash stays, and the next byte is read as usual
                    // (so a `\r\n` after it still becomes `\n`).
                    None => out.push(b'\\'),
                }
            }
            b => out.push(b),
        }
    }
    Ok(SecretBytes::new(std::mem::take(&mut *out)))
}

/// What may follow a closing quote: nothing, blanks, or blanks and a comment.
fn blank_or_comment(tail: &[u8]) -> bool {
    let rest = trim_blank_start(tail);
    rest.is_empty() || (rest.len() < tail.len() && rest.first() == Some(&b'#'))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The entries as `(name, value)` strings, for comparing.
    fn ok(input: &str) -> Vec<(String, String)> {
        parse(input)
            .unwrap_or_else(|e| panic!("{input:?}: {e}"))
            .into_iter()
            .map(|(n, v)| (n, String::from_utf8(v.expose().to_vec()).unwrap()))
            .collect()
    }

    fn pairs(want: &[(&str, &str)]) -> Vec<(String, String)> {
        want.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn err(input: &str) -> DotenvError {
        match parse(input) {
            Ok(entries) => panic!("{input:?} parsed into {} entries", entries.len()),
            Err(e) => e,
        }
    }

    const PEM: &str = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n-----END PRIVATE KEY-----";

    #[test]
    fn names_and_values_with_blanks_around_them() {
        assert_eq!(
            ok("A=1\n  B = two  \n\tC\t=\tthree\nD_4=x=y\n_E=\n"),
            pairs(&[
                ("A", "1"),
                ("B", "two"),
                ("C", "three"),
                ("D_4", "x=y"),
                ("_E", "")
            ])
        );
        assert_eq!(ok(""), pairs(&[]));
        assert_eq!(ok("\n\n  \n"), pairs(&[]));
    }

    #[test]
    fn blank_and_comment_lines_are_skipped() {
        assert_eq!(
            ok("# a comment\n\n   # indented = comment\nA=1\n\t#B=2\n\n"),
            pairs(&[("A", "1")])
        );
    }

    #[test]
    fn export_is_optional() {
        assert_eq!(
            ok("export A=1\nexport\tB = 2\n  export  C=3\nexportD=4\nexport=5\n"),
            pairs(&[
                ("A", "1"),
                ("B", "2"),
                ("C", "3"),
                ("exportD", "4"),
                ("export", "5"),
            ])
        );
        // `export = 6` sets the name `export`, like `export=5`.
        assert_eq!(
            err("export=5\nexport = 6\n").rule,
            Rule::SetTwice {
                name: "export".into(),
                first: 1
            }
        );
        assert_eq!(err("export A\n").rule, Rule::ExpectedNameValue);
    }

    #[test]
    fn unquoted_values_are_trimmed_and_lose_inline_comments() {
        assert_eq!(
            ok("A=value # comment\nB=a#b\nC=#x\nD=x\t# tab comment\nE= # only a comment\nF=x # y # z\nG=url?a=1&b=2   \n"),
            pairs(&[
                ("A", "value"),
                ("B", "a#b"),
                ("C", "#x"),
                ("D", "x"),
                ("E", ""),
                ("F", "x"),
                ("G", "url?a=1&b=2"),
            ])
        );
        // Quotes inside an unquoted value are just characters.
        assert_eq!(ok("A=it's \"x\"\n"), pairs(&[("A", "it's \"x\"")]));
    }

    #[test]
    fn dollar_stays_literal() {
        assert_eq!(
            ok("A=$HOME\nB=\"${HOME}/x $USER\"\nC='$HOME'\nD=\"\\$HOME\"\n"),
            pairs(&[
                ("A", "$HOME"),
                ("B", "${HOME}/x $USER"),
                ("C", "$HOME"),
                ("D", "\\$HOME"),
            ])
        );
    }

    #[test]
    fn single_quotes_are_fully_literal() {
        assert_eq!(
            ok("A='  a \\n \\\\ \" # b  ' # comment\nB=''\nC = 'x'\n"),
            pairs(&[("A", "  a \\n \\\\ \" # b  "), ("B", ""), ("C", "x")])
        );
        // No escapes: a backslash does not protect a quote.
        assert_eq!(err("A='it\\'s'\n").rule, Rule::TextAfterQuote);
    }

    #[test]
    fn double_quote_escapes_and_other_backslashes() {
        assert_eq!(
            ok(r#"A="a\nb\rc\td\"e\\f"
B="C:\dir\x \$ \0 end\""
C="  # not a comment  " # a comment
D=""
"#),
            pairs(&[
                ("A", "a\nb\rc\td\"e\\f"),
                ("B", "C:\\dir\\x \\$ \\0 end\""),
                ("C", "  # not a comment  "),
                ("D", ""),
            ])
        );
        // A backslash at the end of a line is kept, and the line break with it.
        assert_eq!(ok("A=\"x\\\r\ny\"\r\n"), pairs(&[("A", "x\\\ny")]));
    }

    #[test]
    fn pem_key_in_double_or_single_quotes_with_crlf() {
        let pem = PEM.replace('\n', "\r\n");
        for input in [
            format!("export TLS_KEY=\"{pem}\"\r\nNEXT=1\r\n"),
            format!("TLS_KEY='{pem}' # the key\r\nNEXT=1"),
        ] {
            assert_eq!(ok(&input), pairs(&[("TLS_KEY", PEM), ("NEXT", "1")]));
        }
    }

    #[test]
    fn crlf_counts_as_lf_everywhere() {
        assert_eq!(
            ok("# c\r\nA=x\r\nB = y # c\r\nC=\"q\"\r\n\r\nD='s'\r\nE=\r\n"),
            pairs(&[("A", "x"), ("B", "y"), ("C", "q"), ("D", "s"), ("E", "")])
        );
        // A lone `\r` is not a line break.
        assert_eq!(ok("A=\"x\ry\"\n"), pairs(&[("A", "x\ry")]));
        assert_eq!(ok("A=\"x\\ry\"\r\n"), pairs(&[("A", "x\ry")]));
    }

    #[test]
    fn a_leading_byte_order_mark_is_ignored() {
        assert_eq!(ok("\u{feff}A=1\n"), pairs(&[("A", "1")]));
    }

    #[test]
    fn denied_names_are_left_to_the_service() {
        assert_eq!(
            ok("PATH=/x\nRUNSEAL_X=1\nLD_PRELOAD=y\n"),
            pairs(&[("PATH", "/x"), ("RUNSEAL_X", "1"), ("LD_PRELOAD", "y")])
        );
    }

    #[test]
    fn a_line_without_equals_is_refused() {
        let e = err("A=1\njust text\n");
        assert_eq!(e, DotenvError::new(2, Rule::ExpectedNameValue));
        assert_eq!(e.to_string(), "line 2: expected NAME=VALUE");
    }

    #[test]
    fn empty_and_invalid_names_are_refused_with_what_names_may_contain() {
        assert_eq!(err("=x\n"), DotenvError::new(1, Rule::EmptyName));
        assert_eq!(err("A=1\n  = x\n"), DotenvError::new(2, Rule::EmptyName));
        for bad in ["1A=x", "A-B=x", "A B=x", "É=x", "A.B=x", "export A B=x"] {
            assert_eq!(err(bad), DotenvError::new(1, Rule::InvalidName), "{bad}");
        }
        assert_eq!(
            err(&format!("{}=x", "N".repeat(257))).rule,
            Rule::InvalidName
        );
        assert_eq!(ok(&format!("{}=x", "N".repeat(256))).len(), 1);
        let shown = err("A-B=x").to_string();
        assert!(
            shown.contains("A-Z, a-z, 0-9 and '_'") && shown.starts_with("line 1: "),
            "{shown}"
        );
    }

    #[test]
    fn an_unterminated_quote_is_reported_where_it_opened() {
        assert_eq!(
            err("A=1\n\nB=\"abc\nline\nmore\n"),
            DotenvError::new(3, Rule::UnterminatedDoubleQuote)
        );
        assert_eq!(
            err("A='abc\r\nline\r\n"),
            DotenvError::new(1, Rule::UnterminatedSingleQuote)
        );
        // An escaped quote does not close, and a trailing backslash escapes nothing.
        assert_eq!(err("A=\"abc\\\"\n").rule, Rule::UnterminatedDoubleQuote);
        assert_eq!(err("A=\"abc\\").rule, Rule::UnterminatedDoubleQuote);
    }

    #[test]
    fn only_a_comment_may_follow_a_closing_quote() {
        assert_eq!(
            ok("A=\"x\"   \nB='y'\t# c\nC=\"z\" #\n"),
            pairs(&[("A", "x"), ("B", "y"), ("C", "z")])
        );
        for bad in ["A=\"x\"y", "A=\"x\" y", "A='x'# no blank", "A=\"x\"\"y\""] {
            assert_eq!(err(bad), DotenvError::new(1, Rule::TextAfterQuote), "{bad}");
        }
        // Reported on the line of the closing quote.
        assert_eq!(
            err("A=1\nB=\"x\ny\" z\n"),
            DotenvError::new(3, Rule::TextAfterQuote)
        );
    }

    #[test]
    fn nul_in_a_value_is_refused() {
        for (input, line) in [
            ("A=x\0y\n", 1),
            ("A=1\nB='\0'\n", 2),
            ("A=\"x\0\"\n", 1),
            ("A=\"line one\r\nline\0two\"\n", 2),
        ] {
            assert_eq!(
                err(input),
                DotenvError::new(line, Rule::NulInValue),
                "{input:?}"
            );
        }
        assert_eq!(
            err("A=\"x\0\"\n").to_string(),
            "line 1: values may not contain a NUL byte"
        );
        // A NUL in a comment is no part of a value.
        assert_eq!(ok("# \0\nA=x # \0\n"), pairs(&[("A", "x")]));
    }

    #[test]
    fn a_name_set_twice_is_refused_on_the_second_line() {
        let e = err("A=1\nB=2\n\nexport A=3\n");
        assert_eq!(
            e,
            DotenvError::new(
                4,
                Rule::SetTwice {
                    name: "A".into(),
                    first: 1
                }
            )
        );
        assert_eq!(e.to_string(), "line 4: A is set twice (first on line 1)");
        // Names are case-sensitive, like environment variables.
        assert_eq!(ok("a=1\nA=2\n").len(), 2);
    }

    #[test]
    fn line_numbers_count_every_line_of_a_multi_line_value() {
        let input = "# header\r\nKEY=\"a\r\nb\r\nc\"\r\nOTHER='x\ny'\nnot a pair\n";
        assert_eq!(err(input), DotenvError::new(7, Rule::ExpectedNameValue));
        assert_eq!(
            err("K='a\nb'\nK=2\n"),
            DotenvError::new(
                3,
                Rule::SetTwice {
                    name: "K".into(),
                    first: 1
                }
            )
        );
    }

    #[test]
    fn errors_never_show_a_value() {
        const MARK: &str = "hunter2-marker";
        let cases = [
            MARK.to_string(),
            format!("{MARK}==="),
            format!("export {MARK}"),
            format!("={MARK}"),
            format!("BAD-NAME={MARK}"),
            format!("{MARK}=value"),
            format!("A B {MARK}=x"),
            format!("A=\"{MARK}"),
            format!("A='{MARK}\nmore {MARK}"),
            format!("A=\"x\" {MARK}"),
            format!("A=\"{MARK}\"{MARK}"),
            format!("A='{MARK}'{MARK}"),
            format!("A={MARK}\0{MARK}"),
            format!("A=\"{MARK}\0\""),
            format!("A='\0{MARK}'"),
            format!("OK=1\nOK={MARK}"),
        ];
        for case in cases {
            let input = format!("FIRST=fine\n{case}\n");
            let e = err(&input);
            assert!(e.line >= 2, "{input:?}: {e}");
            let shown = format!("{e} {e:?}");
            assert!(!shown.contains(MARK), "{input:?} shows the value: {shown}");
        }
        // Nor does a parsed block's Debug.
        let parsed = parse(&format!("A={MARK}\nB=\"{MARK}\"\n")).unwrap();
        assert!(!format!("{parsed:?}").contains(MARK));
    }
}

#[cfg(test)]
mod properties {
    use super::parse;
    use proptest::prelude::*;

    /// A value as a double-quoted dotenv value: `\`, `"` escaped, newlines as `\n`.
    fn quoted(v: &str) -> String {
        let mut s = String::from("\"");
        for c in v.chars() {
            match c {
                '\\' => s.push_str("\\\\"),
                '"' => s.push_str("\\\""),
                '\n' => s.push_str("\\n"),
                c => s.push(c),
            }
        }
        s.push('"');
        s
    }

    proptest! {
        /// Any names and values (without NUL or CR) written as a block parse back exactly,
        /// whatever `$`, quotes or `#` they hold.
        #[test]
        fn a_written_block_parses_back(
            pairs in proptest::collection::btree_map("[A-Z_][A-Z0-9_]{0,12}", "[^\0\r]{0,40}", 0..8)
        ) {
            let block: String = pairs
                .iter()
                .map(|(n, v)| format!("{n}={}\n", quoted(v)))
                .collect();
            let parsed = parse(&block).unwrap();
            let got: Vec<(String, Vec<u8>)> = parsed
                .iter()
                .map(|(n, v)| (n.clone(), v.expose().to_vec()))
                .collect();
            let want: Vec<(String, Vec<u8>)> = pairs
                .iter()
                .map(|(n, v)| (n.clone(), v.as_bytes().to_vec()))
                .collect();
            prop_assert_eq!(got, want);
        }

        /// Parsing never panics, and an error never holds more of the input than a name.
        #[test]
        fn any_text_parses_or_fails_without_showing_it(text in "[^\0]{0,200}") {
            if let Err(e) = parse(&format!("{text}\nX=\"never-shown-0xA1")) {
                prop_assert!(!e.to_string().contains("never-shown-0xA1"));
            }
        }
    }
}
