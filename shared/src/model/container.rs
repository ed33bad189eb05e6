//! The container every artifact shares: header + payload, checked before anything is decoded.
//!
//! ```text
//! offset  size  field
//! 0       4     magic "QMED"
//! 4       2     format version, u16 little-endian
//! 6       2     kind, u16 little-endian (see `Kind`)
//! 8       4     payload length in bytes, u32 little-endian
//! 12      4     CRC-32 (ISO-HDLC, as zlib) of the payload, u32 little-endian
//! 16      n     payload (postcard)
//! ```

use super::{Error, Result};

/// The first four bytes of every artifact.
pub const MAGIC: [u8; 4] = *b"QMED";
/// The container and payload layout version this build reads and writes.
pub const FORMAT_VERSION: u16 = 1;
/// Bytes before the payload.
pub const HEADER_LEN: usize = 16;

const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// What an artifact holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u16)]
pub enum Kind {
    /// The circuit and the linear head ([`super::QuantumHead`]).
    QuantumHead = 1,
    /// The integer CNN ([`super::IntCnn`]).
    IntCnn = 2,
}

/// A parsed, verified header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Format version.
    pub version: u16,
    /// Artifact kind, as stored.
    pub kind: u16,
    /// Payload length.
    pub payload_len: u32,
    /// CRC-32 of the payload.
    pub crc: u32,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Checks the header and the checksum of `bytes`, and returns the payload.
///
/// # Errors
/// Every way the bytes can fail to be a `kind` artifact of this format version, checked in
/// the order of the layout (magic, version, kind, length, checksum).
pub fn open(bytes: &[u8], kind: Kind) -> Result<&[u8]> {
    if bytes.len() < HEADER_LEN {
        return Err(Error::TooShort { len: bytes.len() });
    }
    if bytes[..4] != MAGIC {
        return Err(Error::BadMagic);
    }
    let header = Header {
        version: u16_at(bytes, 4),
        kind: u16_at(bytes, 6),
        payload_len: u32_at(bytes, 8),
        crc: u32_at(bytes, 12),
    };
    if header.version != FORMAT_VERSION {
        return Err(Error::UnsupportedVersion { found: header.version });
    }
    if header.kind != kind as u16 {
        return Err(Error::WrongKind { expected: kind as u16, found: header.kind });
    }
    let payload = &bytes[HEADER_LEN..];
    if payload.len() as u64 != u64::from(header.payload_len) {
        return Err(Error::Length { declared: header.payload_len, available: payload.len() });
    }
    let computed = CRC.checksum(payload);
    if computed != header.crc {
        return Err(Error::Checksum { stored: header.crc, computed });
    }
    Ok(payload)
}

/// Writes the header for `payload_len` bytes already placed at `buf[HEADER_LEN..]`, and
/// returns the whole artifact.
///
/// # Errors
/// [`Error::BufferTooSmall`] when `buf` cannot hold header and payload.
pub fn seal_into(buf: &mut [u8], kind: Kind, payload_len: usize) -> Result<&mut [u8]> {
    let total = HEADER_LEN.checked_add(payload_len).ok_or(Error::BufferTooSmall)?;
    let len32 = u32::try_from(payload_len).map_err(|_| Error::BufferTooSmall)?;
    let buf = buf.get_mut(..total).ok_or(Error::BufferTooSmall)?;
    let crc = CRC.checksum(&buf[HEADER_LEN..]);
    buf[..4].copy_from_slice(&MAGIC);
    buf[4..6].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    buf[6..8].copy_from_slice(&(kind as u16).to_le_bytes());
    buf[8..12].copy_from_slice(&len32.to_le_bytes());
    buf[12..16].copy_from_slice(&crc.to_le_bytes());
    Ok(buf)
}

/// Opens a `kind` artifact and decodes its whole payload as `T`.
pub(crate) fn decode<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8], kind: Kind) -> Result<T> {
    let (value, rest) = postcard::take_from_bytes(open(bytes, kind)?).map_err(|_| Error::Payload)?;
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(Error::Payload)
    }
}

/// Encodes `value` as a `kind` artifact into `buf`; returns the artifact's bytes.
pub(crate) fn encode_into<'b, T: serde::Serialize>(
    value: &T,
    kind: Kind,
    buf: &'b mut [u8],
) -> Result<&'b mut [u8]> {
    let body = buf.get_mut(HEADER_LEN..).ok_or(Error::BufferTooSmall)?;
    let len = postcard::to_slice(value, body).map_err(|_| Error::BufferTooSmall)?.len();
    seal_into(buf, kind, len)
}

/// Encodes `value` as a `kind` artifact into a new vector.
#[cfg(any(test, feature = "alloc"))]
pub(crate) fn encode_to_vec<T: serde::Serialize>(value: &T, kind: Kind) -> alloc::vec::Vec<u8> {
    // Serialising plain numbers, arrays and byte slices into a growable vector cannot fail.
    let payload = postcard::to_allocvec(value).unwrap_or_default();
    seal_to_vec(kind, &payload)
}

/// Header + `payload` as a new vector.
#[cfg(any(test, feature = "alloc"))]
pub fn seal_to_vec(kind: Kind, payload: &[u8]) -> alloc::vec::Vec<u8> {
    let mut out = alloc::vec![0; HEADER_LEN + payload.len()];
    out[HEADER_LEN..].copy_from_slice(payload);
    // Cannot fail: the buffer was sized for the payload, which came from a slice.
    let _ = seal_into(&mut out, kind, payload.len());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout_is_pinned() {
        let sealed = seal_to_vec(Kind::QuantumHead, b"abc");
        // CRC-32/ISO-HDLC("abc") = 0x352441c2
        assert_eq!(
            sealed,
            [b'Q', b'M', b'E', b'D', 1, 0, 1, 0, 3, 0, 0, 0, 0xc2, 0x41, 0x24, 0x35, b'a', b'b', b'c']
        );
        assert_eq!(open(&sealed, Kind::QuantumHead), Ok(&b"abc"[..]));
    }

    #[test]
    fn every_damage_is_named() {
        let good = seal_to_vec(Kind::QuantumHead, b"payload");
        assert_eq!(open(&good[..10], Kind::QuantumHead), Err(Error::TooShort { len: 10 }));
        let mut bad = good.clone();
        bad[0] = b'X';
        assert_eq!(open(&bad, Kind::QuantumHead), Err(Error::BadMagic));
        let mut bad = good.clone();
        bad[4] = 9;
        assert_eq!(open(&bad, Kind::QuantumHead), Err(Error::UnsupportedVersion { found: 9 }));
        let mut bad = good.clone();
        bad[6] = 7;
        assert!(matches!(open(&bad, Kind::QuantumHead), Err(Error::WrongKind { found: 7, .. })));
        assert!(matches!(open(&good[..good.len() - 1], Kind::QuantumHead), Err(Error::Length { .. })));
        let mut bad = good.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(matches!(open(&bad, Kind::QuantumHead), Err(Error::Checksum { .. })));
    }
}
