//! The wheel's `tradeauth` console script: the Rust command line (`cli/`), run in this
//! process so `pip install tradeauth` brings the same tool as `cargo install`.

use pyo3::prelude::*;

/// Runs the command line on `argv` (the program name first) with the GIL released;
/// answers the exit code. Output goes straight to the process's stdout and stderr.
#[pyfunction]
pub(crate) fn _cli_main(py: Python<'_>, argv: Vec<String>) -> i32 {
    py.detach(|| tradeauth_cli::run(argv))
}
