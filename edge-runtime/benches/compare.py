"""Cross-checks and times the edge runtime's model against onnxruntime and PennyLane + torch.

    python3 -m venv /tmp/cmp && /tmp/cmp/bin/pip install -r edge-runtime/benches/requirements.txt
    cargo build --release -p edge-runtime
    /tmp/cmp/bin/python edge-runtime/benches/compare.py          # from the workspace root

Everything is read from the committed model: the CNN from `models/hybrid.onnx`, the circuit
weights and the head from `models/quantum-head.qmed` (parsed here from its documented layout,
`docs/model-format.md`, CRC checked). Images are the split's test files decoded with Pillow.

1. Reference: onnxruntime runs the CNN, numpy simulates the circuit as PennyLane defines it
   (`AngleEmbedding` X, `StronglyEntanglingLayers`, `<Z_i>`), then the head and softmax.
   Its accuracy on all test images is printed beside the model card's. (Pillow's JPEG decoder
   rounds about one pixel value in many by 1 differently from the `image` crate the trainer
   and the runtime use, so the two accuracies may differ by an image or two.)
2. Agreement: every 20th test image is written as a lossless PNG of Pillow's pixels, so the
   runtime sees exactly the reference's input; `edge-runtime classify --csv` must give the
   same classes and probabilities within 1e-5 (its CSV prints 6 decimals).
3. PennyLane + torch: the same model (torch CNN with the ONNX weights, PennyLane
   `default.qubit` circuit with the torch interface, batched by parameter broadcasting) must
   match the reference within 1e-5.
4. Speed: images/s and latency p50/p99 per call for batches of 1, 64 and 4096, one thread and
   all threads: onnxruntime (CNN alone, and CNN + numpy circuit) and PennyLane + torch. The
   runtime's own figures come from `cargo bench -p edge-runtime --bench throughput`.
   torch runs with OMP_WAIT_POLICY=PASSIVE (set below), without which it is 5x slower on a
   2-core machine.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import json
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
CLASSES = ["AbdomenCT", "BreastMRI", "CXR", "ChestCT", "Hand", "HeadCT"]
# The release binary; EDGE_RUNTIME names another build (CARGO_TARGET_DIR elsewhere).
RUNTIME = Path(os.environ.get("EDGE_RUNTIME", ROOT / "target" / "release" / "edge-runtime"))


def read_head(path):
    """Circuit rotation, ranges, weights [L,4,3] and head W [6,4], b [6] from a QuantumHead
    container: 16-byte header, then postcard (varint lengths, f32 little endian, zigzag
    varint i32)."""
    raw = path.read_bytes()
    magic, version, kind, length, crc = struct.unpack_from("<4sHHII", raw)
    payload = raw[16 : 16 + length]
    assert (magic, version, kind) == (b"QMED", 1, 1) and zlib.crc32(payload) == crc, "not a v1 QuantumHead"
    pos = 0

    def varint():
        nonlocal pos
        value = shift = 0
        while True:
            byte = payload[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value

    def f32(count):
        nonlocal pos
        values = struct.unpack_from(f"<{count}f", payload, pos)
        pos += 4 * count
        return np.array(values, dtype=np.float64)

    rotation = "XYZ"[varint()]
    ranges = [payload[pos + i] for i in range(varint())]
    pos += len(ranges)
    layers = varint()
    weights = f32(layers * 12).reshape(layers, 4, 3)
    for _ in range(2 * 16 * 16):  # the Q30 unitary (the firmware's), not needed here
        varint()
    head_w, head_b = f32(24).reshape(6, 4), f32(6)
    for _ in range(30):  # the fixed-point head
        varint()
    assert pos == len(payload), "unexpected QuantumHead layout"
    return rotation, ranges, weights, head_w, head_b


ROTATION, RANGES, WEIGHTS, HEAD_W, HEAD_B = read_head(ROOT / "models" / "quantum-head.qmed")
assert ROTATION == "X", ROTATION


def circuit_unitary():
    """16x16 unitary of the StronglyEntanglingLayers; wire 0 is the most significant bit."""

    def on(wire, gate):
        m = np.eye(1)
        for w in range(4):
            m = np.kron(m, gate if w == wire else np.eye(2))
        return m

    def rz(a):
        return np.diag([np.exp(-0.5j * a), np.exp(0.5j * a)])

    def ry(a):
        c, s = np.cos(a / 2), np.sin(a / 2)
        return np.array([[c, -s], [s, c]], dtype=complex)

    def cnot(control, target):
        m = np.zeros((16, 16))
        for i in range(16):
            m[i ^ (1 << (3 - target)) if (i >> (3 - control)) & 1 else i, i] = 1
        return m

    u = np.eye(16, dtype=complex)
    for layer, r in zip(WEIGHTS, RANGES):
        for wire, (phi, theta, omega) in enumerate(layer):
            u = on(wire, rz(omega) @ ry(theta) @ rz(phi)) @ u
        for i in range(4):
            u = cnot(i, (i + r) % 4) @ u
    return u


U = circuit_unitary()
Z = np.array([[1 - 2 * ((i >> (3 - w)) & 1) for i in range(16)] for w in range(4)], dtype=float)


def probabilities(angles):
    """[N,4] angles -> [N,6] class probabilities (float64)."""
    n = len(angles)
    angles = angles.astype(np.float64)
    # RX(a)|0> = cos(a/2)|0> - i sin(a/2)|1>, one wire at a time, wire 0 outermost.
    psi = np.ones((n, 1), dtype=complex)
    for w in range(4):
        qubit = np.stack([np.cos(angles[:, w] / 2), -1j * np.sin(angles[:, w] / 2)], axis=1)
        psi = (psi[:, :, None] * qubit[:, None, :]).reshape(n, -1)
    expvals = (np.abs(psi @ U.T) ** 2) @ Z.T
    logits = expvals @ HEAD_W.T + HEAD_B
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def session(threads):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    s = ort.InferenceSession(str(ROOT / "models" / "hybrid.onnx"), options, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    return lambda pixels: s.run(None, {name: pixels.astype(np.float32) / 255.0})[0]


def timed(label, run, pixels, batch, calls):
    latencies = []
    for call in range(calls + 3):
        start = (call * batch) % (len(pixels) - batch)
        t = time.perf_counter()
        run(pixels[start : start + batch])
        latencies.append(time.perf_counter() - t)
    latencies = np.array(latencies[3:])  # the first calls allocate
    print(
        f"{label:<34} batch {batch:>5}: {batch / latencies.mean():>9.0f} images/s"
        f"  p50 {np.percentile(latencies, 50) * 1e3:8.3f} ms  p99 {np.percentile(latencies, 99) * 1e3:8.3f} ms"
    )


def main():
    split = json.loads((DATA / "split-seed0.json").read_text())["test_files"]
    truth = np.array([CLASSES.index(f.split("/")[0]) for f in split])
    pixels = np.stack([np.asarray(Image.open(DATA / "medical-mnist" / f).convert("L")) for f in split])
    pixels = pixels.reshape(-1, 1, 64, 64)
    card = json.loads((ROOT / "models" / "model-card.json").read_text())

    cnn = session(1)
    reference = probabilities(np.concatenate([cnn(pixels[i : i + 1024]) for i in range(0, len(pixels), 1024)]))
    accuracy = (reference.argmax(1) == truth).mean()
    print(f"onnxruntime + numpy circuit, {len(truth)} test images (Pillow JPEG decoding): accuracy {accuracy:.6f}")
    print(f"model card (image crate decoding):                         accuracy {card['metrics']['test']['accuracy']:.6f}")

    subset = np.arange(0, len(split), 20)
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i in subset:
            files.append(Path(tmp) / f"{i:05}.png")
            Image.fromarray(pixels[i, 0]).save(files[-1])
        out = subprocess.run(
            [RUNTIME, "--model", ROOT / "models", "--csv", "classify", *files], capture_output=True, text=True, check=True
        )
    rows = [line.split(",") for line in out.stdout.splitlines()[1:]]
    runtime = np.array([[float(v) for v in row[2:8]] for row in rows])
    worst = np.abs(runtime - reference[subset]).max()
    same = (np.array([CLASSES.index(row[1]) for row in rows]) == reference[subset].argmax(1)).all()
    print(f"edge-runtime vs reference, {len(subset)} images: max |p difference| {worst:.2e}, same classes: {same}")
    assert same and worst < 1e-5

    threads = os.cpu_count() or 1
    for t in sorted({1, threads}):
        cnn = session(t)
        for batch, calls in [(1, 2000), (64, 300), (4096, 8)]:
            timed(f"onnxruntime CNN, {t} thread(s)", cnn, pixels, batch, calls)
        for batch, calls in [(1, 2000), (64, 300), (4096, 8)]:
            timed(f"onnxruntime CNN + circuit, {t} thr", lambda p: probabilities(cnn(p)), pixels, batch, calls)

    try:
        import onnx.numpy_helper
        import pennylane as qml
        import torch
    except ImportError as e:
        print(f"PennyLane + torch skipped: {e}")
        return
    init = {
        i.name: torch.tensor(onnx.numpy_helper.to_array(i))
        for i in onnx.load(str(ROOT / "models" / "hybrid.onnx")).graph.initializer
    }
    F = torch.nn.functional
    weights = torch.tensor(WEIGHTS)
    head_w, head_b = torch.tensor(HEAD_W), torch.tensor(HEAD_B)
    device = qml.device("default.qubit", wires=4)

    @qml.qnode(device, interface="torch")
    def circuit(angles):
        qml.AngleEmbedding(angles, wires=range(4), rotation="X")
        qml.StronglyEntanglingLayers(weights, wires=range(4), ranges=RANGES)
        return [qml.expval(qml.PauliZ(i)) for i in range(4)]

    @torch.no_grad()
    def classify(p):
        x = torch.from_numpy(p.astype(np.float32) / 255.0)
        x = F.relu(F.conv2d(x, init["blocks.0.conv.weight"], init["blocks.0.conv.bias"], stride=4, padding=1))
        x = F.relu(F.conv2d(x, init["blocks.1.conv.weight"], init["blocks.1.conv.bias"], stride=2, padding=1))
        x = F.relu(F.conv2d(x, init["blocks.2.conv.weight"], init["blocks.2.conv.bias"], stride=1, padding=1))
        x = F.max_pool2d(x, 2, 2).reshape(len(p), -1)
        angles = (x @ init["fc.weight"] + init["fc.bias"]).double()
        expvals = torch.stack(circuit(angles), dim=-1).reshape(len(p), 4)
        return torch.softmax(expvals @ head_w.T + head_b, dim=-1)

    torch.set_num_threads(1)
    pl = torch.cat([classify(pixels[i : i + 512]) for i in range(0, len(pixels), 512)]).numpy()
    worst = np.abs(pl - reference).max()
    print(f"PennyLane {qml.__version__} + torch {torch.__version__} vs reference, all images: max |p difference| {worst:.2e}")
    assert worst < 1e-5 and (pl.argmax(1) == reference.argmax(1)).all()
    for t in sorted({1, threads}):
        torch.set_num_threads(t)
        for batch, calls in [(1, 300), (64, 60), (4096, 4)]:
            timed(f"PennyLane + torch, {t} thread(s)", classify, pixels, batch, calls)


if __name__ == "__main__":
    sys.exit(main())
