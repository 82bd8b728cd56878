//! Aligned columns, hand-rolled: every column is as wide as its widest cell (counted in
//! characters), columns are separated by two spaces, empty cells print as `-` so that
//! every column of every row starts with a visible character (which keeps the output
//! splittable by `awk` and checkable by tests).

/// A table with a header row.
#[derive(Debug, Clone, Default)]
pub(crate) struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

const GAP: &str = "  ";

impl Table {
    /// A table with these column titles.
    pub(crate) fn new(header: &[&str]) -> Self {
        Self {
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing trailing cells are empty.
    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The rendered table, one line per row, each ending in a newline.
    pub(crate) fn render(&self) -> String {
        render_rows(
            std::iter::once(&self.header).chain(self.rows.iter()),
            self.header.len(),
        )
    }
}

/// `key  value` lines with the values aligned (no header).
pub(crate) fn key_values(pairs: &[(&str, String)]) -> String {
    let rows: Vec<Vec<String>> = pairs
        .iter()
        .map(|(k, v)| vec![(*k).to_owned(), v.clone()])
        .collect();
    render_rows(rows.iter(), 2)
}

fn cell(row: &[String], i: usize) -> &str {
    match row.get(i).map(|c| c.trim()) {
        Some(c) if !c.is_empty() => c,
        _ => "-",
    }
}

fn width(s: &str) -> usize {
    s.chars().count()
}

fn render_rows<'a>(rows: impl Iterator<Item = &'a Vec<String>> + Clone, columns: usize) -> String {
    let mut widths = vec![0; columns];
    for row in rows.clone() {
        for (i, w) in widths.iter_mut().enumerate() {
            *w = (*w).max(width(&single_line(cell(row, i))));
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, w) in widths.iter().enumerate() {
            let text = single_line(cell(row, i));
            if i > 0 {
                line.push_str(GAP);
            }
            line.push_str(&text);
            if i + 1 < columns {
                line.extend(std::iter::repeat_n(' ', w - width(&text)));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Newlines and tabs would break the columns.
fn single_line(s: &str) -> String {
    s.replace(['\n', '\r', '\t'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_empty_cells_show_a_dash() {
        let mut t = Table::new(&["ID", "NAME", "PHASE"]);
        t.row(vec!["1".into(), "a long name".into(), "running".into()]);
        t.row(vec!["22".into(), String::new(), "créé".into()]);
        assert_eq!(
            t.render(),
            "ID  NAME         PHASE\n1   a long name  running\n22  -            créé\n"
        );
    }

    #[test]
    fn key_values_align() {
        assert_eq!(
            key_values(&[("id", "x".into()), ("phase", "running\nnow".into())]),
            "id     x\nphase  running now\n"
        );
    }
}
