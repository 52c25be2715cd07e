//! The toolbox: `calos perf`, `calos load` and `calos diag` measure a running
//! gateway from outside, set that beside what the server says about itself, and
//! name the component that costs the time.
//!
//! Figures and their definitions follow `docs/metrics.md` (TTFT = first non-empty
//! content event, network = client total − server total, closed vs open loop).

pub mod baseline;
pub mod client;
pub mod diag;
pub mod figures;
pub mod load;
pub mod perf;
pub mod render;
pub mod sse;

/// Exit code for "the target could not be measured at all" (unreachable,
/// refused sign-in), distinct from a run that measured failures.
pub const EXIT_UNREACHABLE: u8 = 2;

/// A toolbox failure worth its own exit code.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// Nothing answered: refused, DNS failure, timeout before any response.
    #[error("{0}")]
    Unreachable(String),
    /// It answered, but not as a calos (or OpenAI-compatible) server should.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl ToolError {
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Unreachable(_) | Self::Refused(_) => EXIT_UNREACHABLE,
            Self::Other(_) => 1,
        }
    }
}
