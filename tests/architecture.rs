//! The house in layers (ARCHITECTURE.md): the import graph of `src/` (one node per file, an edge
//! for every `crate::`, `super::` and child-module path a file names outside its tests) has no
//! circle (none is listed in `KNOWN_CIRCLES` any more), and no import goes up a floor. And the
//! rooms stay small: no function in `src/` is over `MAX_FUNCTION_LINES` lines.
//!
//! Floors, bottom up: the leaves (alloc, classify, cuda, cui, events, fingerprint, text); ontology,
//! data, model, synth; eval; run; infer; train, report; predict, experiment, review and the
//! aggregate error. The command line (main.rs, args.rs, commands.rs, render.rs) stands above them all and is
//! not part of the graph.
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const FLOORS: &[(&str, usize)] = &[
    ("alloc", 0),
    ("classify", 0),
    ("cuda", 0),
    ("cui", 0),
    ("events", 0),
    ("fingerprint", 0),
    ("text", 0),
    ("ontology", 1),
    ("data", 1),
    ("model", 1),
    ("synth", 1),
    ("eval", 2),
    ("run", 3),
    ("infer", 4),
    ("train", 5),
    ("report", 5),
    ("predict", 6),
    ("experiment", 6),
    ("review", 6),
    ("error", 6),
];

/// Every library file as a module path (`train::run_dir`, `predict` for predict/mod.rs), with its
/// text outside its test module and comments.
fn modules(src: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(src).unwrap().to_string_lossy().replace('\\', "/");
            if p.is_dir() {
                if rel != "bin" {
                    stack.push(p);
                }
                continue;
            }
            if !rel.ends_with(".rs") || ["lib.rs", "main.rs", "args.rs", "commands.rs", "render.rs"].contains(&rel.as_str()) {
                continue;
            }
            let name = rel.trim_end_matches(".rs").trim_end_matches("/mod").replace('/', "::");
            let text = std::fs::read_to_string(&p).unwrap();
            let code = text.split("#[cfg(test)]\nmod tests").next().unwrap();
            let code: String = code.lines().map(|l| l.split("//").next().unwrap()).collect::<Vec<_>>().join("\n");
            out.insert(name, code);
        }
    }
    out
}

/// The paths a `crate::`-style reference names: `a::b::{c, d::{e}}` gives `a::b::c`, `a::b::d::e`.
fn expand(path: &str) -> Vec<String> {
    match path.find('{') {
        None => vec![path.trim_end_matches("::").to_string()],
        Some(i) => {
            let (head, rest) = (&path[..i], &path[i + 1..]);
            let inner = &rest[..rest.rfind('}').unwrap_or(rest.len())];
            let (mut parts, mut depth, mut start) = (Vec::new(), 0, 0);
            for (j, ch) in inner.char_indices() {
                match ch {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        parts.push(&inner[start..j]);
                        start = j + 1;
                    }
                    _ => {}
                }
            }
            parts.push(&inner[start..]);
            parts.iter().map(|p| p.trim().split(' ').next().unwrap_or("")).filter(|p| !p.is_empty() && *p != "self").flat_map(|p| expand(&format!("{head}{p}"))).chain([head.trim_end_matches("::").to_string()]).collect()
        }
    }
}

/// The path that follows each occurrence of `prefix` in `code` (identifiers, `::`, brace groups).
fn paths_after<'a>(code: &'a str, prefix: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = code[from..].find(prefix) {
        let at = from + i;
        let before = code[..at].chars().next_back();
        from = at + prefix.len();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let mut depth = 0;
        let end = code[from..]
            .char_indices()
            .find(|&(_, c)| match c {
                '{' => {
                    depth += 1;
                    false
                }
                '}' => {
                    depth -= 1;
                    depth < 0
                }
                c if depth > 0 => !(c.is_alphanumeric() || "_:, \n{}".contains(c)),
                c => !(c.is_alphanumeric() || c == '_' || c == ':'),
            })
            .map_or(code.len(), |(j, _)| from + j);
        out.push(&code[from..end]);
    }
    out
}

