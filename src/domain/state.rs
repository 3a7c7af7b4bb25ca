//! Where a period stands in the ledger (`retention_ledger.state`).

/// A period's state in the ledger, the same for every dataset and grain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PeriodState {
    /// Never fetched successfully.
    Missing,
    /// Has some keys; later keys are still to come.
    Maturing,
    /// Final: its last key is in, or its grace period is over.
    Complete,
    /// WeChat has not computed the period yet (61503, an empty answer).
    NotReady,
    /// The last attempt failed; due again after a backoff.
    Failing,
    /// Final: WeChat refuses to serve the period (61501 on an old one).
    Unavailable,
}

impl PeriodState {
    pub const ALL: [PeriodState; 6] = [
        PeriodState::Missing,
        PeriodState::Maturing,
        PeriodState::Complete,
        PeriodState::NotReady,
        PeriodState::Failing,
        PeriodState::Unavailable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PeriodState::Missing => "missing",
            PeriodState::Maturing => "maturing",
            PeriodState::Complete => "complete",
            PeriodState::NotReady => "not_ready",
            PeriodState::Failing => "failing",
            PeriodState::Unavailable => "unavailable",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_parses_back() {
        for (i, state) in PeriodState::ALL.into_iter().enumerate() {
            assert_eq!(PeriodState::parse(state.as_str()), Some(state));
            // Arrays of per-state counts are indexed by the variant.
            assert_eq!(state as usize, i);
        }
        assert_eq!(PeriodState::parse("done"), None);
    }
}
