//! spicetool._native: the Python face of spice-codecs. Bytes in, (width, height, uint32 array
//! of pixel words, B,G,R,A in memory) out; errors become DecodeError / MissingReference / ImageTooLarge.
//! The codecs run with the GIL released.
use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use numpy::{IntoPyArray, PyArray1, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use spice_codecs::{CodecError, Image};

/// Large blocks are kept when freed and handed out again (spice_codecs::keep): no fresh
/// pages to fault in on every call.
#[global_allocator]
static ALLOC: spice_codecs::keep::KeepLarge = spice_codecs::keep::KeepLarge::new();

create_exception!(_native, DecodeError, PyValueError, "A corrupt, truncated or unsupported image stream.");
create_exception!(_native, MissingReference, DecodeError, "A GLZ image refers to a dictionary image not held.");
create_exception!(_native, ImageTooLarge, DecodeError, "The declared image size exceeds the configured ceiling.");

fn to_py(e: CodecError) -> PyErr {
    let msg = e.to_string();
    match e {
        CodecError::MissingReference { .. } => MissingReference::new_err(msg),
        CodecError::TooLarge { .. } => ImageTooLarge::new_err(msg),
        CodecError::Corrupt { .. } => DecodeError::new_err(msg),
    }
}

/// (width, height, flat uint32 array of 0xAARRGGBB words that owns the decoder's buffer).
type Decoded<'py> = (usize, usize, Bound<'py, PyArray1<u32>>);

fn out(py: Python<'_>, r: Result<Image, CodecError>) -> PyResult<Decoded<'_>> {
    let img = r.map_err(to_py)?;
    // hand the buffer over without copying it
    Ok((img.width, img.height, img.words.into_pyarray(py)))
}

/// Palette given as little-endian u32 words (0x00RRGGBB).
fn palette_words(p: Option<&[u8]>) -> PyResult<Option<Vec<u32>>> {
    match p {
        None => Ok(None),
        Some(b) if b.len() % 4 != 0 => Err(DecodeError::new_err("palette bytes are not whole 32-bit entries")),
        Some(b) => Ok(Some(b.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())),
    }
}

#[pyfunction]
#[pyo3(signature = (format, width, height, stride, top_down, data, palette, max_pixels))]
#[allow(clippy::too_many_arguments)]
fn decode_bitmap<'py>(
    py: Python<'py>,
    format: u8,
    width: usize,
    height: usize,
    stride: usize,
    top_down: bool,
    data: &[u8],
    palette: Option<&[u8]>,
    max_pixels: u64,
) -> PyResult<Decoded<'py>> {
    let pal = palette_words(palette)?;
    let r = py.detach(|| {
        spice_codecs::bitmap::decode_bitmap(format, width, height, stride, top_down, data, pal.as_deref(), max_pixels)
    });
    out(py, r)
}

#[pyfunction]
fn decode_quic<'py>(py: Python<'py>, data: &[u8], max_pixels: u64) -> PyResult<Decoded<'py>> {
    let r = py.detach(|| spice_codecs::quic::decode_quic(data, max_pixels));
    out(py, r)
}

#[pyfunction]
#[pyo3(signature = (data, palette, max_pixels))]
fn decode_lz<'py>(py: Python<'py>, data: &[u8], palette: Option<&[u8]>, max_pixels: u64) -> PyResult<Decoded<'py>> {
    let pal = palette_words(palette)?;
    let r = py.detach(|| spice_codecs::lz::decode_lz(data, pal.as_deref(), max_pixels));
    out(py, r)
}

#[pyfunction]
fn decode_lz4<'py>(py: Python<'py>, data: &[u8], width: usize, height: usize, max_pixels: u64) -> PyResult<Decoded<'py>> {
    let r = py.detach(|| spice_codecs::lz4::decode_lz4(data, width, height, max_pixels));
    out(py, r)
}

#[pyfunction]
fn decode_jpeg<'py>(py: Python<'py>, data: &[u8], max_pixels: u64) -> PyResult<Decoded<'py>> {
    let r = py.detach(|| spice_codecs::jpeg::decode_jpeg(data, max_pixels));
    out(py, r)
}

#[pyfunction]
fn decode_jpeg_alpha<'py>(py: Python<'py>, data: &[u8], jpeg_size: usize, top_down: bool, max_pixels: u64) -> PyResult<Decoded<'py>> {
    let r = py.detach(|| spice_codecs::jpeg::decode_jpeg_alpha(data, jpeg_size, top_down, max_pixels));
    out(py, r)
}

/// The bytes of a C-contiguous uint8 array, read in place (no copy). As with any buffer
/// handed to a codec that runs without the GIL, the caller does not change the array
/// while the call runs.
fn array_bytes<'a>(arr: &'a PyReadonlyArrayDyn<'_, u8>) -> PyResult<&'a [u8]> {
    if !arr.is_c_contiguous() {
        return Err(PyValueError::new_err("the pixels must be a C-contiguous uint8 array"));
    }
    arr.as_slice().map_err(|e| PyValueError::new_err(e.to_string()))
}