fn import_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mods = modules(src);
    let owner = |path: &str| -> Option<String> {
        let parts: Vec<&str> = path.split("::").collect();
        (1..=parts.len()).rev().map(|k| parts[..k].join("::")).find(|m| mods.contains_key(m))
    };
    let mut graph = BTreeMap::new();
    for (m, code) in &mods {
        let is_dir_module = src.join(m.replace("::", "/")).join("mod.rs").is_file();
        let parent = m.rsplit_once("::").map_or("", |(p, _)| p);
        let super_of = if is_dir_module { parent.rsplit_once("::").map_or("", |(p, _)| p) } else { parent };
        let join = |base: &str, rest: &str| if base.is_empty() { rest.to_string() } else { format!("{base}::{rest}") };
        let mut named: Vec<String> = paths_after(code, "crate::").into_iter().flat_map(expand).collect();
        for p in paths_after(code, "super::").into_iter().flat_map(expand) {
            let (mut base, mut rest) = (super_of.to_string(), p.as_str());
            while let Some(r) = rest.strip_prefix("super::") {
                base = base.rsplit_once("::").map_or(String::new(), |(b, _)| b.to_string());
                rest = r;
            }
            named.push(join(&base, rest));
        }
        if is_dir_module {
            // `use child::...` and `self::child::...` in a folder's mod.rs
            for p in paths_after(code, "use ").into_iter().chain(paths_after(code, "self::")).flat_map(expand) {
                named.push(join(m, &p));
            }
        }
        let edges: BTreeSet<String> = named.iter().filter_map(|p| owner(p)).filter(|t| t != m).collect();
        graph.insert(m.clone(), edges);
    }
    graph
}

/// Strongly connected components of more than one module (Tarjan).
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct T<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        let i = t.index.len();
        t.index.insert(v, i);
        t.low.insert(v, i);
        t.stack.push(v);
        t.on.insert(v);
        for w in t.g.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                t.low.entry(v).and_modify(|l| *l = (*l).min(lw));
            } else if t.on.contains(w) {
                let iw = t.index[w];
                t.low.entry(v).and_modify(|l| *l = (*l).min(iw));
            }
        }
        if t.low[v] == t.index[v] {
            let mut c = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                c.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if c.len() > 1 {
                c.sort();
                t.out.push(c);
            }
        }
    }
    let mut t = T { g: graph, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), on: BTreeSet::new(), out: Vec::new() };
    for v in graph.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out
}

fn floor(module: &str) -> usize {
    let top = module.split("::").next().unwrap();
    FLOORS.iter().find(|(m, _)| *m == top).unwrap_or_else(|| panic!("src/{top} has no floor: add it to FLOORS here and to ARCHITECTURE.md")).1
}

fn src() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn the_reader_sees_every_kind_of_import() {
    // the parser itself, on a made-up tree: a circle through a brace group, `super::` and a mod.rs
    let tmp = tempfile::tempdir().unwrap();
    let s = tmp.path();
    std::fs::create_dir_all(s.join("a")).unwrap();
    std::fs::write(s.join("a/mod.rs"), "pub mod b;\npub use b::Thing;\n").unwrap();
    std::fs::write(s.join("a/b.rs"), "use crate::c::{x::{Y}, z};\n// crate::d::ignored\npub struct Thing;\n#[cfg(test)]\nmod tests { use crate::d::Z; }\n").unwrap();
    std::fs::create_dir_all(s.join("c")).unwrap();
    std::fs::write(s.join("c/mod.rs"), "pub mod x;\n").unwrap();
    std::fs::write(s.join("c/x.rs"), "fn f() { super::super::a::b::Thing; }\n").unwrap();
    std::fs::write(s.join("d.rs"), "").unwrap();
    let g = import_graph(s);
    assert_eq!(g["a"], BTreeSet::from(["a::b".to_string()]));
    assert_eq!(g["a::b"], BTreeSet::from(["c".to_string(), "c::x".to_string()]), "comments and tests are not imports");
    assert_eq!(g["c::x"], BTreeSet::from(["a::b".to_string()]));
    assert_eq!(circles(&g), vec![vec!["a::b".to_string(), "c::x".to_string()]]);
}

/// Circles still to be taken apart. The list may only shrink (issue 26 emptied it): a new circle
/// fails the test below, and so does one listed here that is gone (strike it from the list).
const KNOWN_CIRCLES: &[&[&str]] = &[];

