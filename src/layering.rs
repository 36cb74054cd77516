//! The layers, checked: requests travel front-end → service → store → seal, and the client
//! programs (CLI, agent) share only the library's common modules. A test here fails when a file
//! imports a module its layer must never reach (see `docs/ARCHITECTURE.md`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Modules of the server side: no client program may reach them.
const SERVER: &[&str] = &[
    "server",
    "grpc",
    "service",
    "store",
    "daemon",
    "web",
    "datadir",
    "backup",
    "config",
    "integrity",
    "seal",
    "metrics",
];

/// The top-level `crate::` modules a file's code (not its comments) names, including those in
/// `use crate::{a, b::c}` groups.
fn crate_modules(source: &str) -> BTreeSet<String> {
    let code: String = source
        .lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level names of the group: split at commas outside nested braces.
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.insert(first_ident(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            found.insert(first_ident(&item));
        } else {
            found.insert(first_ident(rest));
        }
    }
    found.remove("");
    found
}

fn first_ident(s: &str) -> String {
    s.trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

pub(crate) fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Every file under `rel` (a file or a folder of `src/`) with the forbidden modules it names.
fn violations(rel: &str, forbidden: &[&str]) -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let root = src.join(rel);
    let files = if root.is_dir() {
        rust_files(&root)
    } else {
        vec![root]
    };
    assert!(!files.is_empty(), "no Rust files under src/{rel}");
    let mut bad = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{e}"));
        for m in crate_modules(&text) {
            if forbidden.contains(&m.as_str()) {
                let shown = file.strip_prefix(&src).unwrap_or(&file).display();
                bad.push(format!("src/{shown} imports crate::{m}"));
            }
        }
    }
    bad
}

#[test]
fn the_parser_sees_paths_and_use_groups_but_not_comments() {
    let found = crate_modules(
        "use crate::{auth::Credential, client::{Client, X}, names};\n\
         // crate::server::State is only mentioned\n\
         fn f() { crate::store::open(); }",
    );
    let want: BTreeSet<String> = ["auth", "client", "names", "store"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(found, want);
}

#[test]
fn the_agent_reaches_no_server_module_and_not_the_cli() {
    let mut forbidden = SERVER.to_vec();
    forbidden.push("cli");
    let bad = violations("agent", &forbidden);
    assert!(bad.is_empty(), "layer violations:\n{}", bad.join("\n"));
}

#[test]
fn the_cli_and_the_client_library_reach_no_server_module_and_not_the_agent() {
    let mut forbidden = SERVER.to_vec();
    forbidden.push("agent");
    let mut bad = violations("cli.rs", &forbidden);
    bad.extend(violations("client.rs", &forbidden));
    forbidden.push("cli");
    bad.extend(violations("exec", &forbidden));
    bad.extend(violations("template.rs", &forbidden));
    bad.extend(violations("defaults.rs", &forbidden));
    assert!(bad.is_empty(), "layer violations:\n{}", bad.join("\n"));
}

#[test]
fn the_service_knows_no_front_end_and_no_wire_type() {
    let mut bad = violations(
        "service",
        &["grpc", "server", "web", "daemon", "cli", "agent"],
    );
    bad.extend(violations(
        "store",
        &["grpc", "server", "web", "service", "daemon", "cli", "agent"],
    ));
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for file in rust_files(&src.join("service")) {
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{e}"));
        let code: Vec<&str> = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect();
        if code
            .iter()
            .any(|l| l.contains("tonic::") || l.contains("use tonic"))
        {
            bad.push(format!("{} uses a tonic type", file.display()));
        }
    }
    assert!(bad.is_empty(), "layer violations:\n{}", bad.join("\n"));
}

#[test]
fn the_dashboard_goes_through_the_service_only() {
    // The one shared thing it takes from the gRPC front-end is the accept back-off constant.
    let bad: Vec<String> = violations(
        "web",
        &[
            "store",
            "server",
            "daemon",
            "seal",
            "integrity",
            "cli",
            "agent",
            "datadir",
            "config",
        ],
    );
    assert!(bad.is_empty(), "layer violations:\n{}", bad.join("\n"));
}
