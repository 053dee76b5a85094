//! A table printed as Markdown and saved as CSV.

pub struct Table {
    pub name: &'static str,
    pub title: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(name: &'static str, title: impl Into<String>, header: &[&str]) -> Table {
        Table { name, title: title.into(), header: header.iter().map(|h| h.to_string()).collect(), rows: Vec::new() }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn print_and_save(&self, dir: &std::path::Path) {
        println!("\n{}\n", self.title);
        println!("| {} |", self.header.join(" | "));
        println!("|{}", " ---: |".repeat(self.header.len()));
        for r in &self.rows {
            println!("| {} |", r.join(" | "));
        }
        let mut csv = self.header.join(",") + "\n";
        for r in &self.rows {
            csv += &(r.join(",") + "\n");
        }
        let path = dir.join(format!("{}.csv", self.name));
        if let Err(e) = std::fs::write(&path, csv) {
            eprintln!("cannot write {}: {e}", path.display());
        }
    }
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}