#[test]
fn the_import_graph_has_no_new_circle() {
    let g = import_graph(&src());
    assert!(g.len() > 50, "the reader found only {} modules", g.len());
    let found = circles(&g);
    let known: Vec<Vec<String>> = KNOWN_CIRCLES.iter().map(|c| c.iter().map(|m| m.to_string()).collect()).collect();
    let new: Vec<&Vec<String>> = found.iter().filter(|c| !known.contains(c)).collect();
    assert!(new.is_empty(), "import circles in src/ (each a set of files that import each other): {new:?}");
    let gone: Vec<&Vec<String>> = known.iter().filter(|c| !found.contains(c)).collect();
    assert!(gone.is_empty(), "these circles are gone: strike them from KNOWN_CIRCLES: {gone:?}");
}

#[test]
fn no_import_goes_up_a_floor() {
    let g = import_graph(&src());
    let up: Vec<String> = g.iter().flat_map(|(m, ts)| ts.iter().filter(|t| floor(t) > floor(m)).map(move |t| format!("{m} (floor {}) -> {t} (floor {})", floor(m), floor(t)))).collect();
    assert!(up.is_empty(), "imports that go up a floor: {up:?}");
}

/// The library reports through events (`src/events.rs`) and prints nothing: only the command line
/// (main.rs, args.rs, commands.rs and its renderer render.rs) writes to stderr or stdout, or draws progress.
#[test]
fn only_the_command_line_prints() {
    let printing = ["print!", "println!", "eprint!", "eprintln!", "dbg!", "indicatif", "stderr()", "stdout()"];
    let found: Vec<String> = modules(&src()).iter().flat_map(|(m, code)| printing.iter().filter(|p| code.contains(*p)).map(move |p| format!("src/{m}: {p}"))).collect();
    assert!(found.is_empty(), "the library prints (emit an events::Event to the sink it is given instead): {found:?}");
}

/// The most lines a function in `src/` may span, from its `fn` line to its closing brace (test
/// functions included): a longer one is split into named steps.
const MAX_FUNCTION_LINES: usize = 120;

/// Where the comment, string or character literal that starts at `i` ends (one past it); `None`
/// when none starts there (a lifetime such as `'a` is code).
fn literal_end(c: &[char], i: usize) -> Option<usize> {
    let at = |k: usize| c.get(k).copied().unwrap_or('\0');
    let ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    let from = |k: usize, stop: &dyn Fn(usize) -> bool| (k..c.len()).find(|&j| stop(j)).unwrap_or(c.len());
    match (at(i), at(i + 1)) {
        ('/', '/') => Some(from(i, &|j| c[j] == '\n')),
        ('/', '*') => {
            let (mut depth, mut k) = (0, i);
            while k < c.len() {
                if at(k) == '/' && at(k + 1) == '*' {
                    depth += 1;
                    k += 2;
                } else if at(k) == '*' && at(k + 1) == '/' {
                    depth -= 1;
                    k += 2;
                    if depth == 0 {
                        return Some(k);
                    }
                } else {
                    k += 1;
                }
            }
            Some(c.len())
        }
        ('"', _) => {
            let mut k = i + 1;
            while k < c.len() && c[k] != '"' {
                k += if c[k] == '\\' { 2 } else { 1 };
            }
            Some((k + 1).min(c.len()))
        }
        ('r', '#' | '"') => {
            // r"..." or r#"..."# (also after b), not the raw identifier r#name nor the end of a name
            let before = if i > 0 && c[i - 1] == 'b' { i.checked_sub(2) } else { i.checked_sub(1) };
            let hashes = (i + 1..c.len()).take_while(|&k| c[k] == '#').count();
            if before.is_some_and(|b| ident(c[b])) || at(i + 1 + hashes) != '"' {
                return None;
            }
            let closes = |j: usize| c[j] == '"' && (1..=hashes).all(|h| at(j + h) == '#');
            Some((from(i + 2 + hashes, &closes) + 1 + hashes).min(c.len()))
        }
        ('\'', '\\') => Some((from(i + 3, &|j| c[j] == '\'') + 1).min(c.len())),
        ('\'', _) if at(i + 2) == '\'' => Some(i + 3),
        _ => None,
    }
}

