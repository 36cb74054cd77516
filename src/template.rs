//! The `${NAME}` renderer of build-time requirements templates, and their cache key.
//!
//! A template is text in which `${NAME}` refers to a secret (NAME follows the secret name rule
//! of [`crate::names`]) and `$${` stands for a literal `${`; any other `$` is itself. Parsing
//! needs no values, so the referenced names and the cache key are known before anything is
//! fetched, and the key is the same in every environment. Rendering writes into a zeroizing
//! buffer; nothing here prints, logs or stores a value, and errors carry positions and names
//! only.

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::names::is_valid_secret_name;

/// What is wrong with a reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateErrorKind {
    /// `${` with no `}` before the end of its line.
    Unterminated,
    /// `${}`.
    Empty,
    /// `${1X}`, `${A-B}`: the text between the braces is not a secret name.
    InvalidName(String),
}

/// A malformed reference, with its 1-based line and column (in characters).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct TemplateError {
    /// Where the template came from (a file name, `--requirement #2`).
    pub template: String,
    pub line: usize,
    pub column: usize,
    pub kind: TemplateErrorKind,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.template, self.line, self.column)?;
        match &self.kind {
            TemplateErrorKind::Unterminated => f.write_str(
                "unterminated reference: `${` needs a closing `}` on the same line (write `$${` for a literal `${`)",
            ),
            TemplateErrorKind::Empty => f.write_str(
                "empty reference `${}`: put a secret name between the braces (write `$${` for a literal `${`)",
            ),
            TemplateErrorKind::InvalidName(name) => write!(
                f,
                "`${{{name}}}` is not a valid reference: a secret name is A-Z, a-z, 0-9 and '_', not starting with a digit (write `$${{` for a literal `${{`)"
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Reference(String),
}

/// A parsed template. Holds no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    text: String,
    parts: Vec<Part>,
}

/// Referenced names that the environment does not hold (names only).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not set: {}", .0.join(", "))]
pub struct MissingNames(pub Vec<String>);

const MAX_NAME_IN_MESSAGE: usize = 64;

