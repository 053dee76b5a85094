//! Plain text tables: columns padded to their widest cell, two spaces apart.
//! Widths are display columns (a CJK character takes two), not characters.
//! A row shorter than the header ends with a free-form note that does not
//! widen any column (e.g. "no programs").

use unicode_width::UnicodeWidthStr;

pub struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: Vec<&'static str>) -> Table {
        Table { header, rows: Vec::new() }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let columns = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.len()).collect();
        for row in &self.rows {
            // The last cell of a short row is a note: it never sets a width.
            let sized = if row.len() < columns { row.len().saturating_sub(1) } else { row.len().min(columns) };
            for (i, cell) in row.iter().take(sized).enumerate() {
                widths[i] = widths[i].max(cell.width());
            }
        }
        let mut out = String::new();
        let header: Vec<String> = self.header.iter().map(|h| h.to_string()).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    let pad = widths.get(i).copied().unwrap_or(0).saturating_sub(cell.width());
                    line.push_str(cell);
                    line.push_str(&" ".repeat(pad + 2));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::Table;

    #[test]
    fn columns_line_up_and_notes_do_not_widen() {
        let mut t = Table::new(vec!["A", "BB", "C"]);
        t.row(vec!["long".into(), "x".into(), "y".into()]);
        t.row(vec!["s".into(), "a very long note".into()]);
        assert_eq!(t.render(), "A     BB  C\nlong  x   y\ns     a very long note\n");
    }

    #[test]
    fn wide_characters_take_two_columns() {
        let mut t = Table::new(vec!["TAG", "ID"]);
        t.row(vec!["防火墙".into(), "1".into()]);
        t.row(vec!["edge".into(), "2".into()]);
        assert_eq!(t.render(), "TAG     ID\n防火墙  1\nedge    2\n");
    }
}
