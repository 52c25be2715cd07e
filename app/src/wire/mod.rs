//! Wire types shared by the API (server), the pages (SSR and WASM), the CLI and
//! the tests: one definition per JSON shape, so a renamed field is a compile
//! error everywhere. Requests reject unknown fields: a typo or an injected option
//! is an error, never silently ignored.

mod accounts;
mod chat;
mod conversations;
mod errors;
mod health;
mod invites;
mod keys;
mod monitor;
pub mod openai;
pub mod stream;
mod timing;
mod usage;

pub use accounts::*;
pub use chat::*;
pub use conversations::*;
pub use errors::*;
pub use health::*;
pub use invites::*;
pub use keys::*;
pub use monitor::*;
pub use openai::*;
pub use stream::*;
pub use timing::*;
pub use usage::*;
