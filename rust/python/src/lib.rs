//! spicetool._native: the Python face of spice-codecs. Bytes/numpy in, bytes/numpy out.
use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("CODECS_VERSION", spice_codecs::VERSION)?;
    Ok(())
}
