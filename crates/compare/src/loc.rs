//! Lines of code of each driver: the book's "complexity", counted.
//!
//! A line counts when it holds code: blank lines, `//` comments (docs included), the
//! inside of `/* */` comments and everything from a `#[cfg(test)]` line on (unit tests sit
//! at the end of a file by convention) do not.

use std::path::{Path, PathBuf};

/// Count the code lines of one Rust source text.
pub fn code_lines(source: &str) -> usize {
    let mut in_block_comment = false;
    let mut count = 0;
    for line in source.lines() {
        let mut rest = line.trim();
        if !in_block_comment && rest.starts_with("#[cfg(test)]") {
            break;
        }
        let mut has_code = false;
        while !rest.is_empty() {
            if in_block_comment {
                match rest.find("*/") {
                    Some(end) => {
                        in_block_comment = false;
                        rest = rest[end + 2..].trim_start();
                    }
                    None => rest = "",
                }
            } else if rest.starts_with("//") {
                rest = "";
            } else if let Some(start) = rest.find("/*") {
                has_code |= !rest[..start].trim().is_empty();
                in_block_comment = true;
                rest = &rest[start + 2..];
            } else {
                has_code = true;
                rest = "";
            }
        }
        count += usize::from(has_code);
    }
    count
}

/// Count the code lines of a `.rs` file, or of every `.rs` file under a folder.
pub fn code_lines_at(path: &Path) -> Option<usize> {
    if path.is_file() {
        return std::fs::read_to_string(path).ok().map(|s| code_lines(&s));
    }
    let mut total = 0;
    let mut found = false;
    for entry in std::fs::read_dir(path).ok()?.flatten() {
        let entry_path = entry.path();
        let counted = if entry_path.is_dir() {
            code_lines_at(&entry_path)
        } else if entry_path.extension().is_some_and(|ext| ext == "rs") {
            std::fs::read_to_string(&entry_path)
                .ok()
                .map(|s| code_lines(&s))
        } else {
            None
        };
        if let Some(lines) = counted {
            total += lines;
            found = true;
        }
    }
    found.then_some(total)
}

/// The engine's source folder: `crates/engine/src` under `explicit`, else under the
/// current directory or one of its parents, else where this crate was built from.
pub fn engine_source(explicit: Option<&Path>) -> Option<PathBuf> {
    let under = |root: &Path| {
        let src = root.join("crates/engine/src");
        src.join("model").is_dir().then_some(src)
    };
    if let Some(root) = explicit {
        return under(root);
    }
    if let Ok(cwd) = std::env::current_dir() {
        if let Some(found) = cwd.ancestors().find_map(under) {
            return Some(found);
        }
    }
    under(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

/// Lines of a model's driver: `model/<name>.rs` or the folder `model/<name>/`, or for a
/// Windows-only model the same under `model/windows/` (a `-` in the name is a `_` in the
/// file's).
pub fn driver_lines(engine_src: &Path, model: &str) -> Option<usize> {
    let model_dir = engine_src.join("model");
    let windows_dir = model_dir.join("windows");
    let file = model.replace('-', "_");
    code_lines_at(&model_dir.join(format!("{model}.rs")))
        .or_else(|| code_lines_at(&model_dir.join(model)))
        .or_else(|| code_lines_at(&windows_dir.join(format!("{file}.rs"))))
        .or_else(|| code_lines_at(&windows_dir.join(&file)))
}

/// Lines of the readiness loop the five readiness models share (`model/reactor/`).
pub fn shared_loop_lines(engine_src: &Path) -> Option<usize> {
    code_lines_at(&engine_src.join("model").join("reactor"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_code_not_comments_blanks_or_tests() {
        let source = "\
//! Module doc.
use std::io; // trailing comment still code

/// Item doc.
fn f() {
    /* a block
       comment */
    let x = 1; /* inline */ let y = 2;
    /* only comment */
}
#[cfg(test)]
mod tests {
    fn not_counted() {}
}
";
        // use, fn f, let x..., closing brace.
        assert_eq!(code_lines(source), 4);
    }

    #[test]
    fn counts_a_folder_recursively() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("a.rs"), "fn a() {}\n// c\n").unwrap();
        std::fs::write(dir.path().join("sub/b.rs"), "fn b() {\n}\n").unwrap();
        std::fs::write(dir.path().join("notes.md"), "text\n").unwrap();
        assert_eq!(code_lines_at(dir.path()), Some(3));
    }

    #[test]
    fn finds_this_workspace_drivers() {
        let src = engine_source(None).expect("engine source in this checkout");
        assert!(driver_lines(&src, "epoll").unwrap() > 0);
        // Windows-only drivers are found on any platform.
        assert!(driver_lines(&src, "iocp").unwrap() > 0);
        assert!(driver_lines(&src, "overlapped-event").unwrap() > 0);
        assert!(shared_loop_lines(&src).unwrap() > 0);
        assert_eq!(driver_lines(&src, "no-such-model"), None);
    }
}
