#!/usr/bin/env python3
"""Generator of the golden frames in proto_golden.rs, independent of postcard and of Rust.

Encodes each message by hand with postcard's rules (varints, zigzag for signed integers,
variant index as a varint, arrays without a length), appends zlib's CRC-32 little-endian,
COBS-encodes the result and puts a 0x00 delimiter on each side.
Run: python3 shared/tests/proto_golden.py
"""
import zlib


def varint(n):
    out = []
    while True:
        byte, n = n & 0x7F, n >> 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return out


def zigzag32(n):
    return ((n << 1) ^ (n >> 31)) & 0xFFFFFFFF


def cobs(data):
    out, block = [], []
    for byte in data:
        if byte == 0:
            out += [len(block) + 1] + block
            block = []
        else:
            block.append(byte)
            if len(block) == 254:
                out += [255] + block
                block = []
    return out + [len(block) + 1] + block


def frame(body):
    crc = zlib.crc32(bytes(body)).to_bytes(4, "little")
    return [0] + cobs(body + list(crc)) + [0]


CASES = {
    # HostToDevice::Hello { protocol_version: 1 }
    "host hello": [0] + varint(1),
    # HostToDevice::ImageChunk { image_id: 7, offset: 1024, data: [1, 2, 3] }
    "host chunk": [1] + varint(7) + varint(1024) + varint(3) + [1, 2, 3],
    # DeviceToHost::Hello(DeviceHello { protocol_version: 1, model_hash: [0x11; 32], model_available: true })
    "device hello": [0] + varint(1) + [0x11] * 32 + [1],
    # DeviceToHost::Classified { image_id: 300, class: 2, logits, elapsed_us: 123456 }
    "device classified": [1]
    + varint(300)
    + [2]
    + sum((varint(zigzag32(x)) for x in [-1, 0, 1, 65536, -65536, 2**31 - 1]), [])
    + varint(123456),
    # DeviceToHost::Error { image_id: None, error: BadCrc (index 2) }
    "device bad crc": [2, 0, 2],
    # DeviceToHost::Error { image_id: Some(5), error: ChunkOutOfOrder (6) { expected_offset: 2048 } }
    "device out of order": [2, 1] + varint(5) + [6] + varint(2048),
    # DeviceToHost::Error { image_id: None, error: VersionMismatch (5) { device: 1, host: 2 } }
    "device version mismatch": [2, 0, 5] + varint(1) + varint(2),
}

if __name__ == "__main__":
    for name, body in CASES.items():
        print(f"{name} ({len(frame(body))} bytes): " + ", ".join(f"0x{b:02x}" for b in frame(body)))
