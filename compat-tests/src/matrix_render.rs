//! `docs/COMPATIBILITY.md` from the matrix's tables.

use std::fmt::Write as _;
use std::time::Duration;

use super::{totals, Cell, Table, Versions, ALL_GROUPS};

/// The page: header with date, commit and totals, one table per pairing,
/// the failures and documented differences as numbered notes below each.
pub fn render(
    tables: &[Table],
    versions: &Versions,
    date: &str,
    commit: &str,
    took: Duration,
    command: &str,
) -> String {
    let (pass, fail, known, absent) = totals(tables);
    let mut o = String::new();
    let _ = writeln!(o, "# Compatibility matrix\n");
    let _ = writeln!(
        o,
        "Which official clients and tools work against our servers, per version and \
         scenario group. Written by `{command}` on {date} at commit `{commit}`; the run \
         took {} min. The versions are listed in `compat-tests/versions.txt`; what each \
         group runs is in `compat-tests/README.md` (section \"The compatibility matrix\").\n",
        took.as_secs().div_ceil(60)
    );
    let _ = writeln!(
        o,
        "**Totals: {pass} passed, {fail} failed, {known} fail the same way against the \
         Java servers, {absent} not in that client version.**\n"
    );
    let _ = writeln!(
        o,
        "Legend: ✔ passed · ✘ failed (note: the failing assertion) · ✘ᴶ fails the same \
         way against the Java servers (note: why) · n/a the client version has no such \
         API · — not a scenario of that client or tool.\n"
    );
    let _ = writeln!(
        o,
        "Not in the matrix yet: DLedger failover beyond the mixed DLedger group's one \
         leader kill, HA (master/slave), controller mode, ACL and gRPC (proxy) groups; \
         their suites run the Java 5.3.3 / 4.9.8 clients only (see \
         `compat-tests/README.md`).\n"
    );
    for table in tables {
        let _ = writeln!(o, "## {}\n", table.pairing.title(&versions.server));
        if let Some(e) = &table.error {
            let _ = writeln!(o, "The servers did not start: `{}`\n", one_line(e));
            continue;
        }
        // The columns: the groups any row ran.
        let groups: Vec<_> = ALL_GROUPS
            .iter()
            .filter(|g| {
                table
                    .rows
                    .iter()
                    .any(|r| r.cells.iter().any(|(cg, _)| cg == *g))
            })
            .copied()
            .collect();
        let _ = write!(o, "| client or tool |");
        for g in &groups {
            let _ = write!(o, " {} |", g.title());
        }
        let _ = writeln!(o, " time |");
        let _ = write!(o, "|---|");
        for _ in &groups {
            let _ = write!(o, ":---:|");
        }
        let _ = writeln!(o, "---:|");
        let mut notes: Vec<String> = Vec::new();
        for row in &table.rows {
            let _ = write!(o, "| {} |", row.entry.label());
            for g in &groups {
                let cell = row
                    .cells
                    .iter()
                    .find(|(cg, _)| cg == g)
                    .map(|(_, c)| c.clone())
                    .unwrap_or(Cell::NotApplicable);
                let mut note = |text: String| {
                    notes.push(format!(
                        "{} / {}: {}",
                        row.entry.label(),
                        g.title(),
                        one_line(&text)
                    ));
                    notes.len()
                };
                let shown = match cell {
                    Cell::Pass => "✔".to_owned(),
                    Cell::Fail(why) => format!("✘ [{}]", note(why)),
                    Cell::Known(reason, why) => {
                        format!("✘ᴶ [{}]", note(format!("{reason} (observed: {why})")))
                    }
                    Cell::Absent(why) => format!("n/a [{}]", note(why)),
                    Cell::NotApplicable => "—".to_owned(),
                };
                let _ = write!(o, " {shown} |");
            }
            let _ = writeln!(o, " {} s |", row.took.as_secs());
        }
        let _ = writeln!(o);
        for (i, n) in notes.iter().enumerate() {
            let _ = writeln!(o, "{}. {}", i + 1, n);
        }
        if !notes.is_empty() {
            let _ = writeln!(o);
        }
        // Once-per-pairing checks, below the table and its notes.
        for (what, cell) in &table.checks {
            let shown = match cell {
                Cell::Pass => "✔".to_owned(),
                Cell::Fail(why) => format!("✘ ({})", one_line(why)),
                Cell::Known(reason, why) => format!("✘ᴶ ({reason}; observed: {})", one_line(why)),
                Cell::Absent(why) => format!("n/a ({})", one_line(why)),
                Cell::NotApplicable => "—".to_owned(),
            };
            let _ = writeln!(o, "Once for the pairing: {shown} {}\n", one_line(what));
        }
    }
    o
}

/// One line, no table breakers.
fn one_line(s: &str) -> String {
    s.replace('|', "¦")
        .replace(['\n', '\r'], " ")
        .replace('`', "'")
        .trim()
        .to_owned()
}