/// The text with every comment, string literal and character literal blanked (newlines kept, so
/// line numbers stay): the braces left are the code's.
fn code_only(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < c.len() {
        match literal_end(&c, i) {
            Some(end) => {
                out.extend(c[i..end].iter().map(|&ch| if ch == '\n' { '\n' } else { ' ' }));
                i = end;
            }
            None => {
                out.push(c[i]);
                i += 1;
            }
        }
    }
    out
}

/// Every function with a body in `code` (as [`code_only`] leaves it): its name, the line of its
/// `fn` and how many lines it spans up to its closing brace. Nested functions count on their own too.
fn functions(code: &str) -> Vec<(String, usize, usize)> {
    let c: Vec<char> = code.chars().collect();
    let ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    let mut line_of = Vec::with_capacity(c.len() + 1);
    let mut line = 1;
    for &ch in &c {
        line_of.push(line);
        line += usize::from(ch == '\n');
    }
    line_of.push(line);
    let mut out = Vec::new();
    for k in 0..c.len().saturating_sub(2) {
        if c[k] != 'f' || c[k + 1] != 'n' || !c[k + 2].is_whitespace() || (k > 0 && ident(c[k - 1])) {
            continue;
        }
        let start = (k + 2..c.len()).find(|&j| !c[j].is_whitespace()).unwrap_or(c.len());
        let name: String = c[start..].iter().take_while(|&&ch| ident(ch)).collect();
        if name.is_empty() {
            continue;
        }
        // the body's `{`: the first one outside the parameters and any `[T; N]`; a `;` first means none
        let mut depth = 0i32;
        let open = (start..c.len()).find(|&j| {
            match c[j] {
                '(' | '[' => depth += 1,
                ')' | ']' => depth -= 1,
                _ => {}
            }
            depth == 0 && (c[j] == '{' || c[j] == ';')
        });
        let Some(open) = open.filter(|&j| c[j] == '{') else { continue };
        let mut braces = 0i32;
        let close = (open..c.len()).find(|&j| {
            braces += match c[j] {
                '{' => 1,
                '}' => -1,
                _ => 0,
            };
            braces == 0
        });
        let close = close.unwrap_or(c.len());
        out.push((name, line_of[k], line_of[close] - line_of[k] + 1));
    }
    out
}

/// Every `.rs` file under `dir` as its path relative to `dir`, with its text.
fn rust_files(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().replace('\\', "/");
                out.push((rel, std::fs::read_to_string(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// The functions under `dir` longer than `limit` lines, as `file:line:function (N lines)`; and how
/// many functions there are in all.
fn long_functions(dir: &Path, limit: usize) -> (Vec<String>, usize) {
    let (mut long, mut all) = (Vec::new(), 0);
    for (file, text) in rust_files(dir) {
        for (name, line, lines) in functions(&code_only(&text)) {
            all += 1;
            if lines > limit {
                long.push(format!("{file}:{line}:{name} ({lines} lines)"));
            }
        }
    }
    (long, all)
}

#[test]
fn the_function_counter_sees_through_comments_and_literals() {
    // a short function with a lone '{' in a char literal, a string and a comment, then a long one
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("a")).unwrap();
    let short = "fn short<'a>(s: &'a str) -> [u8; 2] {\n    let _ = ('{', \"{ \\\" {\", r#\"}\"#, '\\'', b'}');\n    // }\n    /* { /* } */ { */\n    [0; 2]\n}\n";
    let long = format!("pub(crate) fn long() {{\n{}}}\n", "    let _ = '{';\n".repeat(121));
    std::fs::write(tmp.path().join("a/b.rs"), format!("{short}\n{long}trait T {{ fn declared(&self); }}\n")).unwrap();
    let fns = functions(&code_only(&std::fs::read_to_string(tmp.path().join("a/b.rs")).unwrap()));
    assert_eq!(fns, vec![("short".to_string(), 1, 6), ("long".to_string(), 8, 123)]);
    assert_eq!(long_functions(tmp.path(), 122), (vec!["a/b.rs:8:long (123 lines)".to_string()], 2));
    assert_eq!(long_functions(tmp.path(), 123).0, Vec::<String>::new());
}

#[test]
fn no_function_is_over_120_lines() {
    let (long, all) = long_functions(&src(), MAX_FUNCTION_LINES);
    assert!(all > 1000, "the reader found only {all} functions in src/");
    assert!(long.is_empty(), "functions in src/ over {MAX_FUNCTION_LINES} lines (split each into named steps): {long:?}");
}
