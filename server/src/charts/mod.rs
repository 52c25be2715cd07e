//! Charts drawn on the server with plotters, shared by `calos load --plot` and
//! Mission Control's dashboard so neither owns the other's drawing code.

pub mod plot;
