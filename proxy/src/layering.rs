//! The proxy crate's module graph, read from the source: every `crate::` path names the
//! top-level module it climbs to, and those arrows must not close a circle. A circle means
//! a change anywhere touches everything in it; this test keeps the layers (command line →
//! serving → runtime state → upstream client, with control beside serving) from growing
//! one back. `cargo test -p certfront module_graph -- --nocapture` prints the graph.
//!
//! Test-only code (`tests.rs`, `props.rs`, inline `mod tests`, the `invariants` module
//! shared with the fuzz targets) may import from anywhere and is left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Modules whose code is only compiled for tests and the `fuzzing` feature.
const TEST_ONLY: &[&str] = &["invariants", "layering", "testpki"];

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`conn/drive.rs` → `conn`), `None` for the
/// crate root and `main.rs`.
fn top_module(rel: &Path) -> Option<String> {
    let first = rel.components().next()?.as_os_str().to_str()?;
    match first {
        "lib.rs" | "main.rs" => None,
        _ => Some(first.trim_end_matches(".rs").to_owned()),
    }
}

/// The source without test-only parts: an inline `#[cfg(test)] mod tests` block (always
/// the file's last item here) and comment lines.
fn non_test_source(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed == "#[cfg(test)]"
            && lines
                .peek()
                .is_some_and(|next| next.trim_start().starts_with("mod tests"))
        {
            break;
        }
        if trimmed.starts_with("//") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The first segment of every `crate::` path in `source`, and whether it is called
/// (`crate::prepare(..)` is the root's re-exported function, not the module).
/// `crate::{a, b::c}` yields `a` and `b`.
fn crate_paths(source: &str) -> Vec<(String, bool)> {
    let mut found = Vec::new();
    let mut rest = source;
    while let Some(at) = rest.find("crate::") {
        // `pub(crate)` is not a path; `$crate::` does not occur here.
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            let mut depth = 0usize;
            let mut item_start = true;
            let body = &group[..end];
            for (i, c) in body.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth = depth.saturating_sub(1),
                    ',' if depth == 0 => item_start = true,
                    c if item_start && !c.is_whitespace() => {
                        item_start = false;
                        let ident = ident_at(&body[i..]);
                        found.push((ident.to_owned(), false));
                    }
                    _ => {}
                }
            }
        } else {
            let ident = ident_at(rest);
            let called = rest[ident.len()..].starts_with('(');
            found.push((ident.to_owned(), called));
        }
    }
    found
}

struct Graph {
    /// module → the modules it imports.
    edges: BTreeMap<String, BTreeSet<String>>,
    /// "file: crate::name" for every path that reaches an item through the crate root.
    through_root: Vec<String>,
}

fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeSet<String> = files
        .iter()
        .filter_map(|f| top_module(f.strip_prefix(&src).expect("under src")))
        .collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut through_root = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).expect("under src");
        let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let Some(from) = top_module(rel) else {
            continue;
        };
        if TEST_ONLY.contains(&from.as_str()) || name == "tests.rs" || name == "props.rs" {
            continue;
        }
        let text =
            std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let entry = edges.entry(from.clone()).or_default();
        for (ident, called) in crate_paths(&non_test_source(&text)) {
            if !called && modules.contains(&ident) {
                if ident != from {
                    entry.insert(ident);
                }
            } else {
                through_root.push(format!("{}: crate::{ident}", rel.display()));
            }
        }
    }
    Graph {
        edges,
        through_root,
    }
}

/// Tarjan's strongly connected components with more than one module.
fn circles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.edges.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut s = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in edges.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.found
}

#[test]
fn module_graph_has_no_circle() {
    let g = graph();
    for (from, to) in &g.edges {
        let to: Vec<&str> = to.iter().map(String::as_str).collect();
        println!("{from} -> {}", to.join(" "));
    }
    let found = circles(&g.edges);
    assert!(
        found.is_empty(),
        "import circles between proxy/src modules (each line is one circle): {found:#?}"
    );
    assert!(
        g.through_root.is_empty(),
        "internal code reaches items through the crate root's re-exports, expected a module \
         path: {:#?}",
        g.through_root
    );
}

#[test]
fn the_scanner_finds_grouped_paths_and_circles() {
    let paths = crate_paths(
        "use crate::{a::X, b, c::{D, E}};\nlet y = crate::d::f();\nuse crate::e;\ncrate::g(1);",
    );
    let names: Vec<(&str, bool)> = paths.iter().map(|(n, m)| (n.as_str(), *m)).collect();
    assert_eq!(
        names,
        [
            ("a", false),
            ("b", false),
            ("c", false),
            ("d", false),
            ("e", false),
            ("g", true)
        ]
    );
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (a, b) in [("x", "y"), ("y", "z"), ("z", "x"), ("z", "w")] {
        edges.entry(a.into()).or_default().insert(b.into());
    }
    assert_eq!(circles(&edges), [["x", "y", "z"]]);
    assert!(non_test_source("a\n#[cfg(test)]\nmod tests {\ncrate::x::y\n}").trim() == "a");
}