impl Template {
    /// Parses `text`; `source` names it in errors.
    pub fn parse(
        source: impl Into<String>,
        text: impl Into<String>,
    ) -> Result<Self, TemplateError> {
        let source = source.into();
        let text = text.into();
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut line = 1;
        let mut column = 1;
        let mut chars = text.char_indices().peekable();
        let err = |line, column, kind| TemplateError {
            template: source.clone(),
            line,
            column,
            kind,
        };
        while let Some((i, c)) = chars.next() {
            let rest = &text[i..];
            if rest.starts_with("$${") {
                literal.push_str("${");
                chars.next();
                chars.next();
                column += 3;
                continue;
            }
            if let Some(body) = rest.strip_prefix("${") {
                let end = body.find(['}', '\n']);
                let name = match end {
                    Some(e) if body.as_bytes()[e] == b'}' => &body[..e],
                    _ => return Err(err(line, column, TemplateErrorKind::Unterminated)),
                };
                if name.is_empty() {
                    return Err(err(line, column, TemplateErrorKind::Empty));
                }
                if !is_valid_secret_name(name) {
                    let shown: String = name.chars().take(MAX_NAME_IN_MESSAGE).collect();
                    let shown = if shown.len() < name.len() {
                        format!("{shown}…")
                    } else {
                        shown
                    };
                    return Err(err(line, column, TemplateErrorKind::InvalidName(shown)));
                }
                if !literal.is_empty() {
                    parts.push(Part::Literal(std::mem::take(&mut literal)));
                }
                parts.push(Part::Reference(name.to_string()));
                // `${` + name (ASCII) + `}`
                for _ in 0..name.len() + 2 {
                    chars.next();
                }
                column += name.len() + 3;
                continue;
            }
            literal.push(c);
            if c == '\n' {
                line += 1;
                column = 1;
            } else {
                column += 1;
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Self {
            source,
            text,
            parts,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// The names this template refers to, sorted and without duplicates.
    pub fn referenced_names(&self) -> BTreeSet<&str> {
        self.parts
            .iter()
            .filter_map(|p| match p {
                Part::Reference(n) => Some(n.as_str()),
                Part::Literal(_) => None,
            })
            .collect()
    }

    /// Appends the rendered text to `out`. `lookup` gives a name's value; every name it does
    /// not know is reported (nothing is appended then).
    pub fn render_into<'v>(
        &self,
        lookup: impl Fn(&str) -> Option<&'v [u8]>,
        out: &mut Zeroizing<Vec<u8>>,
    ) -> Result<(), MissingNames> {
        let missing: Vec<String> = self
            .referenced_names()
            .into_iter()
            .filter(|n| lookup(n).is_none())
            .map(str::to_string)
            .collect();
        if !missing.is_empty() {
            return Err(MissingNames(missing));
        }
        let needed: usize = self
            .parts
            .iter()
            .map(|p| match p {
                Part::Literal(l) => l.len(),
                Part::Reference(n) => lookup(n).map_or(0, <[u8]>::len),
            })
            .sum();
        // Reserve first, so the buffer never reallocates and leaves an unzeroized copy behind.
        out.reserve(needed);
        for p in &self.parts {
            match p {
                Part::Literal(l) => out.extend_from_slice(l.as_bytes()),
                Part::Reference(n) => out.extend_from_slice(lookup(n).unwrap_or_default()),
            }
        }
        Ok(())
    }

    /// The rendered text in a zeroizing buffer.
    pub fn render<'v>(
        &self,
        lookup: impl Fn(&str) -> Option<&'v [u8]>,
    ) -> Result<Zeroizing<Vec<u8>>, MissingNames> {
        let mut out = Zeroizing::new(Vec::new());
        self.render_into(lookup, &mut out)?;
        Ok(out)
    }
}

/// Several templates rendered as one text: each in order, each ending in a newline.
pub fn render_all<'v>(
    templates: &[Template],
    lookup: impl Fn(&str) -> Option<&'v [u8]> + Copy,
) -> Result<Zeroizing<Vec<u8>>, MissingNames> {
    let missing: BTreeSet<&str> = templates
        .iter()
        .flat_map(|t| t.referenced_names())
        .filter(|n| lookup(n).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(MissingNames(
            missing.into_iter().map(str::to_string).collect(),
        ));
    }
    let mut parts = Vec::with_capacity(templates.len());
    for t in templates {
        let mut rendered = t.render(lookup)?;
        if !rendered.is_empty() && !rendered.ends_with(b"\n") {
            rendered.push(b'\n');
        }
        parts.push(rendered);
    }
    let mut out = Zeroizing::new(Vec::with_capacity(parts.iter().map(|p| p.len()).sum()));
    for p in &parts {
        out.extend_from_slice(p);
    }
    Ok(out)
}

/// Every name referenced by any of `templates`.
pub fn referenced_names(templates: &[Template]) -> BTreeSet<String> {
    templates
        .iter()
        .flat_map(|t| t.referenced_names())
        .map(str::to_string)
        .collect()
}

/// The cache key of a build step: SHA-256 over the templates' text (in order) and the names
/// they reference, never values, as lowercase hex. The same in every environment.
pub fn cache_key(templates: &[Template]) -> String {
    let mut h = Sha256::new();
    h.update(b"runseal build cache key v1\0");
    // Length-prefixed, so no two different inputs hash the same bytes.
    let field = |h: &mut Sha256, bytes: &[u8]| {
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    };
    h.update((templates.len() as u64).to_be_bytes());
    for t in templates {
        field(&mut h, t.text.as_bytes());
    }
    let names = referenced_names(templates);
    h.update((names.len() as u64).to_be_bytes());
    for n in &names {
        field(&mut h, n.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Why the requirements could not be loaded (a path or a position, never the text).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read requirements {path}: {source}")]
    Unreadable {
        path: String,
        source: std::io::Error,
    },
    #[error("requirements {0} is not UTF-8 text")]
    NotUtf8(String),
    #[error(transparent)]
    Template(#[from] TemplateError),
}

/// The requirements templates of `--requirements FILE…` then `--requirement LINE…`, in that
/// order: what `runseal-agent build` renders and what `runseal build cache-key` hashes.
pub fn load(files: &[PathBuf], lines: &[String]) -> Result<Vec<Template>, LoadError> {
    let mut out = Vec::with_capacity(files.len() + lines.len());
    for path in files {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Unreadable {
            path: path.display().to_string(),
            source,
        })?;
        let text =
            String::from_utf8(bytes).map_err(|_| LoadError::NotUtf8(path.display().to_string()))?;
        out.push(Template::parse(path.display().to_string(), text)?);
    }
    for (i, line) in lines.iter().enumerate() {
        out.push(Template::parse(
            format!("--requirement #{}", i + 1),
            line.clone(),
        )?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(name: &str) -> Option<&'static [u8]> {
        match name {
            "TOKEN" => Some(b"t0k".as_slice()),
            "B" => Some(b"bee".as_slice()),
            "EMPTY" => Some(b"".as_slice()),
            _ => None,
        }
    }

    fn render(text: &str) -> String {
        let t = Template::parse("reqs.txt", text).unwrap();
        String::from_utf8(t.render(values).unwrap().to_vec()).unwrap()
    }

    fn error(text: &str) -> TemplateError {
        Template::parse("reqs.txt", text).unwrap_err()
    }

    #[test]
    fn references_are_replaced_and_the_rest_is_kept() {
        assert_eq!(
            render("git+https://${TOKEN}@github.com/org/pkg\nx==1 # ${B}${B}\n"),
            "git+https://t0k@github.com/org/pkg\nx==1 # beebee\n"
        );
        assert_eq!(render("${EMPTY}"), "");
        assert_eq!(
            render("no references, $HOME and $ alone"),
            "no references, $HOME and $ alone"
        );
        assert_eq!(render("ünï ${B} cödé"), "ünï bee cödé");
    }

    #[test]
    fn dollar_dollar_brace_is_a_literal() {
        assert_eq!(render("$${TOKEN}"), "${TOKEN}");
        assert_eq!(render("$${"), "${");
        assert_eq!(render("a$$b"), "a$$b");
        assert_eq!(render("$$${B}"), "$${B}");
        assert_eq!(render("$${${B}}"), "${bee}");
        let t = Template::parse("r", "$${TOKEN}").unwrap();
        assert!(t.referenced_names().is_empty());
    }

    #[test]
    fn malformed_references_name_line_and_column() {
        let e = error("ok\nline two ${");
        assert_eq!(
            (e.line, e.column, e.kind),
            (2, 10, TemplateErrorKind::Unterminated)
        );
        let e = error("${1X}");
        assert_eq!((e.line, e.column), (1, 1));
        assert_eq!(e.kind, TemplateErrorKind::InvalidName("1X".into()));
        let e = error("a\nb\nxx ${A-B}");
        assert_eq!((e.line, e.column), (3, 4));
        assert_eq!(e.kind, TemplateErrorKind::InvalidName("A-B".into()));
        let e = error("é ${}");
        assert_eq!(
            (e.line, e.column, e.kind.clone()),
            (1, 3, TemplateErrorKind::Empty)
        );
        let e = error("${TOKEN\n}");
        assert_eq!(
            (e.line, e.column, e.kind.clone()),
            (1, 1, TemplateErrorKind::Unterminated)
        );
        let e = error("${B} ${ B}");
        assert_eq!((e.line, e.column), (1, 6));
        let shown = error("x\n  ${A-B}").to_string();
        assert!(shown.starts_with("reqs.txt:2:3: "), "{shown}");
        assert!(shown.contains("A-B") && shown.contains("$${"), "{shown}");
        let long = error(&format!("${{{}", "-".repeat(500)));
        assert_eq!(long.kind, TemplateErrorKind::Unterminated);
        let long = error(&format!("${{{}}}", "-".repeat(500)));
        assert!(long.to_string().len() < 400);
    }

    #[test]
    fn unknown_names_are_all_reported_and_nothing_is_rendered() {
        let t = Template::parse("r", "${NOPE} ${TOKEN} ${ALSO_NOPE} ${NOPE}").unwrap();
        let err = t.render(values).unwrap_err();
        assert_eq!(err, MissingNames(vec!["ALSO_NOPE".into(), "NOPE".into()]));
        assert_eq!(err.to_string(), "not set: ALSO_NOPE, NOPE");
    }

    #[test]
    fn referenced_names_are_sorted_and_unique() {
        let t = Template::parse("r", "${B} ${TOKEN} ${B}").unwrap();
        assert_eq!(
            t.referenced_names().into_iter().collect::<Vec<_>>(),
            ["B", "TOKEN"]
        );
    }

    #[test]
    fn render_all_joins_with_newlines() {
        let a = Template::parse("a", "x==${B}").unwrap();
        let b = Template::parse("b", "y\n").unwrap();
        let c = Template::parse("c", "").unwrap();
        let out = render_all(&[a, c, b], values).unwrap();
        assert_eq!(out.as_slice(), b"x==bee\ny\n");
    }

    #[test]
    fn cache_key_depends_on_text_and_names_never_on_values() {
        let t = |s: &str| Template::parse("r", s).unwrap();
        let k1 = cache_key(&[t("pkg @ https://${TOKEN}@h/p\n")]);
        assert_eq!(k1.len(), 64);
        assert!(k1.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(k1, cache_key(&[t("pkg @ https://${TOKEN}@h/p\n")]));
        assert_ne!(k1, cache_key(&[t("pkg @ https://${TOKEN2}@h/p\n")]));
        assert_ne!(k1, cache_key(&[t("pkg @ https://${TOKEN}@h/p")]));
        assert_ne!(cache_key(&[t("ab"), t("c")]), cache_key(&[t("a"), t("bc")]));
        // The source label is not part of the key.
        assert_eq!(
            cache_key(&[Template::parse("one/reqs.txt", "x").unwrap()]),
            cache_key(&[Template::parse("other.txt", "x").unwrap()])
        );
    }
}
