//! Tessera's end-to-end tests: real processes on real servers, one module
//! per concern. They are one test binary, so the shared kit ([`common`])
//! is compiled once and one binary is linked instead of seventeen.

mod common;

mod access;
mod cli;
mod compose;
mod console;
mod contract;
mod distributed;
mod embedded;
mod faults;
mod fuzz;
mod live;
mod observability;
mod operations;
mod races;
mod shop_races;
mod traces;
mod webhooks;
mod write_path;
