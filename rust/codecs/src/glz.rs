//! GLZ: LZ with references into earlier images of the same display channel. The decoder
//! object keeps that window (stream-order words per image id), evicting images the server
//! says are no longer referenced (win_head_dist) and, as a hard bound, the oldest ones past
//! `max_bytes`.
use std::collections::BTreeMap;

use crate::error::{CodecError, Result};
use crate::image::Image;
use crate::lz_core::{decode_body, lz_type, Source, Window};
use crate::lz_header::read_glz_header;
pub use crate::lz_header::GlzHeader;
use crate::reader::Reader;

const CODEC: &str = "glz";

/// Read what follows a GLZ match control byte: (raw length, source).
fn parse_glz_match(ctrl: u8, r: &mut Reader) -> Result<(usize, Source)> {
    let mut len = (ctrl >> 5) as usize;
    if len == 7 {
        loop {
            let c = r.u8()?;
            len += c as usize;
            if c != 255 {
                break;
            }
        }
    }
    let mut ofs = (ctrl & 0x0f) as usize | ((r.u8()? as usize) << 4);
    let code = r.u8()?;
    let extra = (code >> 6) as usize;
    let mut image_dist: u32;
    if ctrl & 0x10 == 0 {
        // short pixel offset: the rest of the byte starts the image distance
        image_dist = (code & 0x3f) as u32;
        for i in 0..extra {
            image_dist += (r.u8()? as u32) << (6 + 8 * i);
        }
    } else {
        ofs += ((code & 0x1f) as usize) << 12;
        image_dist = 0;
        for i in 0..extra {
            image_dist += (r.u8()? as u32) << (8 * i);
        }
        if code & 0x20 != 0 {
            ofs += (r.u8()? as usize) << 17;
        }
    }
    if image_dist == 0 {
        Ok((len, Source::Back(ofs + 1)))
    } else {
        Ok((len, Source::Window { image_dist, ofs }))
    }
}

struct Entry {
    words: Vec<u32>,
    win_head_dist: u32,
}

/// The client-side GLZ window of one display channel.
pub struct GlzDictionary {
    images: BTreeMap<u64, Entry>,
    bytes: usize,
    max_bytes: usize,
    /// next id after the last run of consecutive ids seen (upstream's "tail gap")
    tail: Option<u64>,
    pub max_pixels: u64,
}

struct View<'a> {
    images: &'a BTreeMap<u64, Entry>,
    id: u64,
}

impl Window for View<'_> {
    fn image(&self, image_dist: u32) -> Result<&[u32]> {
        let wanted = self.id.checked_sub(image_dist as u64).ok_or(CodecError::Corrupt {
            codec: CODEC,
            offset: 0,
            msg: format!("image {} refers {} images back", self.id, image_dist),
        })?;
        match self.images.get(&wanted) {
            Some(e) => Ok(&e.words),
            None => Err(CodecError::MissingReference { image_id: self.id, wanted_id: wanted }),
        }
    }
}

impl GlzDictionary {
    pub fn new(max_bytes: usize, max_pixels: u64) -> Self {
        GlzDictionary { images: BTreeMap::new(), bytes: 0, max_bytes, tail: None, max_pixels }
    }

    pub fn len(&self) -> usize {
        self.images.len()
    }

    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// Bytes of pixels held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Ids of the images held, oldest first.
    pub fn ids(&self) -> Vec<u64> {
        self.images.keys().copied().collect()
    }

    pub fn clear(&mut self) {
        self.images.clear();
        self.bytes = 0;
        self.tail = None;
    }

    /// Decode one GLZ image and add it to the window.
    pub fn decode(&mut self, data: &[u8], palette: Option<&[u32]>) -> Result<Image> {
        let mut r = Reader::new(data, CODEC);
        let h = read_glz_header(&mut r)?;
        let view = View { images: &self.images, id: h.id };
        let dims = (h.width, h.height, h.stride);
        let (row, words) = decode_body(&mut r, h.kind, dims, palette, self.max_pixels, Some(&view), parse_glz_match)?;
        let img = Image::from_words(h.width as usize, h.height as usize, row, words.clone(), h.top_down, h.kind != lz_type::RGBA);
        self.insert(h.id, words, h.win_head_dist);
        Ok(img)
    }

    fn insert(&mut self, id: u64, words: Vec<u32>, win_head_dist: u32) {
        self.bytes += words.len() * 4;
        if let Some(old) = self.images.insert(id, Entry { words, win_head_dist }) {
            self.bytes -= old.words.len() * 4;
        }
        // advance over consecutive ids; a capture that starts mid-session starts the run here
        let mut tail = match self.tail {
            Some(t) if t <= id => t,
            Some(t) => t,
            None => id,
        };
        while self.images.contains_key(&tail) {
            tail += 1;
        }
        self.tail = Some(tail);
        if let Some(last) = tail.checked_sub(1).and_then(|t| self.images.get(&t).map(|e| (t, e.win_head_dist))) {
            let oldest = last.0.saturating_sub(last.1 as u64);
            while let Some((&first, _)) = self.images.first_key_value() {
                if first >= oldest {
                    break;
                }
                self.remove(first);
            }
        }
        // hard memory bound, whatever the stream says
        while self.bytes > self.max_bytes && self.images.len() > 1 {
            let first = *self.images.keys().next().expect("non-empty");
            self.remove(first);
        }
    }

    fn remove(&mut self, id: u64) {
        if let Some(e) = self.images.remove(&id) {
            self.bytes -= e.words.len() * 4;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kind: u8, width: u32, height: u32, id: u64, win_head_dist: u32) -> Vec<u8> {
        let mut v = Vec::new();
        GlzHeader { kind: kind as u32, top_down: true, width, height, stride: width * 4, id, win_head_dist }.write(&mut v);
        v
    }

    #[test]
    fn reference_into_previous_image_and_missing_reference() {
        let mut d = GlzDictionary::new(1 << 20, 1 << 20);
        let mut a = header(8, 2, 1, 5, 0);
        a.extend_from_slice(&[1, 1, 2, 3, 4, 5, 6]);
        let ia = d.decode(&a, None).unwrap();
        assert_eq!(ia.bgra(), vec![1, 2, 3, 255, 4, 5, 6, 255]);
        // image 6: copy 2 pixels from image 5 at pixel 0: len field 2, short offset, image_dist 1
        let mut b = header(8, 2, 1, 6, 1);
        b.extend_from_slice(&[2 << 5, 0, 1]);
        assert_eq!(d.decode(&b, None).unwrap().bgra(), ia.bgra());
        // image 9 refers to 8, which never came
        let mut c = header(8, 2, 1, 9, 1);
        c.extend_from_slice(&[2 << 5, 0, 1]);
        assert!(matches!(d.decode(&c, None), Err(CodecError::MissingReference { image_id: 9, wanted_id: 8 })));
    }

    #[test]
    fn window_evicts_what_win_head_dist_releases() {
        let mut d = GlzDictionary::new(1 << 20, 1 << 20);
        for id in 0..10u64 {
            let mut a = header(8, 1, 1, id, 2);
            a.extend_from_slice(&[0, 1, 2, 3]);
            d.decode(&a, None).unwrap();
        }
        assert_eq!(d.ids(), vec![7, 8, 9]);
    }
}
