//! Shared by the benchmarks: their tokio runtime and options for the in-process simulator.

#![allow(dead_code)]

use tradeauth::Options;
use tradeauth_sim::{Sim, Venue};

/// A multi-threaded runtime with `worker_threads` workers, timers and I/O on.
pub fn runtime(worker_threads: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(worker_threads)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Options for one simulated venue, trusting the simulator's CA.
pub fn options(sim: &Sim, venue: Venue) -> Options {
    Options::new()
        .base_url(sim.urls().venue(venue))
        .add_root_pem(sim.ca_pem())
}
