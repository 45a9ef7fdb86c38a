//! Generated sections of `BENCHMARKS.md`: the harness replaces the text between
//! `<!-- generated: NAME -->` and `<!-- end: NAME -->` with what it measured, and leaves the
//! hand-written text around it alone. A section that is not there yet is appended.

use std::path::Path;

use anyhow::Result;

/// Replaces (or appends) section `name` of the Markdown file at `path` with `body`.
pub fn update_section(path: &Path, name: &str, body: &str) -> Result<()> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    std::fs::write(path, replace_section(&text, name, body))?;
    Ok(())
}

/// The text with section `name` replaced by `body` (appended when absent).
pub fn replace_section(text: &str, name: &str, body: &str) -> String {
    let start = format!("<!-- generated: {name} -->");
    let end = format!("<!-- end: {name} -->");
    let block = format!("{start}\n{}\n{end}", body.trim_end());
    match (text.find(&start), text.find(&end)) {
        (Some(a), Some(b)) if b > a => format!("{}{}{}", &text[..a], block, &text[b + end.len()..]),
        _ => {
            let mut t = text.trim_end().to_string();
            t.push_str("\n\n");
            t.push_str(&block);
            t.push('\n');
            t
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_and_appends() {
        let t = "# B\n\nintro\n";
        let a = replace_section(t, "x", "one");
        assert_eq!(a, "# B\n\nintro\n\n<!-- generated: x -->\none\n<!-- end: x -->\n");
        let b = replace_section(&a, "x", "two\n");
        assert_eq!(b, "# B\n\nintro\n\n<!-- generated: x -->\ntwo\n<!-- end: x -->\n");
        let c = replace_section(&b, "y", "three");
        assert!(c.contains("two") && c.contains("three"));
    }
}
