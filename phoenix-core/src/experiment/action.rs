//! The operator commands by name: who may issue each, and which the experiment's state
//! admits now. [`transition`](super::transition) checks a command with [`Action::check`]
//! before anything else, and [`allowed_actions`] asks the same check for every action, so
//! what a client is offered and what the state machine accepts cannot drift apart.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{Experiment, Phase, TransitionError};
use crate::auth::Role;
use crate::judge::VerdictOutcome;

/// An operator command, by name (the wire form of what an experiment admits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Deploy both pipelines to the matching live agents.
    Start,
    /// Remove everything the experiment deployed.
    Stop,
    /// Remove the candidate (or restore the baseline after a promotion).
    Rollback,
    /// Make the candidate the only pipeline, on a passing verdict.
    Promote,
    /// Make the candidate the only pipeline whatever the verdict.
    ForcePromote,
    /// Delete the experiment and its history.
    Delete,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 6] = [
        Action::Start,
        Action::Stop,
        Action::Rollback,
        Action::Promote,
        Action::ForcePromote,
        Action::Delete,
    ];

    /// The wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Stop => "stop",
            Self::Rollback => "rollback",
            Self::Promote => "promote",
            Self::ForcePromote => "force_promote",
            Self::Delete => "delete",
        }
    }

    /// The verb in messages ("cannot roll back an experiment that is created").
    #[must_use]
    pub fn verb(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Stop => "stop",
            Self::Rollback => "roll back",
            Self::Promote | Self::ForcePromote => "promote",
            Self::Delete => "delete",
        }
    }

    /// The least role that may issue it.
    #[must_use]
    pub fn required_role(self) -> Role {
        match self {
            Self::ForcePromote => Role::Admin,
            Self::Start | Self::Stop | Self::Rollback | Self::Promote | Self::Delete => {
                Role::Operator
            }
        }
    }

    /// Whether the experiment's state (phase, verdict) admits the action now. This is the
    /// whole precondition the state machine puts on a command, except what depends on the
    /// world rather than on the experiment (`start` also needs enough matching live agents).
    ///
    /// # Errors
    /// [`TransitionError::IllegalInPhase`] when the phase forbids it;
    /// [`TransitionError::PromoteRequiresPass`] for `promote` without a passing verdict.
    pub fn check(self, experiment: &Experiment) -> Result<(), TransitionError> {
        let phase = experiment.phase;
        let admitted = match self {
            Self::Start => phase == Phase::Created,
            Self::Stop => matches!(
                phase,
                Phase::Created | Phase::Deploying | Phase::Running | Phase::Analyzing
            ),
            Self::Rollback => matches!(
                phase,
                Phase::Running | Phase::Analyzing | Phase::Completed | Phase::Promoted
            ),
            Self::Promote | Self::ForcePromote => phase == Phase::Completed,
            Self::Delete => phase == Phase::Created || phase.is_terminal(),
        };
        if !admitted {
            return Err(TransitionError::IllegalInPhase {
                command: self.verb(),
                phase,
            });
        }
        if self == Self::Promote {
            let outcome = experiment.verdict.as_ref().map(|v| v.outcome);
            if outcome != Some(VerdictOutcome::Pass) {
                return Err(TransitionError::PromoteRequiresPass { outcome });
            }
        }
        Ok(())
    }
}

/// The actions a token of `role` may take on `experiment` now, in [`Action::ALL`] order:
/// those its role includes and the experiment's state admits ([`Action::check`], the check
/// the state machine applies). `start` is listed in `created` even when no live agent
/// matches yet (that is the world's state, decided when the command arrives).
#[must_use]
pub fn allowed_actions(experiment: &Experiment, role: Role) -> Vec<Action> {
    Action::ALL
        .into_iter()
        .filter(|a| role.allows(a.required_role()) && a.check(experiment).is_ok())
        .collect()
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown action name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown action `{0}`")]
pub struct UnknownAction(pub String);

impl FromStr for Action {
    type Err = UnknownAction;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| UnknownAction(s.to_owned()))
    }
}