/// The B,G,R,A bytes must be exactly width*height*4.
fn check_bgra(bgra: &[u8], width: u32, height: u32) -> PyResult<()> {
    let n = (width as usize).checked_mul(height as usize).and_then(|n| n.checked_mul(4));
    if n != Some(bgra.len()) {
        return Err(PyValueError::new_err(format!("{} bytes of pixels for a {width}x{height} image", bgra.len())));
    }
    Ok(())
}

fn encoded(py: Python<'_>, r: Option<Vec<u8>>, what: &str) -> PyResult<Py<PyBytes>> {
    match r {
        Some(v) => Ok(PyBytes::new(py, &v).unbind()),
        None => Err(PyValueError::new_err(format!("{what}: unsupported image type or empty image"))),
    }
}

#[pyfunction]
fn encode_quic(py: Python<'_>, bgra: PyReadonlyArrayDyn<'_, u8>, width: u32, height: u32, kind: u32) -> PyResult<Py<PyBytes>> {
    let bgra = array_bytes(&bgra)?;
    check_bgra(bgra, width, height)?;
    let r = py.detach(|| spice_codecs::quic_encode::encode_quic_bgra(bgra, width, height, kind));
    encoded(py, r, "quic")
}

#[pyfunction]
fn encode_lz(py: Python<'_>, bgra: PyReadonlyArrayDyn<'_, u8>, width: u32, height: u32, kind: u32) -> PyResult<Py<PyBytes>> {
    let bgra = array_bytes(&bgra)?;
    check_bgra(bgra, width, height)?;
    // The words are read in place when the array is aligned (no copy).
    let r = py.detach(|| spice_codecs::lz_encode::encode_lz_bgra(bgra, width, height, kind));
    encoded(py, r, "lz")
}

#[pyfunction]
fn encode_lz4(py: Python<'_>, packed: PyReadonlyArrayDyn<'_, u8>, format: u8) -> PyResult<Py<PyBytes>> {
    let packed = array_bytes(&packed)?;
    let r = py.detach(|| spice_codecs::lz4_encode::encode_lz4(packed, format));
    encoded(py, r, "lz4")
}

/// The GLZ encoder of one display channel (numbers images, matches into earlier ones).
#[pyclass(module = "spicetool._native")]
struct GlzEncoder {
    inner: spice_codecs::lz_encode::GlzEncoder,
}

#[pymethods]
impl GlzEncoder {
    #[new]
    fn new(max_images: usize) -> Self {
        GlzEncoder { inner: spice_codecs::lz_encode::GlzEncoder::new(max_images) }
    }

    fn encode(&mut self, py: Python<'_>, bgra: PyReadonlyArrayDyn<'_, u8>, width: u32, height: u32, kind: u32) -> PyResult<Py<PyBytes>> {
        let bgra = array_bytes(&bgra)?;
        check_bgra(bgra, width, height)?;
        let inner = &mut self.inner;
        let r = py.detach(|| inner.encode_bgra(bgra, width, height, kind));
        encoded(py, r, "glz")
    }
}

/// The GLZ window of one display channel.
#[pyclass(module = "spicetool._native")]
struct GlzWindow {
    inner: spice_codecs::glz::GlzDictionary,
}

#[pymethods]
impl GlzWindow {
    #[new]
    fn new(max_bytes: usize, max_pixels: u64) -> Self {
        GlzWindow { inner: spice_codecs::glz::GlzDictionary::new(max_bytes, max_pixels) }
    }

    #[pyo3(signature = (data, palette=None))]
    fn decode<'py>(&mut self, py: Python<'py>, data: &[u8], palette: Option<&[u8]>) -> PyResult<Decoded<'py>> {
        let pal = palette_words(palette)?;
        let inner = &mut self.inner;
        let r = py.detach(|| inner.decode(data, pal.as_deref()));
        out(py, r)
    }

    fn ids(&self) -> Vec<u64> {
        self.inner.ids()
    }

    #[getter]
    fn nbytes(&self) -> usize {
        self.inner.bytes()
    }

    fn clear(&mut self) {
        self.inner.clear()
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("CODECS_VERSION", spice_codecs::VERSION)?;
    m.add("DEFAULT_MAX_PIXELS", spice_codecs::DEFAULT_MAX_PIXELS)?;
    m.add("DecodeError", py.get_type::<DecodeError>())?;
    m.add("MissingReference", py.get_type::<MissingReference>())?;
    m.add("ImageTooLarge", py.get_type::<ImageTooLarge>())?;
    m.add_function(wrap_pyfunction!(decode_bitmap, m)?)?;
    m.add_function(wrap_pyfunction!(decode_quic, m)?)?;
    m.add_function(wrap_pyfunction!(decode_lz, m)?)?;
    m.add_function(wrap_pyfunction!(decode_lz4, m)?)?;
    m.add_function(wrap_pyfunction!(decode_jpeg, m)?)?;
    m.add_function(wrap_pyfunction!(decode_jpeg_alpha, m)?)?;
    m.add_class::<GlzWindow>()?;
    m.add_function(wrap_pyfunction!(encode_quic, m)?)?;
    m.add_function(wrap_pyfunction!(encode_lz, m)?)?;
    m.add_function(wrap_pyfunction!(encode_lz4, m)?)?;
    m.add_class::<GlzEncoder>()?;
    Ok(())
}
