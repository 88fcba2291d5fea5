//! Finds the line of a field in scenario text, so that a validation error
//! found after parsing can still point at the place to fix.
//!
//! It reads block-style YAML by indentation, which is how scenarios are
//! written; for flow-style text it may not find the field and the error
//! then names the field alone.

/// One step of a field path: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathStep {
    Key(String),
    Index(usize),
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

fn is_content(line: &str) -> bool {
    let trimmed = line.trim_start();
    !trimmed.is_empty() && !trimmed.starts_with('#') && trimmed != "---"
}

/// The key a line defines, with the column where the key starts.
fn key_of(line: &str) -> Option<(&str, usize)> {
    let mut column = indent_of(line);
    let mut rest = line.trim_start();
    if let Some(after_dash) = rest.strip_prefix("- ") {
        column += 2 + (after_dash.len() - after_dash.trim_start().len());
        rest = after_dash.trim_start();
    }
    let colon = rest.find(':')?;
    let key = rest[..colon].trim().trim_matches(|c| c == '"' || c == '\'');
    if key.is_empty() || key.contains(' ') && !rest.starts_with('"') {
        return None;
    }
    Some((key, column))
}

/// Returns the 1-based line number where `path` is defined, if found.
pub fn locate(text: &str, path: &[PathStep]) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    // Range of lines (start inclusive, end exclusive) and the indentation
    // that children must exceed.
    let mut start = 0usize;
    let mut end = lines.len();
    let mut parent_indent: Option<usize> = None;
    let mut found_line = None;
    for step in path {
        let mut hit = None;
        match step {
            PathStep::Key(name) => {
                let mut child_column = None;
                for (i, line) in lines.iter().enumerate().take(end).skip(start) {
                    if !is_content(line) {
                        continue;
                    }
                    let Some((key, column)) = key_of(line) else {
                        continue;
                    };
                    if parent_indent.is_some_and(|p| column <= p) {
                        continue;
                    }
                    let expected = *child_column.get_or_insert(column);
                    if column == expected && key == name {
                        hit = Some((i, column));
                        break;
                    }
                }
            }
            PathStep::Index(index) => {
                let mut seen = 0usize;
                let mut item_indent = None;
                for (i, line) in lines.iter().enumerate().take(end).skip(start) {
                    if !is_content(line) {
                        continue;
                    }
                    let trimmed = line.trim_start();
                    if !(trimmed.starts_with("- ") || trimmed == "-") {
                        continue;
                    }
                    let column = indent_of(line);
                    if parent_indent.is_some_and(|p| column < p) {
                        break;
                    }
                    let expected = *item_indent.get_or_insert(column);
                    if column != expected {
                        continue;
                    }
                    if seen == *index {
                        hit = Some((i, column));
                        break;
                    }
                    seen += 1;
                }
            }
        }
        let (line_index, column) = hit?;
        found_line = Some(line_index + 1);
        // The children of this step run until a line left of it, or a line
        // at its column that is not a list item belonging to a key.
        let is_key = matches!(step, PathStep::Key(_));
        let child_end = lines
            .iter()
            .enumerate()
            .skip(line_index + 1)
            .find(|(_, line)| {
                let indent = indent_of(line);
                is_content(line)
                    && (indent < column || (indent == column && !(is_key && line.trim_start().starts_with('-'))))
            })
            .map_or(lines.len(), |(i, _)| i);
        start = line_index;
        end = child_end.min(end);
        parent_indent = Some(column);
        // A key's own line may hold an inline value or the first list item.
        if matches!(step, PathStep::Key(_)) {
            start = line_index + 1;
        }
    }
    found_line
}

/// Builds a path from a dotted field name with `[i]` indexes.
pub fn parse_path(field: &str) -> Vec<PathStep> {
    let mut steps = Vec::new();
    for part in field.split('.') {
        let (name, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !name.is_empty() {
            steps.push(PathStep::Key(name.to_string()));
        }
        while let Some(close) = rest.find(']') {
            if let Ok(index) = rest[1..close].parse() {
                steps.push(PathStep::Index(index));
            }
            rest = &rest[close + 1..];
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
name: demo
# a comment
target:
  kind: kv
  endpoints:
    - a:1
    - b:2
load:
  connections: 0
  kind: closed
thresholds:
  - p99 < 1ms
  - bogus
";

    #[test]
    fn finds_nested_keys_and_items() {
        assert_eq!(locate(TEXT, &parse_path("name")), Some(1));
        assert_eq!(locate(TEXT, &parse_path("target.kind")), Some(4));
        assert_eq!(locate(TEXT, &parse_path("load.kind")), Some(10));
        assert_eq!(locate(TEXT, &parse_path("load.connections")), Some(9));
        assert_eq!(locate(TEXT, &parse_path("target.endpoints[1]")), Some(7));
        assert_eq!(locate(TEXT, &parse_path("thresholds[1]")), Some(13));
        assert_eq!(locate(TEXT, &parse_path("load.missing")), None);
    }
}
