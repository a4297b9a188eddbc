//! A bounds-checked cursor over untrusted bytes: every read past the end is an error.
use crate::error::{corrupt, Result};

pub(crate) struct Reader<'a> {
    pub data: &'a [u8],
    pub pos: usize,
    pub codec: &'static str,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8], codec: &'static str) -> Self {
        Reader { data, pos: 0, codec }
    }

    #[inline]
    pub fn u8(&mut self) -> Result<u8> {
        match self.data.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => corrupt(self.codec, self.pos, "stream ends too early"),
        }
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.data.len() - self.pos < n {
            return corrupt(self.codec, self.pos, format!("stream ends too early ({n} bytes wanted)"));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn be32(&mut self) -> Result<u32> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn be64(&mut self) -> Result<u64> {
        Ok(((self.be32()? as u64) << 32) | self.be32()? as u64)
    }

    pub fn fail<T>(&self, msg: impl Into<String>) -> Result<T> {
        corrupt(self.codec, self.pos, msg)
    }
}
