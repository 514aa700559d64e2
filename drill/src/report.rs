//! The drill's result: one table per protocol (a row per phase between kills, then
//! the total) and the closing line
//! `drill rounds N: confirmed X, lost L, duplicated D, failover p50 S s max S s`.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::ledger::{Counts, Ledger, Proto};

/// Messages sent in one phase: before kill `round` (and after the previous one),
/// or after the last kill (`round` = rounds + 1).
#[derive(Clone, Debug)]
pub struct Row {
    pub round: usize,
    pub counts: Counts,
    /// From this round's kill to this protocol's first confirmed publish after it.
    pub failover: Option<Duration>,
}

#[derive(Clone, Debug)]
pub struct ProtocolReport {
    pub proto: Proto,
    pub rows: Vec<Row>,
    pub total: Counts,
    pub publisher_reconnects: u64,
    pub consumer_reconnects: u64,
    /// Deliveries whose body was not one of this protocol's ids.
    pub foreign: u64,
}

#[derive(Clone, Debug)]
pub struct Report {
    pub rounds: usize,
    pub protocols: Vec<ProtocolReport>,
    /// Per round: from the kill to the first confirmed publish on any protocol.
    pub failovers: Vec<Duration>,
    /// One line per round saying what happened to the nodes.
    pub notes: Vec<String>,
}

impl Report {
    pub(crate) fn new(
        rounds: usize,
        ledgers: Vec<Arc<Ledger>>,
        failovers: Vec<Duration>,
        notes: Vec<String>,
    ) -> Report {
        let protocols = ledgers
            .iter()
            .map(|l| ProtocolReport {
                proto: l.proto,
                rows: (0..=rounds)
                    .map(|phase| Row {
                        round: phase + 1,
                        counts: l.counts(Some(phase)),
                        failover: l.failover(phase + 1),
                    })
                    .collect(),
                total: l.counts(None),
                publisher_reconnects: l.publisher_reconnects.load(Ordering::Relaxed),
                consumer_reconnects: l.consumer_reconnects.load(Ordering::Relaxed),
                foreign: l.foreign(),
            })
            .collect();
        Report {
            rounds,
            protocols,
            failovers,
            notes,
        }
    }

    pub fn confirmed(&self) -> u64 {
        self.protocols.iter().map(|p| p.total.confirmed).sum()
    }

    pub fn lost(&self) -> u64 {
        self.protocols.iter().map(|p| p.total.lost).sum()
    }

    pub fn duplicated(&self) -> u64 {
        self.protocols.iter().map(|p| p.total.duplicated).sum()
    }

    /// Nearest-rank median of the per-round failover times.
    pub fn failover_p50(&self) -> Duration {
        let mut v = self.failovers.clone();
        v.sort();
        v.get(v.len().saturating_sub(1) / 2)
            .copied()
            .unwrap_or_default()
    }

    pub fn failover_max(&self) -> Duration {
        self.failovers.iter().max().copied().unwrap_or_default()
    }

    /// The closing line (scripts and the test parse it).
    pub fn summary(&self) -> String {
        format!(
            "drill rounds {}: confirmed {}, lost {}, duplicated {}, failover p50 {:.2} s max {:.2} s",
            self.rounds,
            self.confirmed(),
            self.lost(),
            self.duplicated(),
            self.failover_p50().as_secs_f64(),
            self.failover_max().as_secs_f64()
        )
    }
}

fn secs(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{:.2} s", d.as_secs_f64()))
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for n in &self.notes {
            writeln!(f, "{n}")?;
        }
        for p in &self.protocols {
            writeln!(f)?;
            writeln!(f, "{} ({})", p.proto.name(), p.proto.contract())?;
            writeln!(
                f,
                "  {:<14} {:>8} {:>10} {:>9} {:>6} {:>11} {:>10}",
                "sent in", "sent", "confirmed", "received", "lost", "duplicated", "failover"
            )?;
            let line = |f: &mut fmt::Formatter<'_>, label: &str, c: &Counts, fo: String| {
                let row = format!(
                    "  {label:<14} {:>8} {:>10} {:>9} {:>6} {:>11} {fo:>10}",
                    c.sent, c.confirmed, c.received, c.lost, c.duplicated
                );
                writeln!(f, "{}", row.trim_end())
            };
            for r in &p.rows {
                let label = if r.round <= self.rounds {
                    format!("round {}", r.round)
                } else {
                    format!("after kill {}", self.rounds)
                };
                line(f, &label, &r.counts, secs(r.failover))?;
            }
            line(f, "total", &p.total, String::new())?;
            write!(
                f,
                "  reconnects: publisher {}, consumer {}",
                p.publisher_reconnects, p.consumer_reconnects
            )?;
            if p.foreign > 0 {
                write!(f, "; {} deliveries that were not ours", p.foreign)?;
            }
            writeln!(f)?;
        }
        writeln!(f)?;
        writeln!(f, "{}", self.summary())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_line() {
        let r = Report {
            rounds: 3,
            protocols: Vec::new(),
            failovers: vec![
                Duration::from_millis(1500),
                Duration::from_millis(900),
                Duration::from_millis(2100),
            ],
            notes: Vec::new(),
        };
        assert_eq!(
            r.summary(),
            "drill rounds 3: confirmed 0, lost 0, duplicated 0, failover p50 1.50 s max 2.10 s"
        );
    }
}
