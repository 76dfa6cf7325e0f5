//! The report: sections of figures, each beside the baseline measured in
//! the same run, as Markdown (for people) and JSON (for tools).

use serde::Serialize;

use crate::machine::Machine;

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub what: String,
    pub per_second: f64,
    /// `per_second` over the section's baseline (the baseline row is 1).
    pub ratio: f64,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Section {
    pub title: String,
    /// What `per_second` counts (commands, events).
    pub unit: String,
    pub rows: Vec<Row>,
}

impl Section {
    /// A section whose first row is the baseline.
    pub fn new(title: impl Into<String>, unit: &str, baseline: (&str, f64, String)) -> Self {
        Self {
            title: title.into(),
            unit: unit.to_owned(),
            rows: vec![Row {
                what: baseline.0.to_owned(),
                per_second: baseline.1,
                ratio: 1.0,
                detail: baseline.2,
            }],
        }
    }

    pub fn add(&mut self, what: &str, per_second: f64, detail: String) {
        let baseline = self.rows[0].per_second;
        self.rows.push(Row {
            what: what.to_owned(),
            per_second,
            ratio: if baseline > 0.0 {
                per_second / baseline
            } else {
                f64::INFINITY
            },
            detail,
        });
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub when: String,
    pub machine: Machine,
    pub settings: String,
    pub sections: Vec<Section>,
}

/// `1234567.8` → `1,234,568`.
pub fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl Report {
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "# Write path and rebuild benchmarks\n\n{}, {}.\n{}.\n",
            self.when, self.machine, self.settings
        );
        for section in &self.sections {
            out.push_str(&format!(
                "\n## {}\n\n| | {}/s | vs baseline | |\n|---|---|---|---|\n",
                section.title, section.unit
            ));
            for (i, row) in section.rows.iter().enumerate() {
                let what = if i == 0 {
                    format!("baseline: {}", row.what)
                } else {
                    row.what.clone()
                };
                out.push_str(&format!(
                    "| {what} | {} | {:.2} | {} |\n",
                    thousands(row.per_second),
                    row.ratio,
                    row.detail
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_thousands() {
        assert_eq!(thousands(0.4), "0");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(1_234_567.8), "1,234,568");
    }

    #[test]
    fn ratios_are_against_the_first_row() {
        let mut s = Section::new("t", "events", ("base", 200.0, String::new()));
        s.add("twice", 400.0, String::new());
        s.add("half", 100.0, String::new());
        let ratios: Vec<f64> = s.rows.iter().map(|r| r.ratio).collect();
        assert_eq!(ratios, [1.0, 2.0, 0.5]);
    }
}
