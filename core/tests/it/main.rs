//! Consensus test suite of `cairn-core`: every rule with a block that breaks exactly that
//! rule, reorgs checked against a fresh replay, fork choice checked against a brute-force
//! model, the supply schedule, and encoding round trips. One binary, so it links once.

mod contextual;
mod encoding;
mod fork_choice_model;
mod reorg;
mod rules;
mod supply;
mod support;
mod timewarp;
