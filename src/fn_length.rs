//! Short functions, checked: no function under `src/` is longer than [`MAX_LINES`] lines, counted
//! from its `fn` line to its closing brace, comments and blank lines included. A test here fails
//! naming every longer one.

use std::path::Path;

use crate::layering::rust_files;

/// The most lines a function may have.
const MAX_LINES: usize = 100;

/// A function with a body: where its `fn` line is (1-based), its name and its length in lines.
#[derive(Debug, PartialEq, Eq)]
struct Function {
    line: usize,
    name: String,
    lines: usize,
}

/// The name of the function a line declares, when it does: `fn NAME` after any of `pub`,
/// `pub(…)`, `const`, `async`, `unsafe` and `extern "…"`. Comment lines declare nothing.
fn declared_name(line: &str) -> Option<String> {
    let mut rest = line.trim_start();
    if rest.starts_with("//") {
        return None;
    }
    loop {
        if let Some(r) = rest.strip_prefix("fn ") {
            let name: String = r
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            return (!name.is_empty()).then_some(name);
        }
        rest = if let Some(r) = rest.strip_prefix("pub(") {
            &r[r.find(')')? + 1..]
        } else if let Some(r) = rest.strip_prefix("extern \"") {
            &r[r.find('"')? + 1..]
        } else {
            ["pub ", "const ", "async ", "unsafe "]
                .iter()
                .find_map(|q| rest.strip_prefix(q))?
        }
        .trim_start();
    }
}

fn indentation(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// A line without its trailing `//` comment and white space (a `//` inside a string is taken
/// for a comment too; signatures hold none).
fn code(line: &str) -> &str {
    match line.find("//") {
        Some(i) => &line[..i],
        None => line,
    }
    .trim_end()
}

/// Every function with a body in `source`. Its signature ends at the first line ending in `{`
/// (a body follows) or `;` (a declaration without body, not counted); the body ends at the
/// first `}` at the indentation of the `fn` line, as rustfmt lays it out.
fn functions(source: &str) -> Vec<Function> {
    let lines: Vec<&str> = source.lines().collect();
    let mut found = Vec::new();
    for (i, first) in lines.iter().enumerate() {
        let Some(name) = declared_name(first) else {
            continue;
        };
        let indent = indentation(first);
        let Some(open) = (i..lines.len()).find(|&j| {
            let c = code(lines[j]);
            c.ends_with('{') || c.ends_with(';') || (j == i && c.ends_with('}'))
        }) else {
            continue;
        };
        let end = if code(lines[open]).ends_with('}') {
            Some(open)
        } else if code(lines[open]).ends_with(';') {
            None
        } else {
            (open + 1..lines.len()).find(|&j| {
                indentation(lines[j]) == indent && lines[j].trim_start().starts_with('}')
            })
        };
        if let Some(end) = end {
            found.push(Function {
                line: i + 1,
                name,
                lines: end - i + 1,
            });
        }
    }
    found
}

/// The functions of `source` longer than [`MAX_LINES`], as `FILE:LINE NAME is N lines`.
fn too_long(file: &str, source: &str) -> Vec<String> {
    functions(source)
        .into_iter()
        .filter(|f| f.lines > MAX_LINES)
        .map(|f| {
            format!(
                "{file}:{} {} is {} lines (at most {MAX_LINES})",
                f.line, f.name, f.lines
            )
        })
        .collect()
}

/// A function `name` at `indent` spaces of `lines` lines in all.
fn sample_function(name: &str, indent: usize, lines: usize) -> String {
    let pad = " ".repeat(indent);
    let mut text = format!("{pad}pub(crate) async fn {name}(x: u8) -> u8 {{\n");
    for n in 0..lines - 2 {
        if n % 10 == 0 {
            text.push('\n');
        } else {
            text.push_str(&format!("{pad}    let _ = x; // {{\n"));
        }
    }
    text.push_str(&format!("{pad}}}\n"));
    text
}

#[test]
fn the_counter_sees_bodies_to_their_closing_brace_and_skips_declarations() {
    let source = format!(
        "/// A doc comment that does not count.\n\
         /// fn commented() {{\n\
         {}\n\
         trait T {{\n    fn declared(&self) -> u8;\n    fn multi_line(\n        &self,\n    ) -> u8;\n}}\n\
         impl S {{\n{}}}\n\
         fn one_line() {{}}\n\
         fn with_where<X>(x: X)\n\
         where\n    X: Copy,\n{{\n    let _ = x;\n}}\n\
         {}",
        sample_function("long", 0, 101),
        sample_function("in_impl", 4, 100),
        sample_function("after_where", 0, 40),
    );
    let found = functions(&source);
    let names: Vec<(&str, usize)> = found.iter().map(|f| (f.name.as_str(), f.lines)).collect();
    assert_eq!(
        names,
        [
            ("long", 101),
            ("in_impl", 100),
            ("one_line", 1),
            ("with_where", 6),
            ("after_where", 40),
        ]
    );
    assert_eq!(found[0].line, 3);
    assert_eq!(
        too_long("src/sample.rs", &source),
        ["src/sample.rs:3 long is 101 lines (at most 100)"]
    );
}

#[test]
fn no_function_is_longer_than_a_hundred_lines() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = rust_files(&src);
    assert!(!files.is_empty(), "no Rust files under src/");
    let mut bad = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{e}"));
        let shown = file.strip_prefix(&src).unwrap_or(&file).display();
        bad.extend(too_long(&format!("src/{shown}"), &text));
    }
    assert!(
        bad.is_empty(),
        "functions longer than {MAX_LINES} lines (split them):\n{}",
        bad.join("\n")
    );
}
