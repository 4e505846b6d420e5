//! Native module `tradeauth._native`. The Python API lands with the Python wheel issue.

use pyo3::prelude::*;

/// The `tradeauth._native` module: for now it only reports the library version.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", tradeauth::VERSION)?;
    Ok(())
}
