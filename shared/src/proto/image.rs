//! Images in chunks: [`image_chunks`] splits one on the host, [`ImageAssembler`] puts it back
//! together on the device.

use super::{Error, HostToDevice, Result, CHUNK_LEN};
use crate::model::IMAGE_LEN;

/// The messages that carry `image`, in the order they must be sent.
pub fn image_chunks(image_id: u32, image: &[u8; IMAGE_LEN]) -> impl Iterator<Item = HostToDevice<'_>> {
    // IMAGE_LEN fits u16 (checked in `message`), so every offset does.
    image.chunks(CHUNK_LEN).enumerate().map(move |(index, data)| HostToDevice::ImageChunk {
        image_id,
        offset: (index * CHUNK_LEN) as u16,
        data,
    })
}

/// Collects the chunks of one image at a time. Rules: a chunk at offset 0 starts an image
/// (dropping any partial one); any other chunk must continue the image with the same id
/// exactly where it stopped; any refused chunk drops the partial image.
#[derive(Debug, Clone)]
pub struct ImageAssembler {
    image: [u8; IMAGE_LEN],
    image_id: u32,
    /// Bytes of `image` received so far; 0 when no image is in progress.
    received: usize,
}

impl Default for ImageAssembler {
    fn default() -> Self {
        Self::new()
    }
}

impl ImageAssembler {
    /// An assembler with no image in progress.
    pub const fn new() -> Self {
        Self { image: [0; IMAGE_LEN], image_id: 0, received: 0 }
    }

    /// Drops the partial image, if any.
    pub fn reset(&mut self) {
        self.received = 0;
    }

    /// Adds one chunk; returns the image once its last byte has arrived.
    ///
    /// # Errors
    /// [`Error::ChunkOutOfBounds`] for an empty chunk, one longer than [`CHUNK_LEN`] or one
    /// past the image's end; [`Error::ChunkOutOfOrder`] for a chunk that does not continue
    /// the image in progress.
    pub fn accept(&mut self, image_id: u32, offset: u16, data: &[u8]) -> Result<Option<&[u8; IMAGE_LEN]>> {
        let start = usize::from(offset);
        let end = start + data.len();
        if data.is_empty() || data.len() > CHUNK_LEN || end > IMAGE_LEN {
            self.reset();
            let len = u16::try_from(data.len()).unwrap_or(u16::MAX);
            return Err(Error::ChunkOutOfBounds { offset, len });
        }
        let in_progress = self.received > 0 && self.image_id == image_id;
        let expected = if in_progress { self.received } else { 0 };
        if start != 0 && start != expected {
            self.reset();
            // `expected` is below IMAGE_LEN, which fits u16.
            return Err(Error::ChunkOutOfOrder { expected_offset: expected as u16 });
        }
        self.image_id = image_id;
        self.image[start..end].copy_from_slice(data);
        if end == IMAGE_LEN {
            self.reset();
            Ok(Some(&self.image))
        } else {
            self.received = end;
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> [u8; IMAGE_LEN] {
        core::array::from_fn(|i| (i * 7 % 251) as u8)
    }

    fn chunk(message: HostToDevice<'_>) -> (u32, u16, &[u8]) {
        match message {
            HostToDevice::ImageChunk { image_id, offset, data } => (image_id, offset, data),
            other => panic!("not a chunk: {other:?}"),
        }
    }

    #[test]
    fn chunks_reassemble_to_the_image() {
        let image = image();
        let mut assembler = ImageAssembler::new();
        let chunks: Vec<_> = image_chunks(9, &image).map(chunk).collect();
        assert_eq!(chunks.len(), IMAGE_LEN / CHUNK_LEN);
        let (last, first) = chunks.split_last().unwrap();
        for &(id, offset, data) in first {
            assert_eq!(assembler.accept(id, offset, data), Ok(None));
        }
        assert_eq!(assembler.accept(last.0, last.1, last.2), Ok(Some(&image)));
    }

    #[test]
    fn a_lost_chunk_drops_the_image_and_offset_zero_restarts() {
        let image = image();
        let mut assembler = ImageAssembler::new();
        let chunks: Vec<_> = image_chunks(3, &image).map(chunk).collect();
        assert_eq!(assembler.accept(3, 0, chunks[0].2), Ok(None));
        assert_eq!(
            assembler.accept(3, chunks[2].1, chunks[2].2),
            Err(Error::ChunkOutOfOrder { expected_offset: CHUNK_LEN as u16 })
        );
        // The partial image is gone: continuing it is refused too.
        assert_eq!(
            assembler.accept(3, chunks[1].1, chunks[1].2),
            Err(Error::ChunkOutOfOrder { expected_offset: 0 })
        );
        let complete: Vec<_> =
            chunks.iter().map(|&(id, o, d)| assembler.accept(id, o, d).map(|i| i.is_some())).collect();
        let mut expected = vec![Ok(false); chunks.len()];
        expected[chunks.len() - 1] = Ok(true);
        assert_eq!(complete, expected);
    }

    #[test]
    fn another_image_id_does_not_continue_the_image_in_progress() {
        let mut assembler = ImageAssembler::new();
        assert_eq!(assembler.accept(1, 0, &[1; CHUNK_LEN]), Ok(None));
        assert_eq!(
            assembler.accept(2, CHUNK_LEN as u16, &[1; CHUNK_LEN]),
            Err(Error::ChunkOutOfOrder { expected_offset: 0 })
        );
    }

    #[test]
    fn chunks_outside_the_image_are_refused() {
        let mut assembler = ImageAssembler::new();
        assert_eq!(assembler.accept(1, 0, &[]), Err(Error::ChunkOutOfBounds { offset: 0, len: 0 }));
        assert_eq!(
            assembler.accept(1, 0, &[0; CHUNK_LEN + 1]),
            Err(Error::ChunkOutOfBounds { offset: 0, len: CHUNK_LEN as u16 + 1 })
        );
        assert_eq!(
            assembler.accept(1, 4000, &[0; 200]),
            Err(Error::ChunkOutOfBounds { offset: 4000, len: 200 })
        );
        assert_eq!(
            assembler.accept(1, u16::MAX, &[0; 1]),
            Err(Error::ChunkOutOfBounds { offset: u16::MAX, len: 1 })
        );
    }
}
