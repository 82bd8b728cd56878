//! The phases of an experiment.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where an experiment is in its life.
///
/// ```text
/// Created → Deploying → Running → Analyzing → Completed → (Promoting → Promoted)
///     stop: Deploying | Running | Analyzing → Stopping → Stopped   (Created → Stopped)
///     rollback: Running | Analyzing | Completed | Promoted → RollingBack → RolledBack
///     failure: Deploying | Running (deploy failed, too few agents) → Failed
/// ```
/// Terminal phases (`Stopped`, `RolledBack`, `Failed`) are never left. Resting phases
/// (`Completed`, `Promoted`) are left only by an operator command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Defined, nothing deployed.
    Created,
    /// Deploy tasks sent; waiting for every target agent to acknowledge.
    Deploying,
    /// Both pipelines run on every target; samples are collected.
    Running,
    /// Duration elapsed; KPIs are being computed and judged.
    Analyzing,
    /// Judged; both pipelines still run; waiting for promote or rollback.
    Completed,
    /// The candidate is replacing the baseline on every target.
    Promoting,
    /// The candidate is the only pipeline on every target.
    Promoted,
    /// Pipelines are being removed after a stop.
    Stopping,
    /// Stopped by an operator; nothing of the experiment runs.
    Stopped,
    /// The candidate is being removed (graceful rollback).
    RollingBack,
    /// The candidate was removed; the baseline alone serves.
    RolledBack,
    /// The experiment could not proceed; the reason is recorded.
    Failed,
}

impl Phase {
    /// Every phase, in life order.
    pub const ALL: [Phase; 12] = [
        Phase::Created,
        Phase::Deploying,
        Phase::Running,
        Phase::Analyzing,
        Phase::Completed,
        Phase::Promoting,
        Phase::Promoted,
        Phase::Stopping,
        Phase::Stopped,
        Phase::RollingBack,
        Phase::RolledBack,
        Phase::Failed,
    ];

    /// The wire and storage name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Deploying => "deploying",
            Self::Running => "running",
            Self::Analyzing => "analyzing",
            Self::Completed => "completed",
            Self::Promoting => "promoting",
            Self::Promoted => "promoted",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
            Self::RollingBack => "rolling_back",
            Self::RolledBack => "rolled_back",
            Self::Failed => "failed",
        }
    }

    /// Nothing leaves a terminal phase.
    #[must_use]
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Stopped | Self::RolledBack | Self::Failed)
    }

    /// Only an operator command leaves a resting phase.
    #[must_use]
    pub fn is_resting(self) -> bool {
        matches!(self, Self::Completed | Self::Promoted)
    }

    /// The phases still ahead when nothing intervenes (no command but `start`, no
    /// failure, no automatic promotion or rollback), in order: the rest of the main path
    /// `created → deploying → running → analyzing → completed`, the end of a wind-down
    /// (`stopping → stopped`, `rolling_back → rolled_back`, `promoting → promoted`), and
    /// nothing from a resting or terminal phase.
    #[must_use]
    pub fn ahead(self) -> &'static [Phase] {
        static MAIN: [Phase; 5] = [
            Phase::Created,
            Phase::Deploying,
            Phase::Running,
            Phase::Analyzing,
            Phase::Completed,
        ];
        match self {
            Self::Created | Self::Deploying | Self::Running | Self::Analyzing | Self::Completed => {
                let at = MAIN.iter().position(|p| *p == self).unwrap_or(MAIN.len());
                &MAIN[at + 1..]
            }
            Self::Promoting => &[Phase::Promoted],
            Self::Stopping => &[Phase::Stopped],
            Self::RollingBack => &[Phase::RolledBack],
            Self::Promoted | Self::Stopped | Self::RolledBack | Self::Failed => &[],
        }
    }

    /// Phases in which an experiment occupies its agents: the active ones, and
    /// `Completed` (the candidate still runs beside the baseline until it is promoted or
    /// rolled back). The fleet view counts these as active experiments.
    #[must_use]
    pub fn occupies_agents(self) -> bool {
        self.is_active() || self == Self::Completed
    }

    /// Phases the controller drives forward on its own (timers, task outcomes, agent loss).
    #[must_use]
    pub fn is_active(self) -> bool {
        matches!(
            self,
            Self::Deploying
                | Self::Running
                | Self::Analyzing
                | Self::Stopping
                | Self::RollingBack
                | Self::Promoting
        )
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown phase name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown phase `{0}`")]
pub struct UnknownPhase(pub String);

impl FromStr for Phase {
    type Err = UnknownPhase;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Phase::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownPhase(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for phase in Phase::ALL {
            assert_eq!(phase.as_str().parse::<Phase>().unwrap(), phase);
            let json = serde_json::to_string(&phase).unwrap();
            assert_eq!(json, format!("\"{}\"", phase.as_str()));
        }
        assert!("nope".parse::<Phase>().is_err());
    }

    #[test]
    fn classes_are_disjoint() {
        for phase in Phase::ALL {
            let classes = [phase.is_terminal(), phase.is_resting(), phase.is_active()];
            assert!(classes.iter().filter(|c| **c).count() <= 1, "{phase}");
        }
    }
}
