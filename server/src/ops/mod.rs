//! Operating calos: Mission Control's live feed and health checks, the managed
//! processes, and CPU profiles.

pub mod monitor;
pub mod processes;
pub mod profile;
